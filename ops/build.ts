/**
 * Small node builders with NumPy broadcasting, used by passes, adapters and
 * optimizers so graph-building code reads like math. They only call
 * `makeNode` on the op objects of `mod.ts`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { add, fill, scale } from "./build.ts";
 * deepStrictEqual(scale(add(fill(1, [2, 3]), fill(2, [3])), 0.5).shape, [2, 3]);
 * ```
 *
 * @module
 */
import { type DType, makeNode, type Node, type OpDef, type Shape } from "../compiler/ir.ts";
import * as ops from "./mod.ts";
import { sumTo as sumToShape } from "./reduce.ts";

/** A constant filled with `value`. */
export function fill(value: number, shape: Shape, dtype: DType = "f32"): Node {
  return makeNode(ops.const, [], { value, shape: [...shape], dtype });
}

/** Broadcasts `x` to `shape` (NumPy rules); a no-op when the shape already matches. */
export function bcast(x: Node, shape: Shape): Node {
  if (sameShape(x.shape, shape)) return x;
  return makeNode(ops.broadcast, [x], { shape: [...shape] });
}

/** Reshapes `x`; a no-op when the shape already matches. */
export function reshape(x: Node, shape: Shape): Node {
  if (sameShape(x.shape, shape)) return x;
  return makeNode(ops.reshape, [x], { shape: [...shape] });
}

/** Sums `x` down to `shape`: the adjoint of broadcasting `shape` up to `x.shape`. */
export const sumTo: (x: Node, shape: Shape) => Node = sumToShape;

/** Elementwise binary op with explicit broadcasting of both operands to a common shape. */
export function binary(op: OpDef, a: Node, b: Node): Node {
  const shape = broadcastShapes(a.shape, b.shape, op.name);
  return makeNode(op, [bcast(a, shape), bcast(b, shape)], {});
}

/** `a + b`, broadcasting. */
export const add = (a: Node, b: Node): Node => binary(ops.add, a, b);
/** `a - b`, broadcasting. */
export const sub = (a: Node, b: Node): Node => binary(ops.sub, a, b);
/** `a * b`, broadcasting. */
export const mul = (a: Node, b: Node): Node => binary(ops.mul, a, b);
/** `a / b`, broadcasting. */
export const div = (a: Node, b: Node): Node => binary(ops.div, a, b);
/** `-x`. */
export const neg = (x: Node): Node => makeNode(ops.neg, [x]);
/** `x * c` for a number `c`. */
export const scale = (x: Node, c: number): Node => mul(x, fill(c, [], x.dtype));
/** `where(cond, a, b)` with explicit broadcasting. */
export function where(cond: Node, a: Node, b: Node): Node {
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape, "where"), b.shape, "where");
  return makeNode(ops.where, [bcast(cond, shape), bcast(a, shape), bcast(b, shape)], {});
}
/** Swaps the last two axes. */
export function transposeLast(x: Node): Node {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return makeNode(ops.permute, [x], { perm });
}

/** True when two shapes are equal. */
export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** NumPy broadcasting of two shapes; throws naming the op and both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: cannot broadcast shapes [${a.join(",")}] and [${b.join(",")}] ` +
          `(axis ${i - rank}: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}
