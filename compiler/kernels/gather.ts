/**
 * Embedding lookup (`gather`) and its adjoint (`scatterAdd`). Neither uses
 * atomics: `scatterAdd` runs one invocation per output element, which walks
 * the indices in order and adds the matching updates, so sums are
 * deterministic (the same order as the CPU reference).
 *
 * @module
 */
import { type Node, sizeOf } from "../ir.ts";
import {
  add,
  binary,
  bitcast,
  Body,
  call,
  convert,
  type Expr,
  invocation,
  linearWorkgroup,
  lit,
  math,
  mul,
  select,
  storageType,
  storedValue,
  u32,
} from "../kernel_ir/mod.ts";
import { bindingSet, linearKernel, type LoweredKernel, valueFunction } from "./_assemble.ts";

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
function asRow(index: Expr): Expr {
  return index.type === "i32" ? index : bitcast("i32", index);
}

/**
 * One invocation per element of `node`: `build` gets the body, the element
 * index `i`, and the values of the node's operands at an index
 * (`data_at`, `index_at` functions reading through their inline regions).
 */
function elementKernel(
  node: Node,
  reads: readonly Node[],
  family: string,
  build: (body: Body, i: Expr, data: (at: Expr) => Expr, index: (at: Expr) => Expr) => void,
): LoweredKernel {
  const n = sizeOf(node.shape);
  const set = bindingSet([node], reads);
  const [dataAt, indexAt] = node.inputs.map((input, k) =>
    valueFunction(["data_at", "index_at"][k], input, set.scope)
  );
  const body = new Body();
  const i = body.letNamed(
    "i",
    add(mul(linearWorkgroup(), u32(GATHER_WORKGROUP)), invocation({ of: "localIndex" })),
  );
  body.when(binary(">=", i, u32(n)), (exit) => exit.return());
  build(body, i, (at) => call(dataAt, at), (at) => call(indexAt, at));
  const [width, groups] = [GATHER_WORKGROUP, Math.ceil(n / GATHER_WORKGROUP)];
  return linearKernel({ family, set, width, groups, roots: [node], reads, body: body.stmts });
}

/**
 * The kernel for `gather(table, indices)`: row `indices[k]` of the table.
 * An out-of-range index (the CPU reference throws) yields NaN, or 0 for
 * integer tables, instead of reading out of bounds.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { gatherKernel } from "./gather.ts";
 * import { makeNode } from "../ir.ts";
 * const table = makeNode(ops.param, [], { shape: [10, 4], dtype: "f32", role: "trainable" }, "embed.weight");
 * const idx = makeNode(ops.input, [], { shape: [3], dtype: "i32" }, "tokens");
 * const { nodes } = gatherKernel(makeNode(ops.gather, [table, idx], {}), [table, idx]);
 * strictEqual(nodes.length, 3);
 * ```
 */
export function gatherKernel(node: Node, reads: readonly Node[]): LoweredKernel {
  if (node.op !== "gather") throw new Error(`gatherKernel: expected a gather node, got ${node.op}`);
  const [table] = node.inputs;
  const rows = table.shape[0];
  const width = sizeOf(table.shape.slice(1));
  const row = u32(Math.max(width, 1));
  return elementKernel(node, reads, "gather", (body, i, data, index) => {
    const k = body.letNamed("k", binary("/", i, row));
    const col = body.letNamed("col", binary("%", i, row));
    const r = body.letNamed("r", asRow(index(k)));
    const ok = body.letNamed(
      "ok",
      binary("&&", binary(">=", r, lit(0, "i32")), binary("<", r, lit(rows, "i32"))),
    );
    // Clamped, so an out-of-range id never reads out of bounds; `ok` picks the fallback.
    const clamped = convert(
      "u32",
      math("clamp", r, lit(0, "i32"), lit(Math.max(rows - 1, 0), "i32")),
    );
    const v = body.letNamed("v", data(add(mul(clamped, u32(width)), col)));
    const value = table.dtype === "bool"
      ? binary("&&", v, ok)
      : select(ok, v, lit(table.dtype === "f32" ? NaN : 0, storageType(table.dtype)));
    body.store("out0", i, storedValue(value, table.dtype));
  });
}

/**
 * The kernel for `scatterAdd(updates, indices, {rows})`: output row `r` is the
 * sum, in index order, of the update rows whose index is `r`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { scatterAddKernel } from "./gather.ts";
 * import { makeNode } from "../ir.ts";
 * const g = makeNode(ops.input, [], { shape: [3, 4], dtype: "f32" }, "g");
 * const idx = makeNode(ops.input, [], { shape: [3], dtype: "i32" }, "tokens");
 * const { program } = scatterAddKernel(makeNode(ops.scatterAdd, [g, idx], { rows: 10 }), [g, idx]);
 * deepStrictEqual(program.dispatch, [1, 1, 1]);
 * ```
 */
export function scatterAddKernel(node: Node, reads: readonly Node[]): LoweredKernel {
  if (node.op !== "scatterAdd") {
    throw new Error(`scatterAddKernel: expected a scatterAdd node, got ${node.op}`);
  }
  const [, indices] = node.inputs;
  const width = sizeOf(node.shape.slice(1));
  const count = sizeOf(indices.shape);
  const row = u32(Math.max(width, 1));
  return elementKernel(node, reads, "scatterAdd", (body, i, data, index) => {
    const r = body.letNamed("r", convert("i32", binary("/", i, row)));
    const col = body.letNamed("col", binary("%", i, row));
    const type = storageType(node.dtype);
    const acc = body.var(type, lit(0, type), "acc");
    // In index order, as the CPU reference adds: the sum is deterministic.
    body.loop(u32(0), u32(count), (k, inner) => {
      inner.when(binary("==", asRow(index(k)), r), (hit) => {
        hit.assign(acc, add(acc, data(add(mul(k, u32(width)), col))));
      });
    }, { hint: "k" });
    body.store("out0", i, acc);
  });
}
