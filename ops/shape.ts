/**
 * Shape ops: reshape, permute, slice, pad, concat (broadcast lives with the
 * reductions in `reduce.ts`: each is the other's adjoint). Backends compute
 * them as index arithmetic inside the kernels that read them.
 *
 * @module
 */
import {
  type CpuTensor,
  defineOp,
  type InlineContext,
  type KernelIndex,
  makeNode,
  type Node,
  type OpDef,
  sizeOf,
} from "../compiler/ir.ts";
import { allocData, normAxis, opError, stridesOf } from "./rules.ts";
import { binary, type Expr, lit, math, select, u32 } from "../compiler/kernel_ir/mod.ts";

/** Copies a strided view of `x` into a new row-major array of `shape` (CPU rules of views). */
export function copyView(x: CpuTensor, shape: readonly number[], index: (out: number[]) => number) {
  const out = allocData(x.dtype, sizeOf(shape));
  const pos = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    out[i] = x.data[index(pos)];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++pos[d] < shape[d]) break;
      pos[d] = 0;
    }
  }
  return out;
}

export const reshape: OpDef = defineOp({
  name: "reshape",
  kind: "shape",
  lowering: "inline",
  inline: reshapeInline,
  infer: (inputs, attrs) => {
    const shape = attrs.shape as number[];
    if (sizeOf(shape) !== sizeOf(inputs[0].shape)) {
      opError("reshape", `cannot reshape to [${shape.join(",")}]: element counts differ`, inputs);
    }
    return { shape, dtype: inputs[0].dtype };
  },
  cpu: ([x]) => x.data.slice(),
  vjp: (node, g) => [makeNode(reshape, [g], { shape: [...node.inputs[0].shape] })],
});

export const permute: OpDef = defineOp({
  name: "permute",
  kind: "shape",
  lowering: "inline",
  inline: permuteInline,
  infer: (inputs, attrs) => {
    const perm = attrs.perm as number[];
    const rank = inputs[0].shape.length;
    const sorted = Array.isArray(perm) ? [...perm].sort((a, b) => a - b) : [];
    if (sorted.length !== rank || sorted.some((p, i) => p !== i)) {
      opError("permute", `perm [${perm}] is not a permutation of ${rank} axes`, inputs);
    }
    return { shape: perm.map((p) => inputs[0].shape[p]), dtype: inputs[0].dtype };
  },
  cpu: ([x], { node }) => {
    const perm = node.attrs.perm as number[];
    const xs = stridesOf(x.shape);
    return copyView(x, node.shape, (pos) => pos.reduce((s, p, i) => s + p * xs[perm[i]], 0));
  },
  vjp: (node, g) => {
    const perm = node.attrs.perm as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [makeNode(permute, [g], { perm: inverse })];
  },
});

function checkBounds(op: string, inputs: CpuTensorLike[], starts: number[], ends: number[]) {
  const shape = inputs[0].shape;
  if (!Array.isArray(starts) || !Array.isArray(ends) || starts.length !== shape.length) {
    opError(op, `needs starts and ends for each of ${shape.length} axes`, inputs);
  }
  shape.forEach((d, i) => {
    const ok = Number.isInteger(starts[i]) && Number.isInteger(ends[i]) && 0 <= starts[i] &&
      starts[i] <= ends[i] && ends[i] <= d;
    if (!ok) opError(op, `range [${starts[i]}, ${ends[i]}) is out of bounds on axis ${i}`, inputs);
  });
}
type CpuTensorLike = { shape: readonly number[]; dtype: CpuTensor["dtype"] };

export const slice: OpDef = defineOp({
  name: "slice",
  kind: "shape",
  lowering: "inline",
  inline: sliceInline,
  infer: (inputs, attrs) => {
    const starts = attrs.starts as number[];
    const ends = attrs.ends as number[];
    checkBounds("slice", [...inputs], starts, ends);
    return { shape: ends.map((e, i) => e - starts[i]), dtype: inputs[0].dtype };
  },
  cpu: ([x], { node }) => {
    const starts = node.attrs.starts as number[];
    const xs = stridesOf(x.shape);
    return copyView(
      x,
      node.shape,
      (pos) => pos.reduce((s, p, i) => s + (p + starts[i]) * xs[i], 0),
    );
  },
  vjp: (node, g) => {
    const x = node.inputs[0];
    const starts = node.attrs.starts as number[];
    const ends = node.attrs.ends as number[];
    return [makeNode(pad, [g], { before: starts, after: ends.map((e, i) => x.shape[i] - e) })];
  },
});

export const pad: OpDef = defineOp({
  name: "pad",
  kind: "shape",
  lowering: "inline",
  inline: padInline,
  infer: (inputs, attrs) => {
    const before = attrs.before as number[];
    const after = attrs.after as number[];
    const rank = inputs[0].shape.length;
    const valid = (v: number[]) =>
      Array.isArray(v) && v.length === rank && v.every((p) => Number.isInteger(p) && p >= 0);
    if (!valid(before) || !valid(after)) {
      opError("pad", `before/after must be ${rank} non-negative integers`, inputs);
    }
    return {
      shape: inputs[0].shape.map((d, i) => d + before[i] + after[i]),
      dtype: inputs[0].dtype,
    };
  },
  cpu: ([x], { node }) => {
    const before = node.attrs.before as number[];
    const out = allocData(node.dtype, sizeOf(node.shape));
    const os = stridesOf(node.shape);
    const pos = new Array<number>(x.shape.length).fill(0);
    for (let i = 0; i < x.data.length; i++) {
      out[pos.reduce((s, p, d) => s + (p + before[d]) * os[d], 0)] = x.data[i];
      for (let d = x.shape.length - 1; d >= 0; d--) {
        if (++pos[d] < x.shape[d]) break;
        pos[d] = 0;
      }
    }
    return out;
  },
  vjp: (node, g) => {
    const before = node.attrs.before as number[];
    const x = node.inputs[0];
    return [makeNode(slice, [g], { starts: before, ends: before.map((b, i) => b + x.shape[i]) })];
  },
});

