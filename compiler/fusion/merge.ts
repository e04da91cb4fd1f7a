// Horizontal and vertical merging of fusion groups: kernels of the same kind
// that can run at the same point become one kernel with several outputs.

import { type Node, sizeOf } from "../ir.ts";
import type { KernelGroup } from "./plan.ts";
import { bindingCount, groupReads, keepsIndex } from "./regions.ts";

/**
 * Merges a kernel into an earlier one of the same kind when everything it
 * reads is ready before the earlier one runs, making one kernel with several
 * outputs: elementwise kernels over as many elements (reading the earlier
 * one's outputs, if at all, at the same flat index — so `y = exp(x)` and
 * `z = y·2`, both outputs, are one kernel), and independent reductions over
 * the same operand shape and axes (a model's bias and norm gradients).
 * `groups` must be in dependency order; the result is too.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { mergeSiblings } from "./merge.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * const z = makeNode(ops.neg, [y], {});
 * const groups = [{ kind: "elementwise", roots: [y] }, { kind: "elementwise", roots: [z] }] as const;
 * strictEqual(mergeSiblings(groups, new Set([x.id, y.id, z.id]), 8).length, 1);
 * ```
 */
export function mergeSiblings(
  groups: readonly KernelGroup[],
  materialized: ReadonlySet<number>,
  maxBindings: number,
): KernelGroup[] {
  const out: KernelGroup[] = [];
  const producer = new Map<number, number>();
  for (const g of groups) {
    let target = -1;
    let merged: KernelGroup | undefined;
    const elementwise = g.kind === "elementwise";
    if (elementwise || g.kind === "reduce") {
      const reads = groupReads(g, materialized);
      const latest = Math.max(-1, ...reads.map((r) => producer.get(r.id) ?? -1));
      for (let k = out.length - 1; k >= Math.max(latest, 0) && target < 0; k--) {
        const h = out[k];
        const fits = elementwise
          ? h.kind === "elementwise" && sizeOf(h.roots[0].shape) === sizeOf(g.roots[0].shape) &&
            reads.every((r) =>
              producer.get(r.id) !== k || readsAtSameIndex(g.roots, r, materialized)
            )
          : h.kind === "reduce" && sameReduction(h.op ?? h.lanes![0].op!, g.op!) && latest < k;
        if (!fits) continue;
        merged = elementwise
          ? { kind: "elementwise", roots: [...h.roots, ...g.roots] }
          : { kind: "reduce", roots: [...h.roots, ...g.roots], lanes: [...(h.lanes ?? [h]), g] };
        if (bindingCount(merged, materialized) <= maxBindings) target = k;
      }
    }
    if (target < 0) {
      target = out.length;
      out.push(g);
    } else {
      out[target] = merged!;
    }
    for (const r of g.roots) producer.set(r.id, target);
  }
  return out;
}

/** Whether every path from `roots` down to `target` reads it at the roots' own flat index. */
function readsAtSameIndex(
  roots: readonly Node[],
  target: Node,
  materialized: ReadonlySet<number>,
): boolean {
  const seen = new Set<string>();
  const stack = roots.map((node) => ({ node, same: true }));
  while (stack.length > 0) {
    const { node, same } = stack.pop()!;
    const key = `${node.id}:${same}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (node === target) {
      if (!same) return false;
      continue;
    }
    if (materialized.has(node.id) && !roots.includes(node)) continue;
    const next = same && keepsIndex(node);
    for (const input of node.inputs) {
      stack.push({ node: input, same: next && sizeOf(input.shape) === sizeOf(node.shape) });
    }
  }
  return true;
}

/**
 * Whether two reductions walk the same iteration space (operand shape and
 * axes), so one kernel can compute both.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { sameReduction } from "./merge.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4, 5], dtype: "f32" }, "x");
 * const a = makeNode(ops.sum, [x], { axes: [0] });
 * const b = makeNode(ops.max, [makeNode(ops.exp, [x], {})], { axes: [-2] });
 * strictEqual(sameReduction(a, b), true);
 * ```
 */
export function sameReduction(a: Node, b: Node): boolean {
  return a.inputs[0].shape.join() === b.inputs[0].shape.join() &&
    reductionAxes(a).join() === reductionAxes(b).join();
}

/**
 * A reduction's axes, non-negative and sorted.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { reductionAxes } from "./merge.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4, 5, 6], dtype: "f32" }, "x");
 * deepStrictEqual(reductionAxes(makeNode(ops.sum, [x], { axes: [-1, 0] })), [0, 2]);
 * ```
 */
export function reductionAxes(node: Node): number[] {
  const rank = node.inputs[0].shape.length;
  return (node.attrs.axes as number[]).map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
}
