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
  type Shape,
  sizeOf,
} from "./ir.ts";
import "../ops/mod.ts";
import { bcast, broadcastShapes, fill } from "../ops/_build.ts";
import { keptShape } from "../ops/reduce.ts";
import { normAxis } from "../ops/registry.ts";

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
   * import { Tensor, constant } from "./trace.ts";
   * const t = new Tensor(constant(1, [2]).node);
   * console.log(t.shape); // [2]
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
    return this.#binary("add", other);
  }
  /** `this - other`, broadcasting. */
  sub(other: TensorLike): Tensor {
    return this.#binary("sub", other);
  }
  /** `this * other`, broadcasting. */
  mul(other: TensorLike): Tensor {
    return this.#binary("mul", other);
  }
  /** `this / other`, broadcasting. */
  div(other: TensorLike): Tensor {
    return this.#binary("div", other);
  }
  /** `this ** other`, broadcasting. */
  pow(other: TensorLike): Tensor {
    return this.#binary("pow", other);
  }
  /** Elementwise maximum, broadcasting. */
  maximum(other: TensorLike): Tensor {
    return this.#binary("maximum", other);
  }
  /** Elementwise minimum, broadcasting. */
  minimum(other: TensorLike): Tensor {
    return this.#binary("minimum", other);
  }
  /** `this == other` → bool. */
  eq(other: TensorLike): Tensor {
    return this.#binary("eq", other);
  }
  /** `this != other` → bool. */
  ne(other: TensorLike): Tensor {
    return this.#binary("ne", other);
  }
  /** `this < other` → bool. */
  lt(other: TensorLike): Tensor {
    return this.#binary("lt", other);
  }
  /** `this <= other` → bool. */
  le(other: TensorLike): Tensor {
    return this.#binary("le", other);
  }
  /** `this > other` → bool. */
  gt(other: TensorLike): Tensor {
    return this.#binary("gt", other);
  }
  /** `this >= other` → bool. */
  ge(other: TensorLike): Tensor {
    return this.#binary("ge", other);
  }

  /** `-this`. */
  neg(): Tensor {
    return this.#unary("neg");
  }
  /** `e^this`. */
  exp(): Tensor {
    return this.#unary("exp");
  }
  /** Natural logarithm. */
  log(): Tensor {
    return this.#unary("log");
  }
  /** Square root. */
  sqrt(): Tensor {
    return this.#unary("sqrt");
  }
  /** `1 / sqrt(this)`. */
  rsqrt(): Tensor {
    return this.#unary("rsqrt");
  }
  /** Hyperbolic tangent. */
  tanh(): Tensor {
    return this.#unary("tanh");
  }
  /** GELU, tanh approximation (PyTorch's `approximate="tanh"`). */
  gelu(): Tensor {
    return this.#unary("gelu");
  }
  /** `max(this, 0)`. */
  relu(): Tensor {
    return this.#unary("relu");
  }
  /** Absolute value. */
  abs(): Tensor {
    return this.#unary("abs");
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
    return dtype === this.dtype ? this : wrap(makeNode("cast", [this.node], { dtype }));
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
    return wrap(makeNode("reshape", [this.node], { shape: full }));
  }
  /** Reorders axes: `perm[i]` is the input axis that becomes output axis `i`. */
  permute(perm: readonly number[]): Tensor {
    return wrap(makeNode("permute", [this.node], { perm: [...perm] }));
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
    return wrap(makeNode("slice", [this.node], { starts: [...starts], ends: [...ends] }));
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
    return wrap(makeNode("pad", [this.node], { before: [...before], after: [...after] }));
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
    return wrap(makeNode("matmul", [a.node, b.node], {}));
  }

  /** Sum over `axes` (default all). */
  sum(axes?: number | readonly number[], keepdims = false): Tensor {
    return this.#reduce("sum", axes, keepdims);
  }
  /** Maximum over `axes` (default all). */
  max(axes?: number | readonly number[], keepdims = false): Tensor {
    return this.#reduce("max", axes, keepdims);
  }
  /** Mean over `axes` (default all). */
  mean(axes?: number | readonly number[], keepdims = false): Tensor {
    const list = this.#axes(axes);
    const count = list.reduce((n, a) => n * this.shape[a], 1);
    return this.sum(list, keepdims).mul(1 / count);
  }
  /** Softmax along `axis` (default the last). */
  softmax(axis = -1): Tensor {
    return this.#lastAxis("softmax", axis);
  }
  /** Log-softmax along `axis` (default the last). */
  logSoftmax(axis = -1): Tensor {
    return this.#lastAxis("logSoftmax", axis);
  }
  /** Normalises the last axis to zero mean and unit variance (no scale or shift). */
  normalize(eps = 1e-5): Tensor {
    return wrap(makeNode("layerNorm", [this.node], { eps }));
  }
  /** Rows of this table picked by integer `indices`: shape `[...indices, ...this.shape[1:]]`. */
  gather(indices: Tensor): Tensor {
    return wrap(makeNode("gather", [this.node, indices.node], {}));
  }
  /** Per-row cross-entropy of logits `[..., C]` against i32 `labels [...]`; negative labels cost 0. */
  crossEntropy(labels: Tensor): Tensor {
    return wrap(makeNode("crossEntropy", [this.node, labels.node], {}));
  }
  /** Seeded inverted dropout: drops with probability `p`, scales the rest by 1/(1-p). */
  dropout(p: number, seed: Tensor, stream: number): Tensor {
    if (p === 0) return this;
    return wrap(makeNode("dropout", [this.node, seed.node], { p, stream }));
  }

  #unary(op: string): Tensor {
    return wrap(makeNode(op, [this.node], {}));
  }
  #binary(op: string, other: TensorLike): Tensor {
    const b = lift(other, this.dtype);
    const shape = broadcastShapes(this.shape, b.shape, op);
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
  #reduce(op: string, axes: number | readonly number[] | undefined, keepdims: boolean): Tensor {
    const list = this.#axes(axes, op);
    const reduced = wrap(makeNode(op, [this.node], { axes: list }));
    return keepdims ? reduced.reshape(keptShape(this.shape, list)) : reduced;
  }
  #lastAxis(op: string, axis: number): Tensor {
    const a = normAxis(op, axis, this.rank);
    if (a === this.rank - 1) return wrap(makeNode(op, [this.node], {}));
    return this.transpose(a, -1).#lastAxis(op, -1).transpose(a, -1);
  }
}

