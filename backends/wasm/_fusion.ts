/**
 * Elementwise fusion: a materialized elementwise node and the single-use
 * elementwise nodes feeding it become one loop body, so a chain costs one
 * pass over memory.
 *
 * @module
 */
import type { Node } from "../../compiler/ir.ts";
import { type Fn, V128 } from "./_encoder.ts";
import { emitElementwise, type Helpers } from "./_expr.ts";

/**
 * The group under `root`: its leaves (operands read from memory or
 * constants) and how many nodes it computes. `fusedInto(n, consumer)` says
 * whether `n` is computed inside `consumer`'s loop.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { fusionGroup } from "./_fusion.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.neg, [makeNode(ops.exp, [x], {})], {});
 * const g = fusionGroup(y, (n) => n.op === "exp");
 * strictEqual(g.leaves.length, 1);
 * strictEqual(g.ops, 2);
 * ```
 */
export function fusionGroup(
  root: Node,
  fusedInto: (n: Node, consumer: Node) => boolean,
): { leaves: Node[]; ops: number } {
  const leaves: Node[] = [];
  const inside = new Set<number>();
  const collect = (n: Node, consumer?: Node) => {
    if (consumer !== undefined && !fusedInto(n, consumer)) {
      if (!leaves.includes(n)) leaves.push(n);
      return;
    }
    inside.add(n.id);
    for (const i of n.inputs) collect(i, n);
  };
  collect(root);
  return { leaves, ops: inside.size };
}

/**
 * Emits the group's value into a v128 local and returns it; each node is
 * computed once per element (shared operands are reused from locals).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { Fn, V128 } from "./_encoder.ts";
 * import { emitGroup } from "./_fusion.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const f = new Fn([V128]);
 * const local = emitGroup(f, makeNode(ops.abs, [x], {}), [x], () => 0, { index: () => 0 });
 * strictEqual(local > 0, true);
 * ```
 */
export function emitGroup(
  f: Fn,
  root: Node,
  leaves: readonly Node[],
  leafValue: (leaf: Node, index: number) => number,
  helpers: Helpers,
): number {
  const memo = new Map<number, number>();
  const value = (n: Node): number => {
    const known = memo.get(n.id);
    if (known !== undefined) return known;
    const leaf = leaves.indexOf(n);
    let local: number;
    if (leaf >= 0) local = leafValue(n, leaf);
    else {
      const args = n.inputs.map(value);
      emitElementwise(f, n, args, helpers);
      local = f.local(V128);
      f.set(local);
    }
    memo.set(n.id, local);
    return local;
  };
  return value(root);
}
