// Horizontal and vertical merging of fusion groups: kernels of the same kind
// that can run at the same point become one kernel with several outputs.

import { type Node, sizeOf } from "../ir.ts";
import type { KernelGroup } from "../passes/fuse.ts";
import { sameReduction } from "./reduce.ts";
import { bindingCount, groupReads, keepsIndex } from "./_regions.ts";

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
 * import { mergeSiblings } from "./_merge.ts";
 * import { makeNode } from "../ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode("input", [], { shape: [4], dtype: "f32" }, "x");
 * const y = makeNode("exp", [x], {});
 * const z = makeNode("neg", [y], {});
 * const groups = [{ kind: "elementwise", roots: [y] }, { kind: "elementwise", roots: [z] }] as const;
 * console.log(mergeSiblings(groups, new Set([x.id, y.id, z.id]), 8).length); // 1
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