/** Wraps a node as a Tensor (for code that builds nodes directly). */
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
  return wrap(makeNode("const", [], attrs));
}

/** Integer indices along `axis` of `shape` (i32). */
export function iota(shape: readonly number[], axis: number): Tensor {
  return wrap(makeNode("iota", [], { shape: [...shape], axis, dtype: "i32" }));
}

/** `cond ? a : b` elementwise, broadcasting all three. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const ta = lift(a, b instanceof Tensor ? b.dtype : "f32");
  const tb = lift(b, ta.dtype);
  const shape = broadcastShapes(broadcastShapes(cond.shape, ta.shape, "where"), tb.shape, "where");
  return wrap(
    makeNode("where", [bcast(cond.node, shape), bcast(ta.node, shape), bcast(tb.node, shape)], {}),
  );
}

/** Concatenates tensors along `axis`. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  return wrap(makeNode("concat", tensors.map((t) => t.node), { axis }));
}

/** A frozen tensor defined by a seed and a stream: uniform in `[-bound, bound)`, never stored. */
export function randomUniform(
  shape: readonly number[],
  options: { seed: number; stream: number; bound: number },
): Tensor {
  return wrap(
    makeNode("random", [], { shape: [...shape], distribution: "uniformSymmetric", ...options }),
  );
}
