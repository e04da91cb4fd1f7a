/**
 * The symbolic tensor: a handle on a graph node with NumPy-like methods.
 * Broadcasting follows NumPy and is made explicit (`broadcast` nodes), so
 * every primitive sees equal shapes. `compiler/trace.ts` runs user functions
 * on these.
 *
 * @module
 */
import {
  type AttrValue,
  checkDType,
  checkShape,
  type DType,
  makeNode,
  type Node,
  type OpDef,
  type Shape,
  sizeOf,
} from "./ir.ts";
import { bcast, broadcastShapes, fill } from "../ops/build.ts";
import { keptShape } from "../ops/reduce.ts";
import { normAxis } from "../ops/rules.ts";
import * as ops from "../ops/mod.ts";

/** A number or a tensor: arithmetic accepts either. */
export type TensorLike = Tensor | number;

/** How a param is initialised by `initParams`. */
export type ParamInit =
  | { readonly kind: "zeros" }
  | { readonly kind: "ones" }
  | { readonly kind: "constant"; readonly value: number }
  | { readonly kind: "normal"; readonly std: number }
  | { readonly kind: "uniform"; readonly bound: number };

/** A symbolic tensor: a handle on a graph node with NumPy-like methods. */
export class Tensor {
  /** The graph node this tensor stands for. */
  readonly node: Node;

  /**
   * Wraps a node.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { Tensor, constant } from "./trace.ts";
   * const t = new Tensor(constant(1, [2]).node);
   * deepStrictEqual(t.shape, [2]);
   * ```
   */
  constructor(node: Node) {
    this.node = node;
  }

  /** Static shape. */
  get shape(): Shape {
    return this.node.shape;
  }
  /** Element type. */
  get dtype(): DType {
    return this.node.dtype;
  }
  /** Number of axes. */
  get rank(): number {
    return this.node.shape.length;
  }
  /** Number of elements. */
  get size(): number {
    return sizeOf(this.node.shape);
  }
  /** The last two axes swapped (a matrix transpose); a 1-D tensor is returned as is. */
  get T(): Tensor {
    if (this.rank < 2) return this;
    const perm = [...Array(this.rank).keys()];
    [perm[this.rank - 2], perm[this.rank - 1]] = [perm[this.rank - 1], perm[this.rank - 2]];
    return this.permute(perm);
  }

  /** `this + other`, broadcasting. */
  add(other: TensorLike): Tensor {
    return this.#binary(ops.add, other);
  }
  /** `this - other`, broadcasting. */
  sub(other: TensorLike): Tensor {
    return this.#binary(ops.sub, other);
  }
  /** `this * other`, broadcasting. */
  mul(other: TensorLike): Tensor {
    return this.#binary(ops.mul, other);
  }
  /** `this / other`, broadcasting. */
  div(other: TensorLike): Tensor {
    return this.#binary(ops.div, other);
  }
  /** `this ** other`, broadcasting. */
  pow(other: TensorLike): Tensor {
    return this.#binary(ops.pow, other);
  }
  /** Elementwise maximum, broadcasting. */
  maximum(other: TensorLike): Tensor {
    return this.#binary(ops.maximum, other);
  }
  /** Elementwise minimum, broadcasting. */
  minimum(other: TensorLike): Tensor {
    return this.#binary(ops.minimum, other);
  }
  /** `this == other` → bool. */
  eq(other: TensorLike): Tensor {
    return this.#binary(ops.eq, other);
  }
  /** `this != other` → bool. */
  ne(other: TensorLike): Tensor {
    return this.#binary(ops.ne, other);
  }
  /** `this < other` → bool. */
  lt(other: TensorLike): Tensor {
    return this.#binary(ops.lt, other);
  }
  /** `this <= other` → bool. */
  le(other: TensorLike): Tensor {
    return this.#binary(ops.le, other);
  }
  /** `this > other` → bool. */
  gt(other: TensorLike): Tensor {
    return this.#binary(ops.gt, other);
  }
  /** `this >= other` → bool. */
  ge(other: TensorLike): Tensor {
    return this.#binary(ops.ge, other);
  }

  /** `-this`. */
  neg(): Tensor {
    return this.#unary(ops.neg);
  }
  /** `e^this`. */
  exp(): Tensor {
    return this.#unary(ops.exp);
  }
  /** Natural logarithm. */
  log(): Tensor {
    return this.#unary(ops.log);
  }
  /** Square root. */
  sqrt(): Tensor {
    return this.#unary(ops.sqrt);
  }
  /** `1 / sqrt(this)`. */
  rsqrt(): Tensor {
    return this.#unary(ops.rsqrt);
  }
  /** Hyperbolic tangent. */
  tanh(): Tensor {
    return this.#unary(ops.tanh);
  }
  /** GELU, tanh approximation (PyTorch's `approximate="tanh"`). */
  gelu(): Tensor {
    return this.#unary(ops.gelu);
  }
  /** `max(this, 0)`. */
  relu(): Tensor {
    return this.#unary(ops.relu);
  }
  /** Absolute value. */
  abs(): Tensor {
    return this.#unary(ops.abs);
  }
  /** `1 / (1 + e^-this)`. */
  sigmoid(): Tensor {
    return this.neg().exp().add(1).reciprocal();
  }
  /** `1 / this`. */
  reciprocal(): Tensor {
    return lift(1, this.dtype).div(this);
  }
  /** `this * this`. */
  square(): Tensor {
    return this.mul(this);
  }
  /** Converts the element type. */
  cast(dtype: DType): Tensor {
    checkDType(dtype, "cast");
    return dtype === this.dtype ? this : wrap(makeNode(ops.cast, [this.node], { dtype }));
  }

