/**
 * Helpers shared by the ops' rules: the standard error, CPU arrays, strides
 * and axes.
 *
 * @module
 */
import type { CpuData, CpuTensor, DType, Node, OpDef, TensorType } from "../compiler/ir.ts";
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

/**
 * Throws, naming the op, unless every operand has the first one's shape
 * (elementwise ops take broadcast operands only).
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { sameShapes } from "./rules.ts";
 * sameShapes("add", [{ shape: [2], dtype: "f32" }, { shape: [2], dtype: "f32" }]);
 * throws(() => sameShapes("add", [{ shape: [2], dtype: "f32" }, { shape: [3], dtype: "f32" }]), /equal shapes/);
 * ```
 */
export function sameShapes(op: string, inputs: readonly TensorType[]): void {
  const [first] = inputs;
  for (const t of inputs) {
    if (t.shape.length !== first.shape.length || t.shape.some((d, i) => d !== first.shape[i])) {
      opError(op, "operands must have equal shapes (broadcast them first)", inputs);
    }
  }
}

/**
 * The CPU rule of an elementwise op: `f` of the operands' elements at each
 * index (one to three operands), into a new array of `dtype`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { mapData } from "./rules.ts";
 * const a = { shape: [2], dtype: "f32" as const, data: Float64Array.of(1, 2) };
 * deepStrictEqual(Array.from(mapData("f32", [a, a], (x, y) => x * y)), [1, 4]);
 * ```
 */
export function mapData(
  dtype: DType,
  inputs: readonly CpuTensor[],
  f: (...v: number[]) => number,
): CpuData {
  const n = inputs[0].data.length;
  const out = allocData(dtype, n);
  const arrays = inputs.map((t) => t.data);
  if (arrays.length === 1) {
    const a = arrays[0];
    for (let i = 0; i < n; i++) out[i] = f(a[i]);
  } else if (arrays.length === 2) {
    const [a, b] = arrays;
    for (let i = 0; i < n; i++) out[i] = f(a[i], b[i]);
  } else {
    const [a, b, c] = arrays;
    for (let i = 0; i < n; i++) out[i] = f(a[i], b[i], c[i]);
  }
  return out;
}
