/**
 * Op cases every backend's registry walk runs: one or more nodes per built-in
 * op, on shapes that are not multiples of 4 or of a tile, with 0- and 1-sized
 * dims, and the inputs and params they read.
 *
 * @module
 */
import { builtinOps } from "../../ops/mod.ts";
import { type DType, makeNode, type Node } from "../../compiler/ir.ts";
import { mulberry32 } from "../../data/random.ts";
import * as ops from "../../ops/mod.ts";

const random = mulberry32(20240531);
/** Values fed to the inputs the cases create. */
export const feeds: Record<string, number[]> = {};
/** Values of the params the cases create. */
export const params: Record<string, number[]> = {};
/** The inputs the cases create, in order. */
export const inputs: Node[] = [];

export function input(shape: number[], dtype: DType, value: () => number): Node {
  const name = `in${inputs.length}`;
  const node = makeNode(ops.input, [], { shape, dtype }, name);
  inputs.push(node);
  feeds[name] = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, value);
  return node;
}
export const f32 = (shape: number[], lo = -2, hi = 2) =>
  input(shape, "f32", () => lo + (hi - lo) * random());
export const ints = (shape: number[], lo: number, hi: number, dtype: DType = "i32") =>
  input(shape, dtype, () => lo + Math.floor((hi - lo + 1) * random()));
export const small = (shape: number[]) => input(shape, "f32", () => Math.floor(random() * 4) - 1);
const opNamed = new Map(builtinOps().map((o) => [o.name, o]));
export const op = (name: string, operands: Node[], attrs = {}) =>
  makeNode(opNamed.get(name)!, operands, attrs);

