// The direct matmul: one invocation per output element, a plain loop over k,
// both operands read through index functions. It exists for small batched
// products whose operands are views no stride pattern describes (attention's
// head split [B,T,H,D] → [B,H,T,D] and merge back): reading them in place
// beats copying them for the tiled kernel, and it also takes fused epilogues
// with more than one output.

import { type Node, sizeOf } from "../ir.ts";
import {
  add,
  binary,
  Body,
  call,
  div,
  f32,
  invocation,
  linearWorkgroup,
  mul,
  u32,
} from "../kernel_ir/mod.ts";
import {
  bindingSet,
  linearKernel,
  type LoweredKernel,
  storeFunction,
  valueFunction,
} from "./_assemble.ts";

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
 * import * as ops from "../../ops/mod.ts";
 * import { directMatmulKernel } from "./_direct_matmul.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 5, 2, 4], dtype: "f32" }, "x");
 * const q = makeNode(ops.permute, [x], { perm: [0, 2, 1, 3] });
 * const k = makeNode(ops.permute, [x], { perm: [0, 2, 3, 1] });
 * const { program } = directMatmulKernel(makeNode(ops.matmul, [q, k], {}), [x]);
 * strictEqual(program.buffers.length, 2);
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
  const lhsAt = valueFunction("lhs_at", a, set.scope);
  const rhsAt = valueFunction("rhs_at", b, set.scope);
  const store = storeFunction(op, roots, set.scope);
  const body = new Body();
  const i = body.letNamed(
    "i",
    add(mul(linearWorkgroup(), u32(DIRECT_MATMUL_WORKGROUP)), invocation({ of: "localIndex" })),
  );
  body.when(binary(">=", i, u32(count)), (exit) => exit.return());
  const col = body.letNamed("col", binary("%", i, u32(Math.max(n, 1))));
  const row = body.letNamed(
    "row",
    binary("%", div(i, u32(Math.max(n, 1))), u32(Math.max(m, 1))),
  );
  const batch = body.letNamed("batch", div(i, u32(Math.max(m * n, 1))));
  const a0 = body.letNamed("a0", mul(add(mul(batch, u32(m)), row), u32(k)));
  const b0 = body.letNamed("b0", add(mul(batch, u32(k * n)), col));
  const acc = body.varNamed("acc", "f32", f32(0));
  body.loop(u32(0), u32(k), (p, inner) => {
    const product = mul(call(lhsAt, add(a0, p)), call(rhsAt, add(b0, mul(p, u32(n)))));
    inner.assign(acc, add(acc, product));
  }, { hint: "p" });
  body.call(store, i, acc);
  const width = DIRECT_MATMUL_WORKGROUP;
  const groups = Math.ceil(count / width);
  return linearKernel({
    family: "matmul-direct",
    set,
    width,
    groups,
    roots,
    reads,
    body: body.stmts,
  });
}
