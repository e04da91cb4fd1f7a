/**
 * Op cases for the wasm backend: the cases every backend runs
 * (tests/backends/_op_cases.ts), plus larger ones that take the vector loops
 * and the multi-threaded paths.
 *
 * @module
 */
import type { Node } from "../../../compiler/ir.ts";
import { f32, input, ints, op } from "../_op_cases.ts";

export { CASES, feeds, inputs, params } from "../_op_cases.ts";

/** Larger cases: vector loops, tails, several threads, strided operands. */
export const LARGE_CASES: Record<string, () => Node[]> = {
  elementwise: () => {
    const x = f32([37, 1031]);
    const y = f32([37, 1031], 0.1, 3);
    const bias = op("broadcast", [f32([1031])], { shape: [37, 1031] });
    const col = op("broadcast", [f32([37, 1])], { shape: [37, 1031] });
    return [
      op("gelu", [op("add", [op("mul", [x, op("log", [y])]), bias])]),
      op("tanh", [op("sub", [op("exp", [op("neg", [col])]), op("sqrt", [y])])]),
      op("mul", [op("permute", [f32([1031, 37])], { perm: [1, 0] }), x]),
    ];
  },
  matmul: () => [
    op("matmul", [f32([67, 301]), f32([301, 130])]),
    op("matmul", [op("permute", [f32([301, 67])], { perm: [1, 0] }), f32([301, 130])]),
    op("matmul", [f32([3, 45, 77]), op("permute", [f32([3, 53, 77])], { perm: [0, 2, 1] })]),
  ],
  reduce: () => {
    const x = f32([61, 29, 67]);
    return [
      op("sum", [x], { axes: [2] }),
      op("sum", [x], { axes: [0, 1] }),
      op("max", [x], { axes: [1] }),
      op("sum", [x], { axes: [0, 2] }),
    ];
  },
  rowwise: () => {
    const x = f32([301, 67], -4, 4);
    const g = f32([301, 67]);
    const labels = ints([301], -1, 66);
    return [
      op("softmax", [x]),
      op("logSoftmaxBackward", [op("logSoftmax", [x]), g]),
      op("layerNormBackward", [x, g], { eps: 1e-5 }),
      op("crossEntropyBackward", [x, labels, f32([301])]),
      op("crossEntropy", [x, labels]),
    ];
  },
  random: () => [
    op("random", [], {
      shape: [301, 257],
      seed: 7,
      stream: 3,
      distribution: "uniformSymmetric",
      bound: 0.125,
    }),
    op("dropout", [f32([301, 67]), input([], "u32", () => 99)], { p: 0.25, stream: 2 }),
  ],
  index: () => [
    op("gather", [f32([97, 67]), ints([301], 0, 96)]),
    op("scatterAdd", [f32([301, 67]), ints([301], 0, 96)], { rows: 97 }),
  ],
};
