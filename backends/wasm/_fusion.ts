/**
 * Elementwise fusion: a materialized elementwise node and the single-use
 * elementwise nodes feeding it become one loop body, so a chain costs one
 * pass over memory.
 *
 * @module
 */
import type { InlineContext, Node } from "../../compiler/ir.ts";
import { ref } from "../../compiler/kernel_ir/build.ts";
import { type Fn, V128 } from "./_encoder.ts";
import type { Helpers } from "./_expr.ts";
import { emitKernelExpr } from "./_kernel_expr.ts";

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
    else local = emitElementwise(f, n, value, helpers);
    memo.set(n.id, local);
    return local;
  };
  return value(root);
}

// Locals are named in kernel expressions by their index.
const localRef = (local: number, n: Node) => ref(`l${local}`, n.dtype);
const LOCALS = { local: (name: string) => Number(name.slice(1)) };

/**
 * Computes elementwise `node` into a new v128 local from its op's `inline`
 * rule (the same kernel IR the WebGPU backend renders), given the locals of
 * its operands; returns the local.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import { Fn, V128 } from "./_encoder.ts";
 * import { emitElementwise } from "./_fusion.ts";
 * const x = makeNode(ops.input, [], { shape: [4], dtype: "f32" }, "x");
 * const f = new Fn([V128], [V128]);
 * strictEqual(emitElementwise(f, makeNode(ops.neg, [x], {}), () => 0, { index: () => 0 }) > 0, true);
 * ```
 */
export function emitElementwise(
  f: Fn,
  node: Node,
  operand: (input: Node) => number,
  helpers: Helpers,
): number {
  const pointwiseOnly = (): never => {
    throw new Error(`wasm: ${node.op} indexes its operands; only pointwise ops fuse here`);
  };
  const ctx: InlineContext = {
    value: (input) => localRef(operand(input), input),
    linear: pointwiseOnly,
    coords: pointwiseOnly,
    bind: (e) => {
      emitKernelExpr(f, e, LOCALS, helpers);
      const local = f.local(V128);
      f.set(local);
      return ref(`l${local}`, e.type);
    },
  };
  const expr = node.def.inline?.(node, { shape: node.shape }, ctx);
  if (expr === undefined) throw new Error(`wasm: no lowering for elementwise op ${node.op}`);
  emitKernelExpr(f, expr, LOCALS, helpers);
  const local = f.local(V128);
  f.set(local);
  return local;
}