export const concat: OpDef = defineOp({
  name: "concat",
  kind: "shape",
  lowering: "inline",
  inline: concatInline,
  infer: (inputs, attrs) => {
    if (inputs.length === 0) opError("concat", "needs at least one operand", inputs);
    const rank = inputs[0].shape.length;
    const axis = normAxis("concat", attrs.axis as number, rank);
    let total = 0;
    for (const t of inputs) {
      const fits = t.dtype === inputs[0].dtype && t.shape.length === rank &&
        t.shape.every((d, i) => i === axis || d === inputs[0].shape[i]);
      if (!fits) opError("concat", `operands must agree except on axis ${axis}`, inputs);
      total += t.shape[axis];
    }
    const shape = [...inputs[0].shape];
    shape[axis] = total;
    return { shape, dtype: inputs[0].dtype };
  },
  cpu: (inputs, { node }) => {
    const axis = normAxis("concat", node.attrs.axis as number, node.shape.length);
    const out = allocData(node.dtype, sizeOf(node.shape));
    const outer = sizeOf(node.shape.slice(0, axis));
    const inner = sizeOf(node.shape.slice(axis + 1));
    let offset = 0;
    for (const t of inputs) {
      const chunk = t.shape[axis] * inner;
      for (let o = 0; o < outer; o++) {
        out.set(t.data.subarray(o * chunk, (o + 1) * chunk), o * node.shape[axis] * inner + offset);
      }
      offset += chunk;
    }
    return out;
  },
  vjp: (node, g) => {
    const axis = normAxis("concat", node.attrs.axis as number, node.shape.length);
    let start = 0;
    return node.inputs.map((t) => {
      const starts = node.shape.map((_, i) => (i === axis ? start : 0));
      const ends = node.shape.map((d, i) => (i === axis ? start + t.shape[axis] : d));
      start += t.shape[axis];
      return makeNode(slice, [g], { starts, ends });
    });
  },
});

// Kernel lowering of the views: index arithmetic on the way to the operand.

function reshapeInline(node: Node, at: KernelIndex, ctx: InlineContext): Expr {
  const x = node.inputs[0];
  return ctx.value(x, { shape: x.shape, linear: ctx.linear(at) });
}

function permuteInline(node: Node, at: KernelIndex, ctx: InlineContext): Expr {
  const coords = ctx.coords(at);
  const inner: Expr[] = [];
  (node.attrs.perm as number[]).forEach((p, i) => (inner[p] = coords[i]));
  return ctx.value(node.inputs[0], { shape: node.inputs[0].shape, coords: inner });
}

function sliceInline(node: Node, at: KernelIndex, ctx: InlineContext): Expr {
  const starts = node.attrs.starts as number[];
  const coords = ctx.coords(at).map((c, i) => starts[i] === 0 ? c : binary("+", c, u32(starts[i])));
  return ctx.value(node.inputs[0], { shape: node.inputs[0].shape, coords });
}

/** `c - offset` clamped into `[0, size)`: a valid address even where the result is masked off. */
function shiftedInto(c: Expr, offset: number, size: number): Expr {
  const shifted = offset === 0
    ? c
    : select(binary(">=", c, u32(offset)), binary("-", c, u32(offset)), u32(0));
  return math("min", shifted, u32(size - 1));
}

function padInline(node: Node, at: KernelIndex, ctx: InlineContext): Expr {
  const x = node.inputs[0];
  const zero = lit(0, node.dtype);
  if (sizeOf(x.shape) === 0) return zero;
  const before = node.attrs.before as number[];
  const inside: Expr[] = [];
  const inner = ctx.coords(at).map((c, i) => {
    const [b, d] = [before[i], x.shape[i]];
    if (b === 0 && d === node.shape[i]) return c;
    inside.push(binary(">=", c, u32(b)), binary("<", c, u32(b + d)));
    return ctx.bind(shiftedInto(c, b, d));
  });
  const v = ctx.value(x, { shape: x.shape, coords: inner });
  return inside.length === 0 ? v : select(inside.reduce((a, b) => binary("&&", a, b)), v, zero);
}

function concatInline(node: Node, at: KernelIndex, ctx: InlineContext): Expr {
  const axis = normAxis("concat", node.attrs.axis as number, node.shape.length);
  const coords = ctx.coords(at);
  const c = coords[axis];
  let offset = 0;
  const parts: { end: number; value: Expr }[] = [];
  for (const x of node.inputs) {
    const d = x.shape[axis];
    if (d > 0 && sizeOf(x.shape) > 0) {
      const local = ctx.bind(shiftedInto(c, offset, d));
      const inner = coords.map((v, i) => (i === axis ? local : v));
      parts.push({ end: offset + d, value: ctx.value(x, { shape: x.shape, coords: inner }) });
    }
    offset += d;
  }
  if (parts.length === 0) return lit(0, node.dtype);
  let result = parts[parts.length - 1].value;
  for (let k = parts.length - 2; k >= 0; k--) {
    result = select(binary("<", c, u32(parts[k].end)), parts[k].value, result);
  }
  return result;
}
