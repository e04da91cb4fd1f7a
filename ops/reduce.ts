/**
 * Reductions over a set of axes (removed from the result): `sum` and `max`.
 * `mean` is `sum` times a constant, built by the tracer.
 */
import { makeNode, type Shape, sizeOf } from "../compiler/ir.ts";
import { bcast, div, mul, reshape } from "./_build.ts";
import { allocData, type CpuTensor, defineOp, normAxis, opError, stridesOf } from "./registry.ts";

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

defineOp({
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
    return [bcast(reshape(g, keptShape(x.shape, axes)), x.shape)];
  },
  wgsl: { kind: "kernel", family: "reduce" },
});

defineOp({
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
    const isMax = makeNode("cast", [makeNode("eq", [x, bcast(reshape(node, kept), x.shape)], {})], {
      dtype: "f32",
    });
    const count = reshape(makeNode("sum", [isMax], { axes }), kept);
    return [mul(div(isMax, bcast(count, x.shape)), bcast(reshape(g, kept), x.shape))];
  },
  wgsl: { kind: "kernel", family: "reduce" },
});
