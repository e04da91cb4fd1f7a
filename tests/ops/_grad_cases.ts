// The gradient-check cases, keyed by the op each one exercises. Each case
// draws its shapes (and fixed integer inputs) from a seeded PRNG.

import { makeNode } from "../../compiler/ir.ts";
import { concat, type InputSpec, param, Tensor, where } from "../../compiler/trace.ts";
import {
  checkGradients,
  type GradCheckOptions,
  type GradCheckReport,
  type Rng,
  samplers,
} from "./_gradcheck.ts";
import * as ops from "../../ops/mod.ts";

const f32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "f32" });
const i32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "i32" });

/** One gradient case: draws its shapes from `rng` and runs `checkGradients`. */
export type Case = (rng: Rng) => GradCheckReport;

function gc(
  fn: (...xs: Tensor[]) => Tensor,
  specs: readonly InputSpec[],
  options: GradCheckOptions = {},
): GradCheckReport {
  return checkGradients(fn, specs, options);
}

/** Random integer labels in [lo, hi]. */
function ints(rng: Rng, n: number, lo: number, hi: number): number[] {
  return Array.from({ length: n }, () => rng.int(lo, hi));
}

function unaryCases(op: string, sample: (rng: Rng) => number): Case[] {
  const apply = (x: Tensor) => (x as unknown as Record<string, () => Tensor>)[op]();
  return [
    (rng) => gc(apply, [f32("x", rng.shape(rng.int(1, 3)))], { sample, seed: rng.int(1, 1e6) }),
    (rng) => gc(apply, [f32("x", [])], { sample, seed: rng.int(1, 1e6) }),
  ];
}

type BinaryFn = (a: Tensor, b: Tensor | number) => Tensor;

function binaryCases(
  op: string,
  sampleA: (rng: Rng) => number,
  sampleB: (rng: Rng) => number,
  literal: number,
): Case[] {
  const apply: BinaryFn = (a, b) =>
    (a as unknown as Record<string, (b: Tensor | number) => Tensor>)[op](b);
  const opts = (rng: Rng): GradCheckOptions => ({
    sample: { a: sampleA, b: sampleB, x: sampleA },
    seed: rng.int(1, 1e6),
  });
  return [
    // Equal random shapes.
    (rng) => {
      const s = rng.shape(rng.int(1, 3));
      return gc(apply, [f32("a", s), f32("b", s)], opts(rng));
    },
    // [m, 1] op [1, n]: both operands broadcast.
    (rng) => {
      const [m, n] = [rng.int(2, 4), rng.int(2, 5)];
      return gc(apply, [f32("a", [m, 1]), f32("b", [1, n])], opts(rng));
    },
    // [n] op [m, n]: a leading axis is added.
    (rng) => {
      const [m, n] = [rng.int(2, 4), rng.int(2, 5)];
      return gc(apply, [f32("a", [n]), f32("b", [m, n])], opts(rng));
    },
    // [m, n, k] op scalar tensor.
    (rng) => gc(apply, [f32("a", rng.shape(3, 1, 3)), f32("b", [])], opts(rng)),
    // scalar tensor op [m, n].
    (rng) => gc(apply, [f32("a", []), f32("b", rng.shape(2, 2, 4))], opts(rng)),
    // A number literal on the right.
    (rng) => gc((x) => apply(x, literal), [f32("x", rng.shape(2, 1, 4))], opts(rng)),
  ];
}

const NORMAL_SAMPLE = samplers.wide;

