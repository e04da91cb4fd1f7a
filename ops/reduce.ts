/**
 * Reductions over a set of axes (removed from the result): `sum` and `max`;
 * and `broadcast`, the adjoint of `sum` (each one's vjp is the other).
 * `mean` is `sum` times a constant, built by the tracer.
 *
 * @module
 */
import {
  type CpuTensor,
  defineOp,
  makeNode,
  type Node,
  type OpDef,
  type Shape,
  sizeOf,
} from "../compiler/ir.ts";
import { cast, div, eq, mul } from "./elementwise.ts";
import { copyView, reshape } from "./shape.ts";
import { allocData, normAxis, opError, stridesOf } from "./rules.ts";
import { binary, select, u32 } from "../compiler/kernel_ir/mod.ts";

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** `x` broadcast to `shape` (`x` unchanged when it has that shape). */
function broadcastTo(x: Node, shape: Shape): Node {
  return sameShape(x.shape, shape) ? x : makeNode(broadcast, [x], { shape: [...shape] });
}

/** `x` reshaped (`x` unchanged when it has that shape). */
function reshapeTo(x: Node, shape: Shape): Node {
  return sameShape(x.shape, shape) ? x : makeNode(reshape, [x], { shape: [...shape] });
}

/**
 * Sums `x` down to `shape`: the adjoint of broadcasting `shape` up to
 * `x.shape` (leading axes and axes of size 1 in `shape` are summed).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { sumTo } from "./reduce.ts";
 * import { makeNode } from "../compiler/ir.ts";
 * import { input } from "./leaf.ts";
 * const x = makeNode(input, [], { shape: [4, 2, 3], dtype: "f32" }, "x");
 * deepStrictEqual(sumTo(x, [2, 1]).shape, [2, 1]);
 * ```
 */
export function sumTo(x: Node, shape: Shape): Node {
  if (sameShape(x.shape, shape)) return x;
  const lead = x.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? makeNode(sum, [x], { axes }) : x;
  return reshapeTo(summed, shape);
}

function reducedShape(
  op: string,
  shape: Shape,
  axesAttr: unknown,
): { axes: number[]; shape: number[] } {
  if (!Array.isArray(axesAttr)) throw new Error(`${op}: axes must be an array`);
  const axes = axesAttr.map((a) => normAxis(op, a as number, shape.length));
  if (new Set(axes).size !== axes.length) throw new Error(`${op}: repeated axis in [${axesAttr}]`);
  return { axes, shape: shape.filter((_, i) => !axes.includes(i)) };
}

