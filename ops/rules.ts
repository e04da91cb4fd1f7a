/**
 * Helpers shared by the ops' rules: the standard error, CPU arrays, strides
 * and axes.
 *
 * @module
 */
import type { CpuData, DType, Node, OpDef, TensorType } from "../compiler/ir.ts";
import type { Expr } from "../compiler/kernel_ir/ir.ts";

/** Formats operand types for error messages: `f32[2,3], f32[4]`. */
export function describeOperands(inputs: readonly TensorType[]): string {
  return inputs.map((t) => `${t.dtype}[${t.shape.join(",")}]`).join(", ");
}

/** Throws the standard op error: `op: message (got operands)`. */
export function opError(op: string, message: string, inputs: readonly TensorType[]): never {
  throw new Error(`${op}: ${message} (got ${describeOperands(inputs) || "no operands"})`);
}

/** Allocates the CPU array for a dtype. */
export function allocData(dtype: DType, size: number): CpuData {
  switch (dtype) {
    case "f32":
      return new Float64Array(size);
    case "i32":
      return new Int32Array(size);
    case "u32":
      return new Uint32Array(size);
    case "bool":
      return new Uint8Array(size);
  }
}

/** Row-major strides of a shape (the IR's, re-exported for the op rules). */
export { stridesOf } from "../compiler/ir.ts";

/** Normalises a possibly negative axis against a rank; throws naming the op. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** True for the floating dtype(s). */
export function isFloat(dtype: DType): boolean {
  return dtype === "f32";
}

/**
 * The `inline` rule of an op that computes each element from the same
 * element of every operand: `f` gets the operands' values at the index.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, mul } from "../compiler/kernel_ir/build.ts";
 * import { pointwise } from "./rules.ts";
 * const twice = pointwise(([x]) => mul(f32(2), x));
 * strictEqual(typeof twice, "function");
 * ```
 */
export function pointwise(
  f: (args: readonly Expr[], node: Node) => Expr,
): NonNullable<OpDef["inline"]> {
  return (node, at, ctx) => f(node.inputs.map((x) => ctx.value(x, at)), node);
}
