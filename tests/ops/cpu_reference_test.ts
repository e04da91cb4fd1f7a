// Spot checks of the CPU reference interpreter's forward values against
// hand-computed numbers, one op family at a time, and of the f32 precision mode.

import assert from "node:assert/strict";
import { makeNode } from "../../compiler/ir.ts";
import {
  concat,
  constant,
  type InputSpec,
  iota,
  param,
  randomUniform,
  Tensor,
  trace,
  type TraceResult,
  where,
} from "../../compiler/trace.ts";
import { dropoutConstants } from "../../ops/random.ts";
import { evaluate, type TensorData } from "../../backends/cpu/interpreter.ts";
import { dropoutKeep, uniformSymmetric } from "../../prng/threefry.ts";
import { Rng } from "./_gradcheck.ts";
import * as ops from "../../ops/mod.ts";

const f32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "f32" });
const i32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "i32" });

/** Traces `fn` on `specs` and evaluates it on `inputs` in float64. */
function run(
  fn: (...xs: Tensor[]) => TraceResult,
  specs: readonly InputSpec[],
  inputs: Record<string, TensorData> = {},
  precision: "f64" | "f32" = "f64",
) {
  return evaluate(trace(fn, specs), { inputs }, { precision });
}

/** The single output `out` as a plain array, with its shape checked. */
function out(
  fn: (...xs: Tensor[]) => Tensor,
  specs: readonly InputSpec[],
  inputs: Record<string, TensorData>,
  shape: readonly number[],
): number[] {
  const r = run(fn, specs, inputs).out;
  assert.deepEqual([...r.shape], [...shape]);
  return [...r.data];
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    const ok = actual[i] === expected[i] ||
      Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i]));
    assert.ok(ok, `element ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

const M23 = [1, 2, 3, 4, 5, 6];

Deno.test("elementwise unary math", () => {
  const x = [-2, -0.5, 0.25, 1, 4];
  const spec = [f32("x", [5])];
  close(out((t) => t.neg(), spec, { x }, [5]), [2, 0.5, -0.25, -1, -4]);
  close(out((t) => t.abs(), spec, { x }, [5]), [2, 0.5, 0.25, 1, 4]);
  close(out((t) => t.relu(), spec, { x }, [5]), [0, 0, 0.25, 1, 4]);
  close(out((t) => t.exp(), spec, { x: [0, 1, Math.LN2, -1, 2] }, [5]), [
    1,
    Math.E,
    2,
    1 / Math.E,
    Math.E * Math.E,
  ]);
  close(out((t) => t.log(), spec, { x: [1, Math.E, 2, 0.5, 4] }, [5]), [
    0,
    1,
    Math.LN2,
    -Math.LN2,
    2 * Math.LN2,
  ]);
  close(out((t) => t.sqrt(), spec, { x: [0, 1, 4, 9, 0.25] }, [5]), [0, 1, 2, 3, 0.5]);
  close(out((t) => t.rsqrt(), spec, { x: [1, 4, 16, 0.25, 100] }, [5]), [1, 0.5, 0.25, 2, 0.1]);
  close(out((t) => t.tanh(), spec, { x: [0, 1, -1, 20, -20] }, [5]), [
    0,
    0.7615941559557649,
    -0.7615941559557649,
    1,
    -1,
  ]);
  close(out((t) => t.sigmoid(), spec, { x: [0, Math.log(3), -Math.log(3), 50, -50] }, [5]), [
    0.5,
    0.75,
    0.25,
    1,
    Math.exp(-50),
  ]);
  // GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); PyTorch gives 0.8411920 at 1.
  const gelu = out((t) => t.gelu(), spec, { x: [0, 1, -1, 3, -3] }, [5]);
  close(
    gelu,
    [0, 0.8411919906082768, -0.15880800939172324, 2.996362607918227, -0.0036373920817729],
    1e-9,
  );
});

Deno.test("elementwise binary math, broadcasting and literals", () => {
  const specs = [f32("a", [2, 1]), f32("b", [1, 3])];
  const inputs = { a: [1, 2], b: [10, 20, 30] };
  close(out((a, b) => a.add(b), specs, inputs, [2, 3]), [11, 21, 31, 12, 22, 32]);
  close(out((a, b) => a.sub(b), specs, inputs, [2, 3]), [-9, -19, -29, -8, -18, -28]);
  close(out((a, b) => a.mul(b), specs, inputs, [2, 3]), [10, 20, 30, 20, 40, 60]);
  close(out((a, b) => b.div(a), specs, inputs, [2, 3]), [10, 20, 30, 5, 10, 15]);
  close(out((a, b) => a.pow(b.mul(0.1)), specs, inputs, [2, 3]), [1, 1, 1, 2, 4, 8]);
  const mm = { a: [1, -1, 3], b: [2, -2, 0] };
  const s3 = [f32("a", [3]), f32("b", [3])];
  close(out((a, b) => a.maximum(b), s3, mm, [3]), [2, -1, 3]);
  close(out((a, b) => a.minimum(b), s3, mm, [3]), [1, -2, 0]);
  close(out((a) => a.mul(2).add(1).sub(0.5).div(4), [f32("a", [3])], { a: [1, 2, 3] }, [3]), [
    0.625,
    1.125,
    1.625,
  ]);
  // [n] + [m, n] and scalar + [m, n].
  close(
    out((a, b) => a.add(b), [f32("a", [3]), f32("b", [2, 3])], { a: [1, 2, 3], b: M23 }, [2, 3]),
    [
      2,
      4,
      6,
      5,
      7,
      9,
    ],
  );
  close(out((a, b) => a.mul(b), [f32("a", []), f32("b", [2, 3])], { a: [2], b: M23 }, [2, 3]), [
    2,
    4,
    6,
    8,
    10,
    12,
  ]);
});

Deno.test("integer arithmetic: truncating division, division by zero, wrapping multiply", () => {
  const r = run(
    (a, b) => ({ div: a.div(b), mul: a.mul(b), add: a.add(b) }),
    [i32("a", [4]), i32("b", [4])],
    { a: [7, -7, 5, 65536], b: [2, 2, 0, 65536] },
  );
  assert.ok(r.div.data instanceof Int32Array);
  assert.deepEqual([...r.div.data], [3, -3, 0, 1]);
  assert.deepEqual([...r.mul.data], [14, -14, 0, 0]);
  assert.deepEqual([...r.add.data], [9, -5, 5, 131072]);
  const u = run(
    (a, b) => a.mul(b).sub(b),
    [{ name: "a", shape: [2], dtype: "u32" }, { name: "b", shape: [2], dtype: "u32" }],
    { a: [65536, 3], b: [65537, 1] },
  ).out;
  // 65536·65537 = 2^32 + 65536 ≡ 65536; 65536 - 65537 wraps to 2^32 - 1.
  assert.deepEqual([...u.data], [2 ** 32 - 1, 2]);
});

Deno.test("comparisons, where and cast", () => {
  const specs = [f32("a", [4]), f32("b", [4])];
  const inputs = { a: [1, 2, 3, 4], b: [4, 2, 1, 5] };
  const r = run(
    (a, b) => ({ lt: a.lt(b), ge: a.ge(b), eq: a.eq(b), pick: where(a.lt(b), a, b) }),
    specs,
    inputs,
  );
  assert.equal(r.lt.dtype, "bool");
  assert.ok(r.lt.data instanceof Uint8Array);
  assert.deepEqual([...r.lt.data], [1, 0, 0, 1]);
  assert.deepEqual([...r.ge.data], [0, 1, 1, 0]);
  assert.deepEqual([...r.eq.data], [0, 1, 0, 0]);
  assert.deepEqual([...r.pick.data], [1, 2, 1, 4]);
  // Broadcast condition and a number branch.
  close(
    out((a) => where(iota([2, 2], 1).eq(constant(0, [], "i32")), a, -1), [f32("a", [2, 2])], {
      a: [5, 6, 7, 8],
    }, [2, 2]),
    [5, -1, 7, -1],
  );
  const c = run(
    (x) => ({
      i: x.cast("i32"),
      u: x.abs().cast("u32"),
      b: x.cast("bool"),
      back: x.cast("i32").cast("f32"),
    }),
    [f32("x", [5])],
    { x: [2.7, -2.7, 0, 0.5, NaN] },
  );
  assert.deepEqual([...c.i.data], [2, -2, 0, 0, 0]);
  assert.deepEqual([...c.u.data], [2, 2, 0, 0, 0]);
  assert.deepEqual([...c.b.data], [1, 1, 0, 1, 1]);
  assert.deepEqual([...c.back.data], [2, -2, 0, 0, 0]);
  const fromBool = run((x) => x.gt(0).cast("f32"), [f32("x", [3])], { x: [-1, 0, 2] }).out;
  assert.deepEqual([...fromBool.data], [0, 0, 1]);
});

Deno.test("shape ops: broadcast, reshape, permute, slice, pad, concat", () => {
  const x = [f32("x", [2, 3])];
  close(out((t) => t.reshape([3, 2]), x, { x: M23 }, [3, 2]), M23);
  close(out((t) => t.reshape([-1]), x, { x: M23 }, [6]), M23);
  close(out((t) => t.T, x, { x: M23 }, [3, 2]), [1, 4, 2, 5, 3, 6]);
  close(out((t) => t.permute([1, 0]), x, { x: M23 }, [3, 2]), [1, 4, 2, 5, 3, 6]);
  // A rank-3 permutation: y[i,j,k] = x[k,i,j] for x of shape [2,2,3] and perm [2,0,1].
  const x3 = Array.from({ length: 12 }, (_, i) => i);
  const p = out((t) => t.permute([2, 0, 1]), [f32("x", [2, 2, 3])], { x: x3 }, [3, 2, 2]);
  assert.deepEqual(p, [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
  close(out((t) => t.broadcastTo([2, 2, 3]), [f32("x", [1, 3])], { x: [1, 2, 3] }, [2, 2, 3]), [
    1,
    2,
    3,
    1,
    2,
    3,
    1,
    2,
    3,
    1,
    2,
    3,
  ]);
  close(out((t) => t.broadcastTo([2, 2]), [f32("x", [])], { x: [7] }, [2, 2]), [7, 7, 7, 7]);
  close(out((t) => t.slice([0, 1], [2, 3]), x, { x: M23 }, [2, 2]), [2, 3, 5, 6]);
  close(out((t) => t.narrow(0, 1, 1), x, { x: M23 }, [1, 3]), [4, 5, 6]);
  close(out((t) => t.pad([1, 0], [0, 1]), x, { x: M23 }, [3, 4]), [
    0,
    0,
    0,
    0,
    1,
    2,
    3,
    0,
    4,
    5,
    6,
    0,
  ]);
  const cat = run(
    (a, b) => ({ rows: concat([a, b], 0), cols: concat([a, b], -1) }),
    [f32("a", [2, 2]), f32("b", [2, 2])],
    { a: [1, 2, 3, 4], b: [5, 6, 7, 8] },
  );
  assert.deepEqual([...cat.rows.shape], [4, 2]);
  assert.deepEqual([...cat.rows.data], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...cat.cols.shape], [2, 4]);
  assert.deepEqual([...cat.cols.data], [1, 2, 5, 6, 3, 4, 7, 8]);
  // Integer tensors move through shape ops unchanged.
  const ints = run((t) => t.T.reshape([6]), [i32("x", [2, 3])], { x: M23 }).out;
  assert.ok(ints.data instanceof Int32Array);
  assert.deepEqual([...ints.data], [1, 4, 2, 5, 3, 6]);
});

Deno.test("reductions: sum, max, mean over axes", () => {
  const x = [f32("x", [2, 3])];
  const r = run(
    (t) => ({
      all: t.sum(),
      rows: t.sum(1),
      cols: t.sum(0),
      keep: t.sum(1, true),
      max0: t.max(0),
      max1: t.max(-1),
      mean1: t.mean(1),
      meanAll: t.mean(),
    }),
    x,
    { x: [1, 2, 3, 4, 5, -6] },
  );
  assert.deepEqual([...r.all.shape], []);
  assert.deepEqual([...r.all.data], [9]);
  assert.deepEqual([...r.rows.data], [6, 3]);
  assert.deepEqual([...r.cols.data], [5, 7, -3]);
  assert.deepEqual([...r.keep.shape], [2, 1]);
  assert.deepEqual([...r.max0.data], [4, 5, 3]);
  assert.deepEqual([...r.max1.data], [3, 5]);
  close(r.mean1.data, [2, 1]);
  close(r.meanAll.data, [1.5]);
  const x3 = Array.from({ length: 24 }, (_, i) => i);
  const s = run((t) => t.sum([0, 2]), [f32("x", [2, 3, 4])], { x: x3 }).out;
  // Σ over i, k of (12i + 4j + k) = 8·4j + (0+12)·4 + 2·6 = 16j·2 + 60.
  assert.deepEqual([...s.data], [60, 92, 124]);
  // Integer max starts below every value.
  const im = run((t) => t.max(), [i32("x", [3])], { x: [-5, -3, -9] }).out;
  assert.deepEqual([...im.data], [-3]);
});

Deno.test("matmul: a known product, batched and broadcast", () => {
  close(
    out((a, b) => a.matmul(b), [f32("a", [2, 3]), f32("b", [3, 2])], {
      a: M23,
      b: [7, 8, 9, 10, 11, 12],
    }, [2, 2]),
    [58, 64, 139, 154],
  );
  const batched = out(
    (a, b) => a.matmul(b),
    [f32("a", [2, 1, 2]), f32("b", [2, 2, 1])],
    { a: [1, 2, 3, 4], b: [5, 6, 7, 8] },
    [2, 1, 1],
  );
  assert.deepEqual(batched, [17, 53]);
  // [2, 2, 2] @ [2, 2] applies the matrix to every row.
  const flat = out(
    (a, b) => a.matmul(b),
    [f32("a", [2, 2, 2]), f32("b", [2, 2])],
    { a: [1, 0, 0, 1, 2, 0, 0, 2], b: [1, 2, 3, 4] },
    [2, 2, 2],
  );
  assert.deepEqual(flat, [1, 2, 3, 4, 2, 4, 6, 8]);
  // Broadcast batch dims: [1, 1, 2] @ [3, 2, 1].
  const bb = out(
    (a, b) => a.matmul(b),
    [f32("a", [1, 1, 2]), f32("b", [3, 2, 1])],
    { a: [1, 10], b: [1, 2, 3, 4, 5, 6] },
    [3, 1, 1],
  );
  assert.deepEqual(bb, [21, 43, 65]);
});

Deno.test("softmax, logSoftmax and layerNorm", () => {
  const rng = new Rng(3);
  const x = rng.array(12, (r) => r.uniform(-4, 4));
  const r = run(
    (t) => ({ sm: t.softmax(), lsm: t.logSoftmax(), sm0: t.softmax(0), ln: t.normalize(0) }),
    [f32("x", [3, 4])],
    { x },
  );
  const rowOf = (data: ArrayLike<number>, row: number) =>
    Array.from(data).slice(row * 4, row * 4 + 4);
  for (let row = 0; row < 3; row++) {
    const s = rowOf(r.sm.data, row).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(s - 1) < 1e-14, `softmax row ${row} sums to ${s}`);
    const mean = rowOf(r.ln.data, row).reduce((a, b) => a + b, 0) / 4;
    const v = rowOf(r.ln.data, row).reduce((a, b) => a + (b - mean) ** 2, 0) / 4;
    assert.ok(Math.abs(mean) < 1e-14, `layerNorm row ${row} mean ${mean}`);
    assert.ok(Math.abs(v - 1) < 1e-12, `layerNorm row ${row} variance ${v}`);
  }
  close(r.lsm.data, [...r.sm.data].map(Math.log));
  for (let col = 0; col < 4; col++) {
    const s = r.sm0.data[col] + r.sm0.data[4 + col] + r.sm0.data[8 + col];
    assert.ok(Math.abs(s - 1) < 1e-14, `softmax over axis 0, column ${col}`);
  }
  // By hand: softmax([0, ln 2]) = [1/3, 2/3]; huge equal logits stay finite.
  close(out((t) => t.softmax(), [f32("x", [2, 2])], { x: [0, Math.LN2, 1000, 1000] }, [2, 2]), [
    1 / 3,
    2 / 3,
    0.5,
    0.5,
  ]);
  close(out((t) => t.logSoftmax(), [f32("x", [3])], { x: [1000, 1000, -Infinity] }, [3]), [
    -Math.LN2,
    -Math.LN2,
    -Infinity,
  ]);
  // layerNorm([1, 2, 3]) with eps: (x - 2) / sqrt(2/3 + eps).
  const eps = 1e-5;
  const d = Math.sqrt(2 / 3 + eps);
  close(out((t) => t.normalize(eps), [f32("x", [3])], { x: [1, 2, 3] }, [3]), [-1 / d, 0, 1 / d]);
});

Deno.test("crossEntropy equals -log softmax[label]; negative labels cost 0", () => {
  const logits = [1, 2, 3, 0.5, -1, 0, 2, 2, 2];
  const r = run(
    (x, y) => ({ ce: x.crossEntropy(y), lsm: x.logSoftmax() }),
    [f32("x", [3, 3]), i32("y", [3])],
    { x: logits, y: [2, -1, 0] },
  );
  assert.deepEqual([...r.ce.shape], [3]);
  close(r.ce.data, [-r.lsm.data[2], 0, -r.lsm.data[6]]);
  close([r.ce.data[2]], [Math.log(3)]);
  close([r.ce.data[0]], [Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3]);
  assert.throws(
    () =>
      run((x, y) => x.crossEntropy(y), [f32("x", [1, 3]), i32("y", [1])], { x: [1, 2, 3], y: [3] }),
    /crossEntropy: label 3 is out of range for 3 classes/,
  );
});

Deno.test("gather, scatterAdd and their range errors", () => {
  const table = [f32("t", [3, 2]), i32("i", [2, 2])];
  const g = out((t, i) => t.gather(i), table, { t: M23, i: [2, 0, 0, 1] }, [2, 2, 2]);
  assert.deepEqual(g, [5, 6, 1, 2, 1, 2, 3, 4]);
  const s = out(
    (u, i) => new Tensor(makeNode(ops.scatterAdd, [u.node, i.node], { rows: 4 })),
    [f32("u", [3, 2]), i32("i", [3])],
    { u: M23, i: [1, 3, 1] },
    [4, 2],
  );
  assert.deepEqual(s, [0, 0, 6, 8, 0, 0, 3, 4]);
  for (const bad of [3, -1]) {
    assert.throws(
      () => run((t, i) => t.gather(i), [f32("t", [3, 2]), i32("i", [2])], { t: M23, i: [0, bad] }),
      new RegExp(`gather: index ${bad} at position 1 is out of range for 3 rows`),
    );
  }
  assert.throws(
    () =>
      run(
        (u, i) => new Tensor(makeNode(ops.scatterAdd, [u.node, i.node], { rows: 2 })),
        [f32("u", [1, 2]), i32("i", [1])],
        { u: [1, 2], i: [2] },
      ),
    /scatterAdd: index 2 at position 0 is out of range for 2 rows/,
  );
});

Deno.test("leaves: iota, const, params and random equal uniformSymmetric", () => {
  const r = run(
    () => ({
      a: iota([2, 3], 1),
      b: iota([2, 3], -2),
      c: constant([1.5, 2.5], [2]),
      u: randomUniform([4, 5], { seed: 123, stream: 7, bound: 0.25 }),
      v: randomUniform([3], { seed: 0, stream: 0, bound: 1 }),
    }),
    [],
  );
  assert.deepEqual([...r.a.data], [0, 1, 2, 0, 1, 2]);
  assert.deepEqual([...r.b.data], [0, 0, 0, 1, 1, 1]);
  assert.equal(r.a.dtype, "i32");
  assert.deepEqual([...r.c.data], [1.5, 2.5]);
  assert.deepEqual([...r.u.data], [...uniformSymmetric(123, 7, 20, 0.25)]);
  assert.deepEqual([...r.v.data], [...uniformSymmetric(0, 0, 3, 1)]);
  assert.ok([...r.u.data].every((v) => v >= -0.25 && v < 0.25));
  const graph = trace((x) => x.mul(param("w", [2])).add(param("b", [], { role: "frozen" })), [
    f32("x", [2]),
  ]);
  const p = evaluate(graph, { inputs: { x: [2, 3] }, params: { w: [10, 100], b: [1] } }).out;
  assert.deepEqual([...p.data], [21, 301]);
});

Deno.test("dropout: the mask follows dropoutKeep, kept values are scaled by f32(1/(1-p))", () => {
  const n = 64;
  const x = Array.from({ length: n }, (_, i) => i + 1);
  const specs: InputSpec[] = [f32("x", [8, 8]), { name: "s", shape: [], dtype: "u32" }];
  for (const p of [0.1, 0.5, 0.9]) {
    const y = out((t, s) => t.dropout(p, s, 3), specs, { x, s: [77] }, [8, 8]);
    const { scale } = dropoutConstants(p);
    y.forEach((v, i) => assert.equal(v, dropoutKeep(77, 3, i, p) ? x[i] * scale : 0));
    const kept = y.filter((v) => v !== 0).length;
    assert.ok(kept > 0 && kept < n, `p = ${p}: kept ${kept} of ${n}`);
  }
  // Another seed or stream gives another mask.
  const a = out((t, s) => t.dropout(0.5, s, 3), specs, { x, s: [77] }, [8, 8]);
  const b = out((t, s) => t.dropout(0.5, s, 4), specs, { x, s: [77] }, [8, 8]);
  const c = out((t, s) => t.dropout(0.5, s, 3), specs, { x, s: [78] }, [8, 8]);
  assert.notDeepEqual(a, b);
  assert.notDeepEqual(a, c);
  // p = 1 drops everything; p = 0 (built directly: Tensor.dropout skips it) keeps everything.
  assert.ok(out((t, s) => t.dropout(1, s, 0), specs, { x, s: [1] }, [8, 8]).every((v) => v === 0));
  const keepAll = out(
    (t, s) => new Tensor(makeNode(ops.dropout, [t.node, s.node], { p: 0, stream: 0 })),
    specs,
    { x, s: [1] },
    [8, 8],
  );
  assert.deepEqual(keepAll, x);
});