/** Shape of the result with reduced axes kept as size 1 (for broadcasting back). */
export function keptShape(shape: Shape, axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reduceCpu(
  x: CpuTensor,
  axesAttr: unknown,
  init: number,
  f: (acc: number, v: number) => number,
) {
  const { axes, shape } = reducedShape("reduce", x.shape, axesAttr);
  // -Infinity does not fit integer arrays: use the dtype's smallest value.
  const start = init !== -Infinity || x.dtype === "f32" ? init : x.dtype === "i32" ? -(2 ** 31) : 0;
  const out = allocData(x.dtype, sizeOf(shape)).fill(start);
  const outStrides = stridesOf(keptShape(x.shape, axes));
  const pos = new Array<number>(x.shape.length).fill(0);
  for (let i = 0; i < x.data.length; i++) {
    let o = 0;
    for (let d = 0; d < pos.length; d++) if (!axes.includes(d)) o += pos[d] * outStrides[d];
    out[o] = f(out[o], x.data[i]);
    for (let d = x.shape.length - 1; d >= 0; d--) {
      if (++pos[d] < x.shape[d]) break;
      pos[d] = 0;
    }
  }
  return out;
}

export const sum: OpDef = defineOp({
  name: "sum",
  kind: "reduce",
  infer: (inputs, attrs) => {
    if (inputs.length !== 1) opError("sum", "takes one operand", inputs);
    if (inputs[0].dtype === "bool") opError("sum", "cannot sum bool (cast it first)", inputs);
    return {
      shape: reducedShape("sum", inputs[0].shape, attrs.axes).shape,
      dtype: inputs[0].dtype,
    };
  },
  cpu: ([x], { node }) => reduceCpu(x, node.attrs.axes, 0, (a, v) => a + v),
  vjp: (node, g) => {
    const x = node.inputs[0];
    const { axes } = reducedShape("sum", x.shape, node.attrs.axes);
    return [broadcastTo(reshapeTo(g, keptShape(x.shape, axes)), x.shape)];
  },
  lowering: "reduce",
  reduction: { identity: () => 0, combine: (a, b) => binary("+", a, b) },
});

export const max: OpDef = defineOp({
  name: "max",
  kind: "reduce",
  infer: (inputs, attrs) => {
    if (inputs.length !== 1) opError("max", "takes one operand", inputs);
    if (inputs[0].dtype === "bool") opError("max", "cannot reduce bool", inputs);
    const { shape } = reducedShape("max", inputs[0].shape, attrs.axes);
    return { shape, dtype: inputs[0].dtype };
  },
  cpu: ([x], { node }) => reduceCpu(x, node.attrs.axes, -Infinity, (a, v) => (v > a ? v : a)),
  vjp: (node, g) => {
    // Like JAX: the gradient is shared equally between tied maxima.
    const x = node.inputs[0];
    const { axes } = reducedShape("max", x.shape, node.attrs.axes);
    const kept = keptShape(x.shape, axes);
    const spread = (v: Node) => broadcastTo(reshapeTo(v, kept), x.shape);
    const isMax = makeNode(cast, [makeNode(eq, [x, spread(node)])], { dtype: "f32" });
    const count = spread(makeNode(sum, [isMax], { axes }));
    return [makeNode(mul, [makeNode(div, [isMax, count]), spread(g)])];
  },
  lowering: "reduce",
  // `b > a` keeps the running maximum where b is NaN, as the reference's comparison does.
  reduction: {
    identity: (dtype) => dtype === "f32" ? -Infinity : dtype === "i32" ? -(2 ** 31) : 0,
    combine: (a, b) => select(binary(">", b, a), b, a),
  },
});

export const broadcast: OpDef = defineOp({
  name: "broadcast",
  kind: "shape",
  lowering: "inline",
  // Index arithmetic: broadcast axes read coordinate 0 of the operand.
  inline: (node, at, ctx) => {
    const x = node.inputs[0];
    if (sizeOf(x.shape) === 1) return ctx.value(x, { shape: x.shape, linear: u32(0) });
    const coords = ctx.coords(at);
    const lead = node.shape.length - x.shape.length;
    return ctx.value(x, {
      shape: x.shape,
      coords: x.shape.map((d, i) => (d === 1 ? u32(0) : coords[lead + i])),
    });
  },
  infer: (inputs, attrs) => {
    const [x] = inputs;
    const shape = attrs.shape as number[];
    if (!Array.isArray(shape) || shape.length < x.shape.length) {
      opError("broadcast", `cannot broadcast to [${shape}]`, inputs);
    }
    const lead = shape.length - x.shape.length;
    x.shape.forEach((d, i) => {
      if (d !== 1 && d !== shape[lead + i]) {
        opError("broadcast", `cannot broadcast to [${shape.join(",")}]`, inputs);
      }
    });
    return { shape, dtype: x.dtype };
  },
  cpu: ([x], { node }) => {
    const lead = node.shape.length - x.shape.length;
    const xs = stridesOf(x.shape);
    return copyView(x, node.shape, (pos) => {
      let idx = 0;
      for (let i = 0; i < x.shape.length; i++) if (x.shape[i] !== 1) idx += pos[lead + i] * xs[i];
      return idx;
    });
  },
  vjp: (node, g) => [sumTo(g, node.inputs[0].shape)],
});