  /** Reshapes; one dimension may be -1 and is inferred. */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1);
    const inferred = shape.length - known.length;
    if (inferred > 1) throw new Error(`reshape: at most one -1 in [${shape}]`);
    const rest = sizeOf(known);
    const full = shape.map((d) => (d === -1 ? (rest === 0 ? 0 : this.size / rest) : d));
    if (inferred === 1 && !Number.isInteger(full[shape.indexOf(-1)])) {
      throw new Error(`reshape: cannot reshape ${this.size} elements to [${shape}]`);
    }
    return wrap(makeNode(ops.reshape, [this.node], { shape: full }));
  }
  /** Reorders axes: `perm[i]` is the input axis that becomes output axis `i`. */
  permute(perm: readonly number[]): Tensor {
    return wrap(makeNode(ops.permute, [this.node], { perm: [...perm] }));
  }
  /** Swaps two axes. */
  transpose(a: number, b: number): Tensor {
    const perm = [...Array(this.rank).keys()];
    const [i, j] = [normAxis("transpose", a, this.rank), normAxis("transpose", b, this.rank)];
    [perm[i], perm[j]] = [perm[j], perm[i]];
    return this.permute(perm);
  }
  /** Broadcasts to `shape` (NumPy rules). */
  broadcastTo(shape: readonly number[]): Tensor {
    broadcastShapes(this.shape, shape, "broadcastTo");
    return wrap(bcast(this.node, checkShape(shape, "broadcastTo")));
  }
  /** The sub-tensor `[starts, ends)` on every axis. */
  slice(starts: readonly number[], ends: readonly number[]): Tensor {
    return wrap(makeNode(ops.slice, [this.node], { starts: [...starts], ends: [...ends] }));
  }
  /** `length` elements from `start` along `axis`. */
  narrow(axis: number, start: number, length: number): Tensor {
    const a = normAxis("narrow", axis, this.rank);
    const starts = this.shape.map((_, i) => (i === a ? start : 0));
    const ends = this.shape.map((d, i) => (i === a ? start + length : d));
    return this.slice(starts, ends);
  }
  /** Zero padding: `before[i]` and `after[i]` elements on axis `i`. */
  pad(before: readonly number[], after: readonly number[]): Tensor {
    return wrap(makeNode(ops.pad, [this.node], { before: [...before], after: [...after] }));
  }

  /**
   * Matrix product with NumPy semantics for rank ≥ 2: a 2-D right operand is
   * applied to every row of a higher-rank left operand; batch dims broadcast.
   */
  matmul(other: Tensor): Tensor {
    if (this.rank < 2 || other.rank < 2) {
      throw new Error(
        `matmul: operands need rank ≥ 2 (got ${this.dtype}[${this.shape}], ${other.dtype}[${other.shape}])`,
      );
    }
    if (other.rank === 2 && this.rank > 2) {
      const lead = this.shape.slice(0, -1);
      const flat = this.reshape([-1, this.shape[this.rank - 1]]).matmul(other);
      return flat.reshape([...lead, other.shape[1]]);
    }
    const batch = broadcastShapes(this.shape.slice(0, -2), other.shape.slice(0, -2), "matmul");
    const a = this.broadcastTo([...batch, ...this.shape.slice(-2)]);
    const b = other.broadcastTo([...batch, ...other.shape.slice(-2)]);
    return wrap(makeNode(ops.matmul, [a.node, b.node], {}));
  }

  /** Sum over `axes` (default all). */
  sum(axes?: number | readonly number[], keepdims = false): Tensor {
    return this.#reduce(ops.sum, axes, keepdims);
  }
  /** Maximum over `axes` (default all). */
  max(axes?: number | readonly number[], keepdims = false): Tensor {
    return this.#reduce(ops.max, axes, keepdims);
  }
  /** Mean over `axes` (default all). */
  mean(axes?: number | readonly number[], keepdims = false): Tensor {
    const list = this.#axes(axes);
    const count = list.reduce((n, a) => n * this.shape[a], 1);
    return this.sum(list, keepdims).mul(1 / count);
  }
  /** Softmax along `axis` (default the last). */
  softmax(axis = -1): Tensor {
    return this.#lastAxis(ops.softmax, axis);
  }
  /** Log-softmax along `axis` (default the last). */
  logSoftmax(axis = -1): Tensor {
    return this.#lastAxis(ops.logSoftmax, axis);
  }
  /** Normalises the last axis to zero mean and unit variance (no scale or shift). */
  normalize(eps = 1e-5): Tensor {
    return wrap(makeNode(ops.layerNorm, [this.node], { eps }));
  }
  /** Rows of this table picked by integer `indices`: shape `[...indices, ...this.shape[1:]]`. */
  gather(indices: Tensor): Tensor {
    return wrap(makeNode(ops.gather, [this.node, indices.node], {}));
  }
  /** Per-row cross-entropy of logits `[..., C]` against i32 `labels [...]`; negative labels cost 0. */
  crossEntropy(labels: Tensor): Tensor {
    return wrap(makeNode(ops.crossEntropy, [this.node, labels.node], {}));
  }
  /** Seeded inverted dropout: drops with probability `p`, scales the rest by 1/(1-p). */
  dropout(p: number, seed: Tensor, stream: number): Tensor {
    if (p === 0) return this;
    return wrap(makeNode(ops.dropout, [this.node, seed.node], { p, stream }));
  }

  #unary(op: OpDef): Tensor {
    return wrap(makeNode(op, [this.node], {}));
  }
  #binary(op: OpDef, other: TensorLike): Tensor {
    const b = lift(other, this.dtype);
    const shape = broadcastShapes(this.shape, b.shape, op.name);
    return wrap(makeNode(op, [bcast(this.node, shape), bcast(b.node, shape)], {}));
  }
  #axes(axes?: number | readonly number[], op = "reduce"): number[] {
    const list = axes === undefined
      ? [...this.shape.keys()]
      : typeof axes === "number"
      ? [axes]
      : [...axes];
    return list.map((a) => normAxis(op, a, this.rank)).sort((x, y) => x - y);
  }
  #reduce(op: OpDef, axes: number | readonly number[] | undefined, keepdims: boolean): Tensor {
    const list = this.#axes(axes, op.name);
    const reduced = wrap(makeNode(op, [this.node], { axes: list }));
    return keepdims ? reduced.reshape(keptShape(this.shape, list)) : reduced;
  }
  #lastAxis(op: OpDef, axis: number): Tensor {
    const a = normAxis(op.name, axis, this.rank);
    if (a === this.rank - 1) return wrap(makeNode(op, [this.node], {}));
    return this.transpose(a, -1).#lastAxis(op, -1).transpose(a, -1);
  }
}