/** Gradient cases, keyed by the op each one exercises. */
export const CASES: Record<string, Case[]> = {
  neg: unaryCases("neg", samplers.any),
  exp: unaryCases("exp", samplers.any),
  log: unaryCases("log", samplers.positive),
  sqrt: unaryCases("sqrt", samplers.positive),
  rsqrt: unaryCases("rsqrt", samplers.positive),
  tanh: unaryCases("tanh", samplers.wide),
  relu: unaryCases("relu", samplers.awayFromZero),
  abs: unaryCases("abs", samplers.awayFromZero),
  gelu: unaryCases("gelu", samplers.wide),
  add: binaryCases("add", samplers.any, samplers.any, 0.5),
  sub: [
    ...binaryCases("sub", samplers.any, samplers.any, 0.25),
    // The same tensor on both sides: cotangents accumulate to zero.
    (rng) => gc((x) => x.sub(x).add(x.mul(x)), [f32("x", rng.shape(2))]),
  ],
  mul: [
    ...binaryCases("mul", samplers.any, samplers.any, -1.5),
    // x * x: two cotangents accumulate on one leaf.
    (rng) => gc((x) => x.mul(x), [f32("x", rng.shape(2))]),
  ],
  div: [
    ...binaryCases("div", samplers.any, samplers.positive, 3),
    (rng) => gc((x) => x.reciprocal(), [f32("x", rng.shape(2))], { sample: samplers.positive }),
  ],
  pow: [
    ...binaryCases("pow", samplers.positive, (rng) => rng.uniform(-2, 2), 3),
    (rng) => gc((x) => x.pow(0.5), [f32("x", rng.shape(2))], { sample: samplers.positive }),
  ],
  maximum: [
    ...binaryCases("maximum", samplers.any, samplers.any, 0.1),
    // Leaky-relu style: max(x, 0.1x) away from zero.
    (rng) =>
      gc((x) => x.maximum(x.mul(0.1)), [f32("x", rng.shape(2))], {
        sample: samplers.awayFromZero,
      }),
  ],
  minimum: binaryCases("minimum", samplers.any, samplers.any, -0.1),
  where: [
    // A fed bool condition, all three operands broadcasting.
    (rng) => {
      const [m, n] = [rng.int(2, 4), rng.int(2, 4)];
      return gc(
        (c, a, b) => where(c, a, b),
        [{ name: "c", shape: [m, n], dtype: "bool" }, f32("a", [m, 1]), f32("b", [n])],
        { values: { c: ints(rng, m * n, 0, 1) }, seed: rng.int(1, 1e6) },
      );
    },
    // A condition computed from the differentiated input (leaky relu), number branch.
    (rng) =>
      gc((x) => where(x.gt(0), x, x.mul(0.1)), [f32("x", rng.shape(3, 1, 3))], {
        sample: samplers.awayFromZero,
      }),
    (rng) =>
      gc((x) => where(x.lt(0), 0, x.mul(x)), [f32("x", rng.shape(2))], {
        sample: samplers.awayFromZero,
      }),
  ],
  cast: [
    // Tensor.cast to the same dtype is a no-op, so build the f32 → f32 cast node directly.
    (rng) =>
      gc(
        (x) => new Tensor(makeNode(ops.cast, [x.mul(x).node], { dtype: "f32" })),
        [f32("x", rng.shape(2))],
      ),
    // bool → f32 cast of a comparison: no gradient flows into the comparison.
    (rng) =>
      gc((x) => x.mul(x.gt(0).cast("f32")), [f32("x", rng.shape(2))], {
        sample: samplers.awayFromZero,
      }),
  ],
  broadcast: [
    (rng) => {
      const [m, n] = [rng.int(2, 4), rng.int(2, 4)];
      return gc((x) => x.broadcastTo([m, n]), [f32("x", [1, n])]);
    },
    (rng) => gc((x) => x.broadcastTo(rng.shape(2, 2, 4)), [f32("x", [])]),
    (rng) => {
      const [a, b, c, d] = rng.shape(4, 2, 3);
      return gc((x) => x.broadcastTo([a, b, d, c]), [f32("x", [b, 1, c])]);
    },
  ],
  reshape: [
    (rng) => {
      const [a, b, c] = rng.shape(3, 1, 4);
      return gc((x) => x.reshape([c, a * b]).exp(), [f32("x", [a, b, c])]);
    },
    (rng) => gc((x) => x.reshape([-1]), [f32("x", rng.shape(3))]),
    (_rng) => gc((x) => x.reshape([1, 1, 1]), [f32("x", [])]),
  ],
  permute: [
    (rng) => {
      const perm = rng.perm(3);
      return gc((x) => x.permute(perm).mul(x.permute(perm).exp()), [f32("x", rng.shape(3, 2, 4))]);
    },
    (rng) => {
      const perm = rng.perm(4);
      return gc((x) => x.permute(perm), [f32("x", rng.shape(4, 1, 3))]);
    },
    (rng) => gc((x) => x.T.tanh(), [f32("x", rng.shape(2, 2, 4))]),
    (rng) => gc((x) => x.transpose(0, 2), [f32("x", rng.shape(3, 2, 3))]),
  ],
  slice: [
    (rng) => {
      const shape = rng.shape(3, 2, 5);
      const starts = shape.map((d) => rng.int(0, d - 1));
      const ends = shape.map((d, i) => rng.int(starts[i] + 1, d));
      return gc((x) => x.slice(starts, ends).exp(), [f32("x", shape)]);
    },
    (rng) => {
      const shape = rng.shape(2, 3, 5);
      return gc((x) => x.narrow(1, 1, shape[1] - 2), [f32("x", shape)]);
    },
  ],
  pad: [
    (rng) => {
      const shape = rng.shape(2, 1, 4);
      const before = shape.map(() => rng.int(0, 2));
      const after = shape.map(() => rng.int(0, 2));
      return gc((x) => x.pad(before, after).exp(), [f32("x", shape)]);
    },
    (rng) => gc((x) => x.pad([1, 0, 2], [0, 2, 1]), [f32("x", rng.shape(3, 1, 3))]),
  ],
  concat: [
    (rng) => {
      const axis = rng.int(0, 2);
      const base = rng.shape(3, 1, 3);
      const shapes = [0, 1, 2].map(() => base.map((d, i) => (i === axis ? rng.int(1, 3) : d)));
      return gc(
        (a, b, c) => concat([a, b, c], axis).exp(),
        shapes.map((s, i) => f32("abc"[i], s)),
      );
    },
    // Negative axis, and the same tensor twice.
    (rng) => gc((a) => concat([a, a.mul(2)], -1), [f32("a", rng.shape(2, 1, 3))]),
  ],
  sum: [
    (rng) => gc((x) => x.sum().mul(x.sum()), [f32("x", rng.shape(3, 1, 3))]),
    (rng) => gc((x) => x.sum(0), [f32("x", rng.shape(2, 2, 4))]),
    (rng) => gc((x) => x.sum([0, 2]).exp(), [f32("x", rng.shape(3, 2, 3))]),
    (rng) => gc((x) => x.sum(1, true).mul(x), [f32("x", rng.shape(3, 2, 3))]),
    (rng) => gc((x) => x.mean(-1).square(), [f32("x", rng.shape(2, 2, 4))]),
  ],
  max: [
    (rng) => gc((x) => x.max(), [f32("x", rng.shape(3, 1, 3))]),
    (rng) => gc((x) => x.max(1), [f32("x", rng.shape(2, 2, 5))]),
    (rng) => gc((x) => x.max([0, 2]), [f32("x", rng.shape(3, 2, 3))]),
    (rng) => gc((x) => x.sub(x.max(-1, true)).exp(), [f32("x", rng.shape(2, 2, 4))]),
  ],
  matmul: [
    (rng) => {
      const [m, k, n] = [rng.int(2, 4), rng.int(2, 5), rng.int(2, 4)];
      return gc((a, b) => a.matmul(b), [f32("a", [m, k]), f32("b", [k, n])]);
    },
    // Batched, with equal batch dims.
    (rng) => {
      const [b, m, k, n] = [rng.int(2, 3), rng.int(1, 3), rng.int(2, 4), rng.int(1, 3)];
      return gc((x, y) => x.matmul(y), [f32("x", [b, m, k]), f32("y", [b, k, n])]);
    },
    // Batch dims broadcast ([1, m, k] @ [b, k, n]).
    (rng) => {
      const [b, m, k, n] = [rng.int(2, 3), rng.int(2, 3), rng.int(2, 4), rng.int(2, 3)];
      return gc((x, y) => x.matmul(y), [f32("x", [1, m, k]), f32("y", [b, k, n])]);
    },
    // Rank 3 @ rank 2 (flattened), with a transposed right operand.
    (rng) => {
      const [b, t, k, n] = [rng.int(2, 3), rng.int(2, 3), rng.int(2, 4), rng.int(2, 3)];
      return gc((x, w) => x.matmul(w.T), [f32("x", [b, t, k]), f32("w", [n, k])]);
    },
    // A two-layer MLP through params (trainable) with one frozen param.
    (rng) => {
      const [n, d, h] = [rng.int(2, 4), rng.int(2, 4), rng.int(3, 5)];
      return gc((x) => {
        const w1 = param("w1", [h, d]);
        const b1 = param("b1", [h]);
        const w2 = param("w2", [1, h]);
        const frozen = param("scale", [1], { role: "frozen" });
        return x.matmul(w1.T).add(b1).tanh().matmul(w2.T).mul(frozen);
      }, [f32("x", [n, d])]);
    },
  ],
  softmax: [
    (rng) => gc((x) => x.softmax(), [f32("x", rng.shape(2, 2, 5))], { sample: NORMAL_SAMPLE }),
    (rng) => gc((x) => x.softmax(0), [f32("x", rng.shape(3, 2, 3))], { sample: NORMAL_SAMPLE }),
    (rng) => gc((x) => x.softmax(1), [f32("x", rng.shape(3, 2, 3))], { sample: NORMAL_SAMPLE }),
  ],
  logSoftmax: [
    (rng) => gc((x) => x.logSoftmax(), [f32("x", rng.shape(2, 2, 5))], { sample: NORMAL_SAMPLE }),
    (rng) => gc((x) => x.logSoftmax(0), [f32("x", rng.shape(3, 2, 3))]),
    (rng) => gc((x) => x.logSoftmax(-2), [f32("x", rng.shape(3, 2, 3))]),
  ],
  layerNorm: [
    (rng) => gc((x) => x.normalize(), [f32("x", rng.shape(2, 2, 5))], { sample: NORMAL_SAMPLE }),
    // Over axis 0 of a rank-3 tensor (moved last and back).
    (rng) =>
      gc((x) => x.transpose(0, -1).normalize(1e-3).transpose(0, -1), [
        f32("x", rng.shape(3, 2, 4)),
      ]),
    (rng) => gc((x) => x.normalize(0), [f32("x", [rng.int(2, 6)])], { sample: NORMAL_SAMPLE }),
  ],
  crossEntropy: [
    // Some labels negative: those rows cost 0 and get no gradient.
    (rng) => {
      const [n, c] = [rng.int(4, 6), rng.int(2, 5)];
      const labels = ints(rng, n, 0, c - 1);
      labels[1] = -1;
      labels[n - 1] = -100;
      return gc((x, y) => x.crossEntropy(y), [f32("logits", [n, c]), i32("labels", [n])], {
        values: { labels },
        sample: NORMAL_SAMPLE,
      });
    },
    // Rank-3 logits, mean loss.
    (rng) => {
      const [b, t, c] = [rng.int(2, 3), rng.int(2, 3), rng.int(2, 5)];
      return gc(
        (x, y) => x.crossEntropy(y).mean(),
        [f32("logits", [b, t, c]), i32("labels", [b, t])],
        { values: { labels: ints(rng, b * t, -1, c - 1) }, sample: NORMAL_SAMPLE },
      );
    },
  ],
  gather: [
    // Repeated indices accumulate into the same table row.
    (rng) => {
      const [v, d, n] = [rng.int(3, 6), rng.int(1, 4), rng.int(4, 8)];
      const idx = ints(rng, n, 0, v - 1);
      idx[0] = idx[n - 1];
      return gc((table, i) => table.gather(i), [f32("table", [v, d]), i32("idx", [n])], {
        values: { idx },
      });
    },
    // 2-D indices (u32), 1-D table.
    (rng) => {
      const [v, a, b] = [rng.int(3, 6), rng.int(2, 3), rng.int(2, 3)];
      return gc(
        (table, i) => table.gather(i).exp(),
        [f32("table", [v]), { name: "idx", shape: [a, b], dtype: "u32" }],
        { values: { idx: ints(rng, a * b, 0, v - 1) } },
      );
    },
    // Rank-3 table.
    (rng) => {
      const [v, p, q, n] = [rng.int(2, 4), rng.int(1, 3), rng.int(1, 3), rng.int(2, 5)];
      return gc((table, i) => table.gather(i), [f32("table", [v, p, q]), i32("idx", [n])], {
        values: { idx: ints(rng, n, 0, v - 1) },
      });
    },
  ],
  scatterAdd: [
    (rng) => {
      const [rows, n, d] = [rng.int(3, 6), rng.int(3, 7), rng.int(1, 3)];
      const idx = ints(rng, n, 0, rows - 1);
      idx[1] = idx[0];
      return gc(
        (u, i) => new Tensor(makeNode(ops.scatterAdd, [u.node, i.node], { rows })).exp(),
        [f32("updates", [n, d]), i32("idx", [n])],
        { values: { idx } },
      );
    },
    (rng) => {
      const [rows, a, b] = [rng.int(2, 4), rng.int(2, 3), rng.int(2, 3)];
      return gc(
        (u, i) => new Tensor(makeNode(ops.scatterAdd, [u.node, i.node], { rows })),
        [f32("updates", [a, b]), i32("idx", [a, b])],
        { values: { idx: ints(rng, a * b, 0, rows - 1) } },
      );
    },
  ],
  dropout: [
    (rng) =>
      gc(
        (x, seed) => x.dropout(0.3, seed, 7).mul(x),
        [f32("x", rng.shape(2, 3, 6)), { name: "seed", shape: [], dtype: "u32" }],
        { values: { seed: [1234] } },
      ),
  ],
};
