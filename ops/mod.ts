/**
 * Every built-in op, as objects (`ops.matmul`, `ops.softmax`, ...), and the
 * list of them. Each op carries all of its rules: shape and dtype (`infer`),
 * the float64 reference (`cpu`), the vjp, how backends compute it
 * (`lowering`, and the kernel IR rules `inline`, `reduction` and `rowwise`)
 * and host-side index checks. Build nodes with `makeNode(op, inputs, attrs)` from `compiler/ir.ts`,
 * or through the `Tensor` methods.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "./mod.ts";
 * import { makeNode } from "../compiler/ir.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * deepStrictEqual(makeNode(ops.softmax, [x], { axis: -1 }).shape, [2, 3]);
 * ```
 *
 * @module
 */
import type { OpDef } from "../compiler/ir.ts";
import * as leaf from "./leaf.ts";
import * as elementwise from "./elementwise.ts";
import * as shape from "./shape.ts";
import * as reduce from "./reduce.ts";
import * as matmul from "./matmul.ts";
import * as nn from "./nn.ts";
import * as gather from "./gather.ts";
import * as random from "./random.ts";

export { constant as const, input, iota, param } from "./leaf.ts";
export {
  abs,
  add,
  cast,
  div,
  eq,
  exp,
  ge,
  gelu,
  gt,
  le,
  log,
  lt,
  maximum,
  minimum,
  mul,
  ne,
  neg,
  pow,
  relu,
  rsqrt,
  sqrt,
  sub,
  tanh,
  where,
} from "./elementwise.ts";
export { concat, pad, permute, reshape, slice } from "./shape.ts";
export { broadcast, max, sum } from "./reduce.ts";
export { matmul } from "./matmul.ts";
export {
  crossEntropy,
  crossEntropyBackward,
  layerNorm,
  layerNormBackward,
  logSoftmax,
  logSoftmaxBackward,
  softmax,
  softmaxBackward,
} from "./nn.ts";
export { gather, scatterAdd } from "./gather.ts";
export { dropout, random } from "./random.ts";

/**
 * The names of the shape ops whose result is a strided view of their operand
 * (no element moves): backends read through them in place, and host checks
 * follow them back to the input they read.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { VIEW_OPS } from "./mod.ts";
 * strictEqual(VIEW_OPS.has("permute") && !VIEW_OPS.has("pad"), true);
 * ```
 */
export const VIEW_OPS: ReadonlySet<string> = new Set(
  [shape.reshape, reduce.broadcast, shape.permute, shape.slice].map((op) => op.name),
);

const isOp = (v: unknown): v is OpDef =>
  typeof v === "object" && v !== null && "infer" in v && "cpu" in v && "lowering" in v;

/**
 * Every built-in op, in declaration order (leaves first).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { builtinOps } from "./mod.ts";
 * strictEqual(builtinOps().length > 40, true);
 * ```
 */
export function builtinOps(): OpDef[] {
  return [leaf, elementwise, shape, reduce, matmul, nn, gather, random].flatMap((m) =>
    Object.values(m).filter(isOp)
  );
}
