// Regions: what a fusion group computes inline and which materialized
// tensors it reads from memory. Shared by the fusion planner
// (compiler/fusion/fuse.ts) and the lowering (compiler/kernels/lower.ts).

import type { Node } from "../ir.ts";
import type { KernelGroup } from "./plan.ts";
import { type MatmulOperand, matmulOperand, stridedView } from "./strided.ts";

/**
 * How a matmul reads `operand`: in place through a strided view of a base
 * node, or (when no stride pattern fits) from the operand's own buffer.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { matmulRead } from "./regions.ts";
 * const x = makeNode(ops.input, [], { shape: [4, 6], dtype: "f32" }, "x");
 * const cols = makeNode(ops.slice, [x], { starts: [0, 2], ends: [4, 5] });
 * const read = matmulRead(cols); // columns 2..4 of x, read in place
 * strictEqual(read.base, x);
 * strictEqual(read.ld, 6);
 * strictEqual(read.offset, 2);
 * ```
 */
export function matmulRead(operand: Node): MatmulOperand {
  const view = stridedView(operand);
  const [rows, cols] = operand.shape.slice(-2);
  return (view && matmulOperand(view)) ??
    { base: operand, trans: false, ld: cols, batchStride: rows * cols, offset: 0 };
}

/**
 * Whether a node reads its operands at its own flat index (elementwise ops,
 * reshape, dropout), so an epilogue through it sees its producer's index.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { keepsIndex } from "./regions.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * strictEqual(keepsIndex(makeNode(ops.exp, [x], {})), true);
 * strictEqual(keepsIndex(makeNode(ops.permute, [x], { perm: [1, 0] })), false);
 * ```
 */
export function keepsIndex(n: Node): boolean {
  return n.op === "reshape" || n.op === "dropout" ||
    (n.def.kind === "elementwise" && n.def.inline !== undefined);
}

/**
 * The materialized nodes a kernel rooted at `roots` reads: a kernel op reads
 * its operands' regions, an inline root its own; `acc` (a fused matmul) is
 * not read from memory.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { regionReads } from "./regions.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.add, [makeNode(ops.exp, [x], {}), x], {});
 * deepStrictEqual(regionReads([y], new Set([x.id, y.id])).map((n) => n.name), ["x"]);
 * ```
 */
export function regionReads(
  roots: readonly Node[],
  materialized: ReadonlySet<number>,
  acc?: Node,
): Node[] {
  const reads = new Map<number, Node>();
  const seen = new Set<number>();
  const own = new Set(roots.map((r) => r.id));
  const stack = roots.flatMap((r) => [...r.inputs]);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n.id) || n === acc) continue;
    seen.add(n.id);
    // A root of the same kernel is computed in it, never read back from memory.
    if (materialized.has(n.id) && !own.has(n.id)) reads.set(n.id, n);
    else stack.push(...n.inputs);
  }
  return [...reads.values()];
}

/**
 * The nodes a group reads from buffers (a tiled matmul's operands through
 * their views, unless an operand is generated in its loads).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { groupReads } from "./regions.ts";
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const plan = fuse(trace((x, y) => x.mul(y).sum(), [{ name: "x", shape: [3] }, { name: "y", shape: [3] }]));
 * strictEqual(groupReads(plan.groups[0], plan.materialized).length, 2);
 * ```
 */
export function groupReads(group: KernelGroup, materialized: ReadonlySet<number>): Node[] {
  if (group.lanes) {
    const all = group.lanes.flatMap((lane) => groupReads(lane, materialized));
    return [...new Map(all.map((n) => [n.id, n])).values()];
  }
  const op = group.op;
  if (op?.op === "matmul" && !group.direct) {
    const epilogue = group.epilogue ? regionReads([group.epilogue], materialized, op) : [];
    // A base without a buffer is a fused `random` node, generated in the operand loads.
    const operands = op.inputs.map((operand) => matmulRead(operand).base)
      .filter((base) => materialized.has(base.id));
    return [...operands, ...epilogue];
  }
  return regionReads(
    op ? [op, ...group.roots.filter((r) => r !== op)] : group.roots,
    materialized,
    op,
  );
}

/**
 * The number of buffers a group binds (reads and writes).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { bindingCount } from "./regions.ts";
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const plan = fuse(trace((x, y) => x.mul(y).sum(), [{ name: "x", shape: [3] }, { name: "y", shape: [3] }]));
 * strictEqual(bindingCount(plan.groups[0], plan.materialized), 3);
 * ```
 */
export function bindingCount(group: KernelGroup, materialized: ReadonlySet<number>): number {
  const reads = new Set(groupReads(group, materialized).map((n) => n.id));
  return reads.size + group.roots.length;
}

/**
 * The inline node of an over-wide group whose own reads are the most, short
 * of all of them: giving it a buffer splits the group in two.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { pickSplit } from "./regions.ts";
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const specs = ["a", "b", "c"].map((name) => ({ name, shape: [3] }));
 * const plan = fuse(trace((a, b, c) => a.add(b).exp().add(c), specs));
 * strictEqual(pickSplit(plan.groups[0], plan.materialized)?.op, "exp");
 * ```
 */
export function pickSplit(group: KernelGroup, materialized: ReadonlySet<number>): Node | undefined {
  const total = groupReads(group, materialized).length;
  let best: { node: Node; reads: number } | undefined;
  const seen = new Set<number>();
  const stack = group.roots.flatMap((r) => [...r.inputs]);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n.id) || materialized.has(n.id)) continue;
    seen.add(n.id);
    const reads = regionReads([n], materialized).length;
    if (reads > 1 && reads < total && (best === undefined || reads > best.reads)) {
      best = { node: n, reads };
    }
    stack.push(...n.inputs);
  }
  return best?.node;
}
