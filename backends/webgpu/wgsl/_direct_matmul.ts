// The direct matmul: one invocation per output element, a plain loop over k,
// both operands read through index functions. It exists for small batched
// products whose operands are views no stride pattern describes (attention's
// head split [B,T,H,D] → [B,H,T,D] and merge back): reading them in place
// beats copying them for the tiled kernel, and it also takes fused epilogues
// with more than one output.

import { type Node, sizeOf } from "../../../compiler/ir.ts";
import { WGSL_LINEAR_WORKGROUP } from "./kernel.ts";
import {
  bindingSet,
  indent,
  linearKernel,
  type LoweredKernel,
  MAIN_PARAMS,
  moduleText,
  storeFunction,
} from "./_legacy.ts";
import { u32, valueFunction } from "./_legacy.ts";

/**
 * Invocations per workgroup of the direct matmul.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { DIRECT_MATMUL_WORKGROUP } from "./_direct_matmul.ts";
 * strictEqual(DIRECT_MATMUL_WORKGROUP, 64);
 * ```
 */
export const DIRECT_MATMUL_WORKGROUP = 64;

/**
 * The direct kernel for `matmul` node `op` writing `roots` (the matmul and/or
 * an epilogue root); `reads` are the materialized nodes its operands' and
 * epilogue's inline regions read.
 *
 * @example Attention scores, with both heads read out of [B, T, H·D] buffers
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../../ops/mod.ts";
 * import { directMatmulKernel } from "./_direct_matmul.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 5, 2, 4], dtype: "f32" }, "x");
 * const q = makeNode(ops.permute, [x], { perm: [0, 2, 1, 3] });
 * const k = makeNode(ops.permute, [x], { perm: [0, 2, 3, 1] });
 * const { kernel } = directMatmulKernel(makeNode(ops.matmul, [q, k], {}), [x]);
 * strictEqual(kernel.bindings.length, 2);
 * ```
 */
export function directMatmulKernel(
  op: Node,
  reads: readonly Node[],
  options: { roots?: readonly Node[] } = {},
): LoweredKernel {
  const roots = options.roots ?? [op];
  const [a, b] = op.inputs;
  const r = op.shape.length;
  const [m, n, k] = [op.shape[r - 2], op.shape[r - 1], a.shape[r - 1]];
  const count = sizeOf(op.shape);
  const set = bindingSet(roots, reads);
  const functions = [
    valueFunction("lhs_at", a, set.scope),
    valueFunction("rhs_at", b, set.scope),
    storeFunction(op, roots, set.scope),
  ];
  const main = [
    `@compute @workgroup_size(${DIRECT_MATMUL_WORKGROUP})`,
    `fn main(${MAIN_PARAMS}) {`,
    indent([
      `let i = ${WGSL_LINEAR_WORKGROUP} * ${u32(DIRECT_MATMUL_WORKGROUP)} + lid;`,
      `if (i >= ${u32(count)}) { return; }`,
      `let col = i % ${u32(Math.max(n, 1))};`,
      `let row = (i / ${u32(Math.max(n, 1))}) % ${u32(Math.max(m, 1))};`,
      `let batch = i / ${u32(Math.max(m * n, 1))};`,
      `let a0 = (batch * ${u32(m)} + row) * ${u32(k)};`,
      `let b0 = batch * ${u32(k * n)} + col;`,
      "var acc = 0.0;",
      `for (var p = 0u; p < ${u32(k)}; p = p + 1u) {`,
      `  acc = acc + lhs_at(a0 + p) * rhs_at(b0 + p * ${u32(n)});`,
      "}",
      "store(i, acc);",
    ]),
    "}",
  ].join("\n");
  const wgsl = moduleText({
    decls: set.decls,
    functions: functions.map((f) => f.wgsl),
    threefry: functions.some((f) => f.usesThreefry),
    main,
  });
  const width = DIRECT_MATMUL_WORKGROUP;
  const groups = Math.ceil(count / width);
  return linearKernel({ family: "matmul-direct", wgsl, set, width, groups, roots, reads });
}