/**
 * Wraps a node as a Tensor, for code that builds nodes directly (an op of
 * your own, see `defineOp`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { wrap } from "./tensor.ts";
 * import { trace } from "./trace.ts";
 * import { makeNode } from "./ir.ts";
 * import * as ops from "../ops/mod.ts";
 * const g = trace((x) => wrap(makeNode(ops.tanh, [x.node])).sum(), [{ name: "x", shape: [3] }]);
 * strictEqual(g.outputs.out.op, "sum");
 * ```
 */
export function wrap(node: Node): Tensor {
  return new Tensor(node);
}

function lift(value: TensorLike, dtype: DType): Tensor {
  if (value instanceof Tensor) return value;
  if (typeof value !== "number") {
    throw new Error(`expected a Tensor or a number, got ${typeof value}`);
  }
  if (dtype !== "f32" && dtype !== "bool" && !Number.isInteger(value)) {
    throw new Error(`cannot use ${value} with an ${dtype} tensor (cast the tensor to f32 first)`);
  }
  return wrap(fill(value, [], dtype === "bool" ? "f32" : dtype));
}

/** A tensor filled with `value` (or holding `data`, row-major). */
export function constant(
  value: number | readonly number[],
  shape: readonly number[] = [],
  dtype: DType = "f32",
): Tensor {
  const attrs: Record<string, AttrValue> = { shape: [...checkShape(shape, "constant")], dtype };
  if (typeof value === "number") attrs.value = value;
  else attrs.data = [...value];
  return wrap(makeNode(ops.const, [], attrs));
}

/** Integer indices along `axis` of `shape` (i32). */
export function iota(shape: readonly number[], axis: number): Tensor {
  return wrap(makeNode(ops.iota, [], { shape: [...shape], axis, dtype: "i32" }));
}

/** `cond ? a : b` elementwise, broadcasting all three. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const ta = lift(a, b instanceof Tensor ? b.dtype : "f32");
  const tb = lift(b, ta.dtype);
  const shape = broadcastShapes(broadcastShapes(cond.shape, ta.shape, "where"), tb.shape, "where");
  return wrap(
    makeNode(
      ops.where,
      [bcast(cond.node, shape), bcast(ta.node, shape), bcast(tb.node, shape)],
      {},
    ),
  );
}

/** Concatenates tensors along `axis`. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  return wrap(makeNode(ops.concat, tensors.map((t) => t.node), { axis }));
}

/** A frozen tensor defined by a seed and a stream: uniform in `[-bound, bound)`, never stored. */
export function randomUniform(
  shape: readonly number[],
  options: { seed: number; stream: number; bound: number },
): Tensor {
  return wrap(
    makeNode(ops.random, [], { shape: [...shape], distribution: "uniformSymmetric", ...options }),
  );
}