/** Per op, the nodes whose values are checked. */
export const CASES: Record<string, () => Node[]> = {
  input: () => [f32([2, 3])],
  param: () => {
    const p = makeNode(ops.param, [], { shape: [3], dtype: "f32", role: "trainable" }, "p");
    params.p = [0.5, -1, 2];
    return [p, op("mul", [p, f32([3])])];
  },
  const: () => [
    op("const", [], { value: 1.5, shape: [3, 1], dtype: "f32" }),
    op("add", [
      op("const", [], { data: [1, 2, 3, 4], shape: [2, 2], dtype: "i32" }),
      ints([2, 2], -3, 3),
    ]),
  ],
  iota: () => [op("iota", [], { shape: [3, 4, 5], axis: 1, dtype: "i32" })],
  random: () => [
    op("random", [], {
      shape: [7, 9],
      seed: 3,
      stream: 11,
      distribution: "uniformSymmetric",
      bound: 0.5,
    }),
  ],
  dropout: () => {
    const seed = input([], "u32", () => 1234);
    return [op("dropout", [f32([3, 41]), seed], { p: 0.3, stream: 5 })];
  },
  neg: () => [op("neg", [f32([3, 5, 7])])],
  exp: () => [op("exp", [f32([0, 3])]), op("exp", [f32([1])])],
  log: () => [op("log", [f32([4, 9], 0.1, 3)])],
  sqrt: () => [op("sqrt", [f32([4, 9], 0, 3)])],
  rsqrt: () => [op("rsqrt", [f32([4, 9], 0.1, 3)])],
  tanh: () => [op("tanh", [f32([4, 9], -30, 30)])],
  relu: () => [op("relu", [f32([4, 9])])],
  abs: () => [op("abs", [f32([4, 9])])],
  gelu: () => [op("gelu", [f32([4, 9], -5, 5)])],
  add: () => [
    op("add", [f32([5, 13]), f32([5, 13])]),
    op("add", [ints([7], -9, 9), ints([7], -9, 9)]),
  ],
  sub: () => [
    op("sub", [f32([5, 13]), f32([5, 13])]),
    op("sub", [ints([7], -9, 9), ints([7], -9, 9)]),
  ],
  mul: () => [
    op("mul", [f32([5, 13]), f32([5, 13])]),
    op("mul", [ints([7], 0, 9, "u32"), ints([7], 0, 9, "u32")]),
  ],
  div: () => [
    op("div", [f32([5, 13]), f32([5, 13], 0.5, 2)]),
    op("div", [ints([9], -9, 9), ints([9], -2, 2)]),
  ],
  pow: () => [op("pow", [f32([5, 13], 0.2, 2), f32([5, 13])])],
  maximum: () => [
    op("maximum", [f32([5, 3]), f32([5, 3])]),
    op("maximum", [ints([6], -5, 5), ints([6], -5, 5)]),
  ],
  minimum: () => [op("minimum", [f32([5, 3]), f32([5, 3])])],
  where: () => [op("where", [op("gt", [f32([4, 6]), f32([4, 6])]), f32([4, 6]), f32([4, 6])])],
  cast: () => {
    const x = f32([11], -3, 3);
    const b = op("cast", [x], { dtype: "bool" });
    return [
      op("cast", [x], { dtype: "i32" }),
      b,
      op("cast", [b], { dtype: "f32" }),
      op("cast", [ints([5], 0, 7)], { dtype: "u32" }),
    ];
  },
  broadcast: () => [
    op("broadcast", [f32([3, 1])], { shape: [2, 3, 5] }),
    op("exp", [op("broadcast", [f32([])], { shape: [4] })]),
  ],
  reshape: () => [op("reshape", [f32([6, 5])], { shape: [3, 10] })],
  permute: () => {
    const x = f32([2, 3, 5]);
    return [
      op("permute", [x], { perm: [2, 0, 1] }),
      op("neg", [op("permute", [x], { perm: [1, 2, 0] })]),
    ];
  },
  slice: () => [op("slice", [f32([5, 7])], { starts: [1, 2], ends: [4, 7] })],
  pad: () => [
    op("pad", [f32([3, 2])], { before: [1, 0], after: [2, 3] }),
    op("pad", [f32([0, 2])], { before: [1, 0], after: [0, 1] }),
  ],
  concat: () => [op("concat", [f32([2, 3]), f32([2, 0]), f32([2, 4])], { axis: 1 })],
  sum: () => {
    const x = f32([3, 70, 5]);
    return [
      op("sum", [x], { axes: [1] }),
      op("sum", [x], { axes: [0, 2] }),
      op("sum", [op("mul", [x, x])], { axes: [0, 1, 2] }),
      op("sum", [ints([4, 3], -9, 9)], { axes: [0] }),
      op("sum", [f32([3, 0])], { axes: [1] }),
    ];
  },
  max: () => [
    op("max", [f32([3, 70, 5])], { axes: [1] }),
    op("max", [ints([4, 3], -9, 9)], { axes: [1] }),
  ],
  matmul: () => {
    const b = f32([7, 3]);
    const bias = op("broadcast", [f32([3])], { shape: [5, 3] });
    return [
      op("add", [op("matmul", [f32([5, 7]), b]), bias]),
      op("matmul", [f32([2, 3, 5]), op("permute", [f32([2, 6, 5])], { perm: [0, 2, 1] })]),
      op("matmul", [op("slice", [f32([5, 9])], { starts: [0, 1], ends: [5, 8] }), b]),
      op("matmul", [op("permute", [f32([3, 2, 4])], { perm: [1, 0, 2] }), f32([2, 4, 3])]),
      op("matmul", [f32([2, 0]), f32([0, 3])]),
      op("matmul", [f32([2, 3, 5]), op("broadcast", [f32([5, 4])], { shape: [2, 5, 4] })]),
      op("matmul", [f32([1, 7]), f32([7, 1])]),
    ];
  },
  softmax: () => [
    op("softmax", [f32([3, 7])]),
    op("softmax", [f32([2, 70], -5, 5)]),
    op("softmax", [f32([4, 1])]),
  ],
  logSoftmax: () => [op("logSoftmax", [f32([3, 7])])],
  layerNorm: () => [
    op("layerNorm", [f32([3, 9])], { eps: 1e-5 }),
    op("layerNorm", [f32([2, 67])], { eps: 0.1 }),
  ],
  crossEntropy: () => [op("crossEntropy", [f32([6, 5]), ints([6], -1, 4)])],
  softmaxBackward: () => [op("softmaxBackward", [op("softmax", [f32([3, 7])]), f32([3, 7])])],
  logSoftmaxBackward:
    () => [op("logSoftmaxBackward", [op("logSoftmax", [f32([3, 7])]), f32([3, 7])])],
  layerNormBackward: () => [op("layerNormBackward", [f32([3, 9]), f32([3, 9])], { eps: 1e-5 })],
  crossEntropyBackward:
    () => [op("crossEntropyBackward", [f32([6, 5]), ints([6], -1, 4), f32([6])])],
  gather: () => [
    op("gather", [f32([7, 3]), ints([4, 2], 0, 6)]),
    op("gather", [f32([5]), ints([3], 0, 4, "u32")]),
  ],
  scatterAdd: () => [op("scatterAdd", [f32([4, 2, 3]), ints([4, 2], 0, 3)], { rows: 7 })],
};
for (const name of ["eq", "ne", "lt", "le", "gt", "ge"]) {
  const bools = () => op("cast", [small([7])], { dtype: "bool" });
  CASES[name] = () => [
    op(name, [small([4, 5]), small([4, 5])]),
    op(name, [ints([6], -2, 2), ints([6], -2, 2)]),
    op(name, [bools(), bools()]),
  ];
}
