/**
 * The types of the graph IR: tensors, nodes, graphs, and the op interface
 * (`OpDef`) with every rule an op carries. Types only; `ir.ts` has the
 * functions that build and check them and re-exports these.
 *
 * @module
 */

import type { Expr } from "./kernel_ir/ir.ts";
import type { RowKernel } from "./kernel_ir/rows.ts";

/** Element types a tensor can hold. `bool` is stored as one byte (0 or 1) on the CPU. */
export type DType = "f32" | "i32" | "u32" | "bool";

/** A static tensor shape: one non-negative integer per axis; `[]` is a scalar. */
export type Shape = readonly number[];

/** A value an op attribute may take: JSON-like and immutable. */
export type AttrValue =
  | number
  | string
  | boolean
  | null
  | readonly AttrValue[]
  | { readonly [key: string]: AttrValue };

/** The attributes of a node, keyed by name. */
export type Attrs = Readonly<Record<string, AttrValue>>;

/** Shape and dtype: what `infer` computes for a node. */
export interface TensorType {
  /** Static shape. */
  readonly shape: Shape;
  /** Element type. */
  readonly dtype: DType;
}

/** The one node type of the IR. Never mutated: passes build new nodes. */
export interface Node extends TensorType {
  /** Process-unique id; creation order, so inputs always have smaller ids. */
  readonly id: number;
  /** The op's name (`def.name`): what `print` shows and rewrite patterns match. */
  readonly op: string;
  /** The op itself, with all its rules. */
  readonly def: OpDef;
  /** Operand nodes. */
  readonly inputs: readonly Node[];
  /** Static attributes (axes, perm, eps, leaf names, ...). */
  readonly attrs: Attrs;
  /** Module path for `param` and `input` leaves (`layers.0.attn.q_proj.weight`). */
  readonly name?: string;
}

/** Whether a param is updated by training or held fixed. */
export type ParamRole = "trainable" | "frozen";

/**
 * A traced program: named outputs, the inputs fed per call (in order), and
 * the params it reads (derived: every reachable `param` leaf, sorted by name).
 */
export interface Graph {
  /** `input` leaves in call order; an input may be unused but stays in the signature. */
  readonly inputs: readonly Node[];
  /** Every `param` leaf reachable from the outputs, sorted by name. */
  readonly params: readonly Node[];
  /** Named results. */
  readonly outputs: Readonly<Record<string, Node>>;
  /** Free-form metadata carried through passes (e.g. which outputs update which params). */
  readonly meta: Readonly<Record<string, unknown>>;
}

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

/**
 * How a backend computes an op:
 * - `leaf`: an input, param or generated fill (no operands);
 * - `inline`: computed inside whichever kernel reads it (elementwise math,
 *   shape ops as index arithmetic, random, dropout);
 * - a kernel family: `matmul`, `reduce`, `rowwise`, `gather`, `scatterAdd`.
 */
export type Lowering =
  | "leaf"
  | "inline"
  | "matmul"
  | "reduce"
  | "rowwise"
  | "gather"
  | "scatterAdd";

/** The declaration of one op: every rule each stage needs. */
export interface OpDef {
  /** Unique op name (what `print` shows and rewrite patterns match). */
  readonly name: string;
  /** Broad category, used by passes (`shape` ops are views; `elementwise` ops fuse). */
  readonly kind:
    | "leaf"
    | "elementwise"
    | "shape"
    | "reduce"
    | "matmul"
    | "fused"
    | "index"
    | "random";
  /** How backends compute it (see {@link Lowering}). */
  readonly lowering: Lowering;
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
  /**
   * How the op's value at one index is computed inside a kernel, in the
   * kernel IR (`compiler/kernel_ir/`): elementwise math, index arithmetic
   * for views, generated values. Every backend that renders kernels uses
   * it; `undefined` from it means "not computable inline here".
   */
  readonly inline?: (node: Node, at: KernelIndex, ctx: InlineContext) => Expr | undefined;
  /**
   * A `reduce` op's rule for kernels: the identity of the reduction (the
   * value of an empty one) and how two partial results combine, in the
   * kernel IR. Kernels combine in any order, so `combine` must be
   * associative and commutative up to rounding.
   */
  readonly reduction?: {
    identity(dtype: DType): number;
    combine(a: Expr, b: Expr): Expr;
  };
  /**
   * A `rowwise` op's rule for kernels: what it computes over one row of the
   * last axis, written against a {@link RowKernel} (operands in the row,
   * loops over its columns, row-wide sums and maxima, stores). The backend
   * decides how a row is spread over invocations; the rule is the math.
   */
  readonly rowwise?: (row: RowKernel, node: Node) => void;
  /**
   * Operands that index (gather's ids, cross-entropy's labels): a kernel
   * cannot throw, so executables check fed values against these bounds on
   * the host before a run.
   */
  readonly indexOperands?: (node: Node) => readonly IndexOperand[];
}

/**
 * An index into a tensor of `shape` inside a kernel: a flat (row-major)
 * index, per-axis coordinates, or both, as u32 kernel IR expressions.
 */
export interface KernelIndex {
  /** The shape the index is into. */
  readonly shape: Shape;
  /** The flat index. */
  readonly linear?: Expr;
  /** One coordinate per axis. */
  readonly coords?: readonly Expr[];
}

/** What an op's {@link OpDef.inline} rule may ask of the kernel it is lowered into. */
export interface InlineContext {
  /** The value of `node` (an operand, usually) at `at`: a load, or its own inline value. */
  value(node: Node, at: KernelIndex): Expr;
  /** The flat index of `at`. */
  linear(at: KernelIndex): Expr;
  /** The per-axis coordinates of `at`. */
  coords(at: KernelIndex): readonly Expr[];
  /** Binds `value` to a local so it is computed once. */
  bind(value: Expr): Expr;
}

/** An operand whose values index something, and their valid range. */
export interface IndexOperand {
  /** Which operand. */
  readonly input: number;
  /** Values must be below this. */
  readonly limit: number;
  /** Negative values are allowed (cross-entropy's ignored labels). */
  readonly allowNegative: boolean;
  /** What the values index, for the error message. */
  readonly what: string;
}
