/**
 * The op registry. Every op is declared once, as data, with the rules each
 * stage needs: `infer` (shape and dtype), `cpu` (the float64 reference),
 * `vjp` (cotangents built from other ops) and `wgsl` (its GPU lowering).
 *
 * @module
 */
import type { Attrs, DType, Node, Shape, TensorType } from "../compiler/ir.ts";

/** A tensor value on the CPU: float dtypes are held in float64, the rest in their own arrays. */
export interface CpuTensor {
  /** Static shape. */
  readonly shape: Shape;
  /** Element type. */
  readonly dtype: DType;
  /** Row-major elements: Float64Array for f32, Int32Array, Uint32Array, Uint8Array for bool. */
  readonly data: CpuData;
}

/** The typed arrays the CPU interpreter uses. */
export type CpuData = Float64Array | Int32Array | Uint32Array | Uint8Array;

/** What the CPU rule of an op receives besides its operands. */
export interface CpuContext {
  /** The node being evaluated (for attrs, shape and error messages). */
  readonly node: Node;
}

/** How an op is lowered to WGSL: elementwise expression (fusable) or a kernel family tag. */
export type WgslRule =
  | { readonly kind: "elementwise"; readonly expr: (args: readonly string[], node: Node) => string }
  | { readonly kind: "kernel"; readonly family: string };

/** The declaration of one op. */
export interface OpDef {
  /** Unique op name. */
  readonly name: string;
  /** Broad category, used by passes and the scheduler. */
  readonly kind:
    | "leaf"
    | "elementwise"
    | "shape"
    | "reduce"
    | "matmul"
    | "fused"
    | "index"
    | "random";
  /** Computes shape and dtype, or throws an error naming the op and what it got. */
  infer(inputs: readonly TensorType[], attrs: Attrs): TensorType;
  /** The reference implementation; returns the result's data (length = size of shape). */
  cpu(inputs: readonly CpuTensor[], ctx: CpuContext): CpuData;
  /**
   * Cotangents of the inputs given the output's cotangent, built from other
   * ops; `null` where an input gets no gradient. `wants[i]` says whether the
   * caller needs input i, so unneeded work is never built.
   */
  vjp?(node: Node, cotangent: Node, wants: readonly boolean[]): readonly (Node | null)[];
  /** Why the op has no vjp (integer-valued, a backward op itself, ...). Required when `vjp` is absent. */
  readonly noGradient?: string;
  /** GPU lowering; filled by the WGSL backend. */
  readonly wgsl?: WgslRule;
}

const registry = new Map<string, OpDef>();

/**
 * Declares an op. Throws if the name is taken or the declaration is incomplete.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { defineOp, getOp } from "./registry.ts";
 * defineOp({
 *   name: "example_identity",
 *   kind: "elementwise",
 *   infer: ([x]) => x,
 *   cpu: ([x]) => x.data.slice(),
 *   vjp: (_node, g) => [g],
 * });
 * strictEqual(getOp("example_identity").kind, "elementwise");
 * ```
 */
export function defineOp(def: OpDef): OpDef {
  if (registry.has(def.name)) throw new Error(`op ${def.name} is defined twice`);
  if (def.vjp === undefined && def.noGradient === undefined) {
    throw new Error(`op ${def.name} needs a vjp rule or a noGradient reason`);
  }
  registry.set(def.name, Object.freeze({ ...def }));
  return registry.get(def.name)!;
}

/**
 * Looks up an op; a missing op is an error that names it.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { getOp } from "./registry.ts";
 * import "./mod.ts";
 * strictEqual(getOp("add").kind, "elementwise");
 * ```
 */
export function getOp(name: string): OpDef {
  const def = registry.get(name);
  if (def === undefined) {
    throw new Error(`unknown op "${name}" (is ops/mod.ts imported?)`);
  }
  return def;
}

/**
 * Every registered op, in declaration order.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { allOps } from "./registry.ts";
 * import "./mod.ts";
 * ok(allOps().length > 10);
 * ```
 */
export function allOps(): OpDef[] {
  return [...registry.values()];
}

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

/** Row-major strides of a shape. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

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
