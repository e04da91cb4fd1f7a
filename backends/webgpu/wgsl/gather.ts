/**
 * Embedding lookup (`gather`) and its adjoint (`scatterAdd`). Neither uses
 * atomics: `scatterAdd` runs one invocation per output element, which walks
 * the indices in order and adds the matching updates, so sums are
 * deterministic (the same order as the CPU reference).
 *
 * @module
 */
import { type Node, sizeOf } from "../../../compiler/ir.ts";
import { WGSL_LINEAR_WORKGROUP } from "./kernel.ts";
import {
  bindingSet,
  indent,
  linearKernel,
  type LoweredKernel,
  MAIN_PARAMS,
  moduleText,
} from "./_legacy.ts";
import { literal, u32, valueFunction } from "./_legacy.ts";

/**
 * Invocations per workgroup of gather and scatter kernels.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { GATHER_WORKGROUP } from "./gather.ts";
 * strictEqual(GATHER_WORKGROUP, 64);
 * ```
 */
export const GATHER_WORKGROUP = 64;

/** `index` as i32, for comparisons against row numbers (u32 indices ≥ 2³¹ become negative, so out of range). */
function asRow(index: string, dtype: Node["dtype"]): string {
  return dtype === "i32" ? index : `bitcast<i32>(${index})`;
}

function lowered(
  node: Node,
  reads: readonly Node[],
  family: string,
  body: string[],
  n: number,
): LoweredKernel {
  const set = bindingSet([node], reads);
  const loads = node.inputs.map((input, k) =>
    valueFunction(["data_at", "index_at"][k] ?? `arg${k}`, input, set.scope)
  );
  const main = [
    `@compute @workgroup_size(${GATHER_WORKGROUP})`,
    `fn main(${MAIN_PARAMS}) {`,
    indent([
      `let i = ${WGSL_LINEAR_WORKGROUP} * ${u32(GATHER_WORKGROUP)} + lid;`,
      `if (i >= ${u32(n)}) { return; }`,
      ...body,
    ]),
    "}",
  ].join("\n");
  const wgsl = moduleText({
    decls: set.decls,
    functions: loads.map((l) => l.wgsl),
    threefry: loads.some((l) => l.usesThreefry),
    main,
  });
  const [width, groups] = [GATHER_WORKGROUP, Math.ceil(n / GATHER_WORKGROUP)];
  return linearKernel({ family, wgsl, set, width, groups, roots: [node], reads });
}

/**
 * The kernel for `gather(table, indices)`: row `indices[k]` of the table.
 * An out-of-range index (the CPU reference throws) yields NaN, or 0 for
 * integer tables, instead of reading out of bounds.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../../ops/mod.ts";
 * import { gatherKernel } from "./gather.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const table = makeNode(ops.param, [], { shape: [10, 4], dtype: "f32", role: "trainable" }, "embed.weight");
 * const idx = makeNode(ops.input, [], { shape: [3], dtype: "i32" }, "tokens");
 * const { nodes } = gatherKernel(makeNode(ops.gather, [table, idx], {}), [table, idx]);
 * strictEqual(nodes.length, 3);
 * ```
 */
export function gatherKernel(node: Node, reads: readonly Node[]): LoweredKernel {
  if (node.op !== "gather") throw new Error(`gatherKernel: expected a gather node, got ${node.op}`);
  const [table, indices] = node.inputs;
  const rows = table.shape[0];
  const width = sizeOf(table.shape.slice(1));
  const fallback = table.dtype === "f32" ? literal(NaN, "f32") : literal(0, table.dtype);
  const body = [
    `let k = i / ${u32(Math.max(width, 1))};`,
    `let col = i % ${u32(Math.max(width, 1))};`,
    `let r = ${asRow("index_at(k)", indices.dtype)};`,
    `let ok = r >= 0 && r < ${rows};`,
    `let v = data_at(u32(clamp(r, 0, ${Math.max(rows - 1, 0)})) * ${u32(width)} + col);`,
    `out0[i] = ${
      table.dtype === "bool" ? "select(0u, 1u, v && ok)" : `select(${fallback}, v, ok)`
    };`,
  ];
  return lowered(node, reads, "gather", body, sizeOf(node.shape));
}

/**
 * The kernel for `scatterAdd(updates, indices, {rows})`: output row `r` is the
 * sum, in index order, of the update rows whose index is `r`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../../ops/mod.ts";
 * import { scatterAddKernel } from "./gather.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const g = makeNode(ops.input, [], { shape: [3, 4], dtype: "f32" }, "g");
 * const idx = makeNode(ops.input, [], { shape: [3], dtype: "i32" }, "tokens");
 * const { kernel } = scatterAddKernel(makeNode(ops.scatterAdd, [g, idx], { rows: 10 }), [g, idx]);
 * deepStrictEqual(kernel.dispatch, [1, 1, 1]);
 * ```
 */
export function scatterAddKernel(node: Node, reads: readonly Node[]): LoweredKernel {
  if (node.op !== "scatterAdd") {
    throw new Error(`scatterAddKernel: expected a scatterAdd node, got ${node.op}`);
  }
  const [, indices] = node.inputs;
  const width = sizeOf(node.shape.slice(1));
  const count = sizeOf(indices.shape);
  const body = [
    `let r = i32(i / ${u32(Math.max(width, 1))});`,
    `let col = i % ${u32(Math.max(width, 1))};`,
    `var acc = ${literal(0, node.dtype)};`,
    `for (var k = 0u; k < ${u32(count)}; k = k + 1u) {`,
    `  if (${asRow("index_at(k)", indices.dtype)} == r) { acc = acc + data_at(k * ${
      u32(width)
    } + col); }`,
    "}",
    "out0[i] = acc;",
  ];
  return lowered(node, reads, "scatterAdd", body, sizeOf(node.shape));
}
