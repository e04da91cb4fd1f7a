import assert from "node:assert/strict";
import { type DType, type Graph, graphNodes } from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import {
  concat,
  constant,
  type InputSpec,
  iota,
  param,
  randomUniform,
  scope,
  type Tensor,
  trace,
  where,
} from "../../compiler/trace.ts";
import { evaluate, type TensorData } from "../../backends/cpu/interpreter.ts";

/** Traces `fn` on inputs given as [shape, data] pairs named a, b, c..., validates, evaluates `out`. */
function run(
  fn: (...xs: Tensor[]) => Tensor,
  ...operands: [number[], number[], DType?][]
): { shape: readonly number[]; dtype: DType; values: number[] } {
  const names = operands.map((_, i) => String.fromCharCode(97 + i));
  const specs: InputSpec[] = operands.map(([shape, _data, dtype], i) => ({
    name: names[i],
    shape,
    dtype,
  }));
  const g = validate(trace(fn, specs));
  const inputs: Record<string, TensorData> = Object.fromEntries(
    operands.map(([, data], i) => [names[i], data]),
  );
  const out = evaluate(g, { inputs }).out;
  return { shape: out.shape, dtype: out.dtype, values: [...out.data] };
}

function assertClose(actual: readonly number[], expected: readonly number[], tol = 1e-12): void {
  assert.equal(actual.length, expected.length, `length: ${actual} vs ${expected}`);
  actual.forEach((v, i) => {
    assert.ok(
      Math.abs(v - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])),
      `[${i}]: ${v} vs ${expected[i]}`,
    );
  });
}

const range = (n: number, start = 0) => Array.from({ length: n }, (_, i) => start + i);

/** Row-major matmul of [m,k] by [k,n], for expected values. */
function matmulRef(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      for (let p = 0; p < k; p++) out[i * n + j] += a[i * k + p] * b[p * n + j];
    }
  }
  return out;
}

Deno.test("trace: NumPy broadcasting", async (t) => {
  await t.step("result shapes follow NumPy", () => {
    const cases: [number[], number[], number[]][] = [
      [[2, 3], [3], [2, 3]],
      [[2, 1], [3], [2, 3]],
      [[4, 1, 3], [2, 1], [4, 2, 3]],
      [[], [2, 3], [2, 3]],
      [[1], [], [1]],
      [[5, 1, 1], [1, 4, 1], [5, 4, 1]],
      [[1, 3], [2, 1], [2, 3]],
      [[0, 3], [3], [0, 3]],
    ];
    for (const [a, b, want] of cases) {
      const g = trace((x, y) => ({ s: x.add(y), r: y.mul(x), c: x.lt(y) }), [
        { name: "x", shape: a },
        { name: "y", shape: b },
      ]);
      validate(g);
      assert.deepEqual(g.outputs.s.shape, want, `[${a}] + [${b}]`);
      assert.deepEqual(g.outputs.r.shape, want);
      assert.deepEqual(g.outputs.c.shape, want);
      assert.equal(g.outputs.c.dtype, "bool");
    }
  });

  await t.step("values match hand-computed broadcasts", () => {
    // [2,1] + [3] → [[a0+b0, a0+b1, a0+b2], [a1+b0, ...]]
    const r = run((a, b) => a.add(b), [[2, 1], [10, 20]], [[3], [1, 2, 3]]);
    assert.deepEqual(r.shape, [2, 3]);
    assert.deepEqual(r.values, [11, 12, 13, 21, 22, 23]);
    // [4,1,3] * [2,1]: a[i,0,k] * b[j,0]
    const a = range(12, 1);
    const m = run((x, y) => x.mul(y), [[4, 1, 3], a], [[2, 1], [2, -1]]);
    assert.deepEqual(m.shape, [4, 2, 3]);
    const want: number[] = [];
    for (let i = 0; i < 4; i++) {
      for (const s of [2, -1]) for (let k = 0; k < 3; k++) want.push(a[i * 3 + k] * s);
    }
    assert.deepEqual(m.values, want);
    // Scalars on either side; subtraction and division keep operand order.
    assert.deepEqual(run((x) => x.sub(10), [[3], [1, 2, 3]]).values, [-9, -8, -7]);
    assert.deepEqual(run((x, y) => y.sub(x), [[2, 1], [1, 2]], [[], [10]]).values, [9, 8]);
    assert.deepEqual(run((x, y) => y.div(x), [[3], [1, 2, 4]], [[1, 1], [8]]).values, [8, 4, 2]);
    assert.deepEqual(run((x) => x.pow(2).maximum(4).minimum(9), [[4], [1, 2, 3, 4]]).values, [
      4,
      4,
      9,
      9,
    ]);
  });

  await t.step("numbers are lifted to the tensor's dtype; incompatible shapes are an error", () => {
    const i = run((x) => x.mul(3).add(1), [[3], [1, 2, 3], "i32"]);
    assert.equal(i.dtype, "i32");
    assert.deepEqual(i.values, [4, 7, 10]);
    assert.throws(
      () => trace((x, y) => x.add(y), [{ name: "x", shape: [2, 3] }, { name: "y", shape: [4] }]),
      /add: cannot broadcast shapes \[2,3\] and \[4\] \(axis -1: 3 vs 4\)/,
    );
    assert.throws(
      () => trace((x) => x.broadcastTo([2, 4]), [{ name: "x", shape: [3] }]),
      /broadcastTo/,
    );
    assert.throws(
      () =>
        trace((x, y) => x.add(y), [{ name: "x", shape: [2] }, {
          name: "y",
          shape: [2],
          dtype: "i32",
        }]),
      /add: operands must have the same dtype/,
    );
  });

  await t.step("broadcastTo, where and concat", () => {
    const b = run((x) => x.broadcastTo([2, 2, 3]), [[3], [1, 2, 3]]);
    assert.deepEqual(b.shape, [2, 2, 3]);
    assert.deepEqual(b.values, [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    const w = run((x, y) => where(x.gt(0), x, y), [[2, 2], [1, -1, -2, 3]], [[2], [10, 20]]);
    assert.deepEqual(w.values, [1, 20, 10, 3]);
    assert.deepEqual(run((x) => where(x.ge(2), 1, 0), [[3], [1, 2, 3]]).values, [0, 1, 1]);
    const c = run((x, y) => concat([x, y, x], -1), [[2, 1], [1, 2]], [[2, 2], [3, 4, 5, 6]]);
    assert.deepEqual(c.shape, [2, 4]);
    assert.deepEqual(c.values, [1, 3, 4, 1, 2, 5, 6, 2]);
    const c0 = run((x, y) => concat([x, y], 0), [[1, 2], [1, 2]], [[2, 2], [3, 4, 5, 6]]);
    assert.deepEqual(c0.values, [1, 2, 3, 4, 5, 6]);
  });
});

Deno.test("trace: shape ops", async (t) => {
  const x24 = range(24);

  await t.step("reshape with -1 infers one dimension", () => {
    const g = trace((x) => ({
      a: x.reshape([-1, 4]),
      b: x.reshape([4, -1]),
      c: x.reshape([-1]),
      d: x.reshape([2, -1, 2]),
    }), [{ name: "x", shape: [2, 3, 4] }]);
    assert.deepEqual(g.outputs.a.shape, [6, 4]);
    assert.deepEqual(g.outputs.b.shape, [4, 6]);
    assert.deepEqual(g.outputs.c.shape, [24]);
    assert.deepEqual(g.outputs.d.shape, [2, 6, 2]);
    const out = evaluate(g, { inputs: { x: x24 } });
    for (const k of ["a", "b", "c", "d"]) assert.deepEqual([...out[k].data], x24);
  });

  await t.step("reshape errors: two -1s, indivisible -1, wrong count", () => {
    const spec = [{ name: "x", shape: [2, 3, 4] }];
    assert.throws(() => trace((x) => x.reshape([-1, -1]), spec), /at most one -1/);
    assert.throws(
      () => trace((x) => x.reshape([5, -1]), spec),
      /cannot reshape 24 elements to \[5,-1\]/,
    );
    assert.throws(
      () => trace((x) => x.reshape([5, 5]), spec),
      /reshape: cannot reshape to \[5,5\]/,
    );
  });

  await t.step("T, transpose and permute move the right elements", () => {
    // x[i,j] = 3i + j for shape [2,3].
    const t2 = run((x) => x.T, [[2, 3], range(6)]);
    assert.deepEqual(t2.shape, [3, 2]);
    assert.deepEqual(t2.values, [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(run((x) => x.T, [[3], [1, 2, 3]]).values, [1, 2, 3]);
    // T on rank 3 swaps the last two axes only.
    const t3 = run((x) => x.T, [[2, 3, 4], x24]);
    assert.deepEqual(t3.shape, [2, 4, 3]);
    assert.equal(t3.values[1 * 12 + 3 * 3 + 2], x24[1 * 12 + 2 * 4 + 3]);
    // permute: out[i,j,k] = x[j,k,i] for perm [2,0,1]
    const p = run((x) => x.permute([2, 0, 1]), [[2, 3, 4], x24]);
    assert.deepEqual(p.shape, [4, 2, 3]);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 2; j++) {
        for (let k = 0; k < 3; k++) {
          assert.equal(p.values[i * 6 + j * 3 + k], x24[j * 12 + k * 4 + i]);
        }
      }
    }
    const tr = run((x) => x.transpose(0, -1), [[2, 3, 4], x24]);
    assert.deepEqual(tr.shape, [4, 3, 2]);
    assert.equal(tr.values[3 * 6 + 1 * 2 + 1], x24[1 * 12 + 1 * 4 + 3]);
    assert.throws(
      () => trace((x) => x.permute([0, 0, 1]), [{ name: "x", shape: [2, 3, 4] }]),
      /not a permutation/,
    );
    assert.throws(
      () => trace((x) => x.transpose(0, 3), [{ name: "x", shape: [2, 3, 4] }]),
      /axis 3 is out of range/,
    );
  });

  await t.step("slice, narrow and pad", () => {
    const s = run((x) => x.slice([0, 1], [2, 3]), [[2, 3], range(6)]);
    assert.deepEqual(s.shape, [2, 2]);
    assert.deepEqual(s.values, [1, 2, 4, 5]);
    assert.deepEqual(run((x) => x.narrow(-1, 1, 1), [[2, 3], range(6)]).values, [1, 4]);
    const p = run((x) => x.pad([1, 0], [0, 1]), [[2, 2], [1, 2, 3, 4]]);
    assert.deepEqual(p.shape, [3, 3]);
    assert.deepEqual(p.values, [0, 0, 0, 1, 2, 0, 3, 4, 0]);
    assert.throws(
      () => trace((x) => x.slice([0], [4]), [{ name: "x", shape: [3] }]),
      /out of bounds/,
    );
  });
});

Deno.test("trace: matmul", async (t) => {
  await t.step("2-D", () => {
    const a = range(6, 1);
    const b = range(12, -5);
    const r = run((x, y) => x.matmul(y), [[2, 3], a], [[3, 4], b]);
    assert.deepEqual(r.shape, [2, 4]);
    assert.deepEqual(r.values, matmulRef(a, b, 2, 3, 4));
  });

  await t.step("batched, with equal and broadcast batch dims", () => {
    const a = range(12, 1);
    const b = range(12, 3);
    const r = run((x, y) => x.matmul(y), [[2, 2, 3], a], [[2, 3, 2], b]);
    assert.deepEqual(r.shape, [2, 2, 2]);
    assert.deepEqual(r.values, [
      ...matmulRef(a.slice(0, 6), b.slice(0, 6), 2, 3, 2),
      ...matmulRef(a.slice(6), b.slice(6), 2, 3, 2),
    ]);
    // [1,2,3] @ [3,3,2]: the left batch of 1 broadcasts over 3.
    const c = range(18, -4);
    const s = run((x, y) => x.matmul(y), [[1, 2, 3], a.slice(0, 6)], [[3, 3, 2], c]);
    assert.deepEqual(s.shape, [3, 2, 2]);
    assert.deepEqual(
      s.values,
      [0, 1, 2].flatMap((i) => matmulRef(a.slice(0, 6), c.slice(6 * i, 6 * i + 6), 2, 3, 2)),
    );
    // [2,1,2,3] @ [3,3,2] → [2,3,2,2]
    const g = trace((x, y) => x.matmul(y), [{ name: "x", shape: [2, 1, 2, 3] }, {
      name: "y",
      shape: [3, 3, 2],
    }]);
    assert.deepEqual(g.outputs.out.shape, [2, 3, 2, 2]);
    // A 2-D left operand broadcasts against a batched right one.
    const l = run((x, y) => x.matmul(y), [[2, 3], a.slice(0, 6)], [[3, 3, 2], c]);
    assert.deepEqual(l.values, s.values);
  });

  await t.step("n-D × 2-D applies the matrix to every row (NumPy semantics)", () => {
    const a = range(24, -7);
    const w = range(8, 1);
    const r = run((x, y) => x.matmul(y), [[2, 3, 4], a], [[4, 2], w]);
    assert.deepEqual(r.shape, [2, 3, 2]);
    assert.deepEqual(r.values, matmulRef(a, w, 6, 4, 2));
    // Linear layer convention: y = x Wᵀ with W stored [out, in].
    const g = trace((x) => x.matmul(param("weight", [5, 4]).T), [{ name: "x", shape: [2, 3, 4] }]);
    assert.deepEqual(g.outputs.out.shape, [2, 3, 5]);
    assert.equal(graphNodes(g).filter((n) => n.op === "matmul").length, 1);
  });

  await t.step("errors: rank < 2, inner dims, batch dims", () => {
    const spec = (a: number[], b: number[]) => [{ name: "x", shape: a }, { name: "y", shape: b }];
    const mm = (x: Tensor, y: Tensor) => x.matmul(y);
    assert.throws(() => trace(mm, spec([3], [3, 2])), /matmul: operands need rank ≥ 2/);
    assert.throws(() => trace(mm, spec([2, 3], [4, 2])), /inner dimensions differ: 3 .* vs 4/);
    assert.throws(
      () => trace(mm, spec([2, 2, 3], [3, 3, 2])),
      /matmul: cannot broadcast shapes \[2\] and \[3\]/,
    );
  });
});

Deno.test("trace: reductions and row-wise ops", async (t) => {
  // x[i,j,k] = 12i + 4j + k, shape [2,3,4]
  const x = range(24);
  const spec: [number[], number[]] = [[2, 3, 4], x];
  const at = (i: number, j: number, k: number) => x[12 * i + 4 * j + k];

  await t.step("sum over axes, negative axes, keepdims, all", () => {
    const s1 = run((t) => t.sum(1), spec);
    assert.deepEqual(s1.shape, [2, 4]);
    assert.deepEqual(
      s1.values,
      [0, 1].flatMap((i) => range(4).map((k) => at(i, 0, k) + at(i, 1, k) + at(i, 2, k))),
    );
    const s02 = run((t) => t.sum([0, -1], true), spec);
    assert.deepEqual(s02.shape, [1, 3, 1]);
    assert.deepEqual(
      s02.values,
      range(3).map((j) =>
        [0, 1].reduce((a, i) => a + range(4).reduce((b, k) => b + at(i, j, k), 0), 0)
      ),
    );
    const all = run((t) => t.sum(), spec);
    assert.deepEqual(all.shape, []);
    assert.deepEqual(all.values, [276]);
    assert.deepEqual(run((t) => t.sum(undefined, true), spec).shape, [1, 1, 1]);
    assert.throws(
      () => trace((t) => t.sum([1, -2]), [{ name: "x", shape: [2, 3, 4] }]),
      /repeated axis/,
    );
    assert.throws(
      () => trace((t) => t.sum(3), [{ name: "x", shape: [2, 3, 4] }]),
      /axis 3 is out of range for rank 3/,
    );
  });

  await t.step("mean and max", () => {
    const m = run((t) => t.mean(-1), spec);
    assert.deepEqual(m.shape, [2, 3]);
    assertClose(m.values, range(6).map((r) => 4 * r + 1.5));
    const mk = run((t) => t.mean([0, 2], true), spec);
    assert.deepEqual(mk.shape, [1, 3, 1]);
    assertClose(mk.values, [7.5, 11.5, 15.5]);
    assertClose(run((t) => t.mean(), spec).values, [11.5]);
    const mx = run((t) => t.max(0), [[2, 3], [1, 9, -3, 4, 2, -1]]);
    assert.deepEqual(mx.values, [4, 9, -1]);
    const mxk = run((t) => t.max(1, true), [[2, 3], [1, 9, -3, 4, 2, -1]]);
    assert.deepEqual(mxk.shape, [2, 1]);
    assert.deepEqual(mxk.values, [9, 4]);
    assert.deepEqual(run((t) => t.max(), [[3], [-5, -2, -9]]).values, [-2]);
  });

  await t.step("softmax over the last and over a non-last axis", () => {
    const data = [1, 2, 3, 0, -1, 5];
    const softmax = (v: number[]) => {
      const e = v.map((z) => Math.exp(z - Math.max(...v)));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((z) => z / s);
    };
    const last = run((t) => t.softmax(), [[2, 3], data]);
    assertClose(last.values, [...softmax([1, 2, 3]), ...softmax([0, -1, 5])]);
    const first = run((t) => t.softmax(0), [[2, 3], data]);
    assert.deepEqual(first.shape, [2, 3]);
    const cols = [0, 1, 2].map((j) => softmax([data[j], data[3 + j]]));
    assertClose(first.values, [
      cols[0][0],
      cols[1][0],
      cols[2][0],
      cols[0][1],
      cols[1][1],
      cols[2][1],
    ]);
    const mid = run((t) => t.softmax(1).sum(1), [[2, 3, 4], range(24).map((v) => Math.sin(v))]);
    assertClose(mid.values, new Array(8).fill(1));
    const lsm = run((t) => t.logSoftmax(0), [[2, 3], data]);
    assertClose(lsm.values, first.values.map(Math.log));
  });

  await t.step("normalize, elementwise math, cast", () => {
    const n = run((t) => t.normalize(0), [[1, 4], [1, 2, 3, 4]]);
    const sd = Math.sqrt(1.25);
    assertClose(n.values, [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]);
    const v = [-1, 0.5, 2];
    assertClose(run((t) => t.exp(), [[3], v]).values, v.map(Math.exp));
    assertClose(run((t) => t.tanh(), [[3], v]).values, v.map(Math.tanh));
    assertClose(run((t) => t.sigmoid(), [[3], v]).values, v.map((z) => 1 / (1 + Math.exp(-z))));
    assertClose(run((t) => t.abs().log(), [[3], v]).values, v.map((z) => Math.log(Math.abs(z))));
    assertClose(
      run((t) => t.abs().rsqrt(), [[3], v]).values,
      v.map((z) => 1 / Math.sqrt(Math.abs(z))),
    );
    assert.deepEqual(run((t) => t.relu().square(), [[3], v]).values, [0, 0.25, 4]);
    const c = run((t) => t.cast("i32"), [[3], [-1.7, 0.5, 2.9]]);
    assert.equal(c.dtype, "i32");
    assert.deepEqual(c.values, [-1, 0, 2]);
    assert.deepEqual(run((t) => t.gt(0).cast("f32"), [[3], v]).values, [0, 1, 1]);
  });
});

Deno.test("trace: leaves", async (t) => {
  await t.step("constant, iota and randomUniform", () => {
    const g = trace(() => ({
      fill: constant(2.5, [2]),
      data: constant([1, 2, 3, 4], [2, 2], "i32"),
      rows: iota([2, 3], 0),
      cols: iota([2, 3], -1),
      r: randomUniform([4], { seed: 1, stream: 0, bound: 0.5 }),
    }), []);
    const out = evaluate(validate(g));
    assert.deepEqual([...out.fill.data], [2.5, 2.5]);
    assert.equal(out.data.dtype, "i32");
    assert.deepEqual([...out.data.data], [1, 2, 3, 4]);
    assert.deepEqual([...out.rows.data], [0, 0, 0, 1, 1, 1]);
    assert.deepEqual([...out.cols.data], [0, 1, 2, 0, 1, 2]);
    assert.ok([...out.r.data].every((v) => v >= -0.5 && v < 0.5));
    assert.deepEqual([...evaluate(g).r.data], [...out.r.data]);
    assert.throws(
      () => constant([1, 2, 3], [2]),
      /const: data has 3 elements, shape \[2\] needs 2/,
    );
  });
});

Deno.test("trace: scopes and params", async (t) => {
  await t.step("scope gives params their module paths, nested and numeric", () => {
    const g = trace((x) => {
      let h = x;
      for (let i = 0; i < 2; i++) {
        h = scope("layers", () =>
          scope(i, () => {
            const q = scope("attn", () => scope("q_proj", () => param("weight", [3, 3])));
            return h.matmul(q.T).add(scope("mlp.fc", () => param("bias", [3])));
          }));
      }
      const head = scope(
        "layers.0",
        () => scope("head", () => param("weight", [2, 3], { role: "frozen" })),
      );
      return h.matmul(head.T).sum();
    }, [{ name: "x", shape: [1, 3] }]);
    assert.deepEqual(g.params.map((p) => p.name), [
      "layers.0.attn.q_proj.weight",
      "layers.0.head.weight",
      "layers.0.mlp.fc.bias",
      "layers.1.attn.q_proj.weight",
      "layers.1.mlp.fc.bias",
    ]);
    assert.equal(g.params[1].attrs.role, "frozen");
    assert.equal(g.params[0].attrs.role, "trainable");
    validate(g);
  });

  await t.step("an empty scope adds nothing; scopes unwind when fn throws", () => {
    const g = trace((x) => {
      assert.throws(() =>
        scope("broken", () => {
          throw new Error("boom");
        }), /boom/);
      return x.mul(scope("", () => param("w", [2])));
    }, [{ name: "x", shape: [2] }]);
    assert.deepEqual(g.params.map((p) => p.name), ["w"]);
  });

  await t.step("param options are stored on the node", () => {
    const g = trace(
      () =>
        param("w", [2, 2], { init: { kind: "normal", std: 0.02 }, role: "frozen", dtype: "i32" })
          .sum(),
      [],
    );
    const w = g.params[0];
    assert.deepEqual(w.attrs, {
      shape: [2, 2],
      dtype: "i32",
      role: "frozen",
      init: { kind: "normal", std: 0.02 },
    });
    const d = trace(() => param("d", [1]).sum(), []).params[0];
    assert.deepEqual(d.attrs.init, { kind: "zeros" });
    assert.equal(d.dtype, "f32");
  });

  await t.step("declaring a path twice is an error; the same name in another scope is not", () => {
    assert.throws(() =>
      trace(() => {
        param("w", [2]);
        return param("w", [2]);
      }, []), /param "w" is declared twice/);
    assert.throws(() =>
      trace(() => {
        scope("a", () => param("w", [2]));
        return scope("a", () => param("w", [3]));
      }, []), /param "a.w" is declared twice/);
    const ok = trace(
      () => scope("a", () => param("w", [2])).add(scope("b", () => param("w", [2]))),
      [],
    );
    assert.equal(ok.params.length, 2);
    assert.throws(() => trace(() => param("w", [-2]), []), /param "w".*invalid dimension -2/);
  });

  await t.step("param, scope and nested trace are errors outside/inside trace", () => {
    assert.throws(() => param("w", [2]), /param\(\) can only be called inside trace\(\)/);
    assert.throws(() => scope("a", () => 1), /scope\(\) can only be called inside trace\(\)/);
    assert.throws(
      () => trace(() => trace((x) => x, [{ name: "x", shape: [1] }]).outputs.out as never, []),
      /cannot be nested/,
    );
    // The failed trace left nothing behind.
    assert.throws(() => param("w", [2]), /inside trace/);
    assert.throws(() =>
      trace(() => {
        throw new Error("user error");
      }, []), /user error/);
    const g = trace((x) => x.mul(param("w", [1])), [{ name: "x", shape: [1] }]);
    assert.equal(g.params.length, 1);
  });
});

Deno.test("trace: outputs and input specs", async (t) => {
  const spec = [{ name: "x", shape: [2] }];

  await t.step("a single tensor is named out; an array out0..; a record keeps its keys", () => {
    assert.deepEqual(Object.keys(trace((x) => x.exp(), spec).outputs), ["out"]);
    const arr = trace((x) => [x.exp(), x, x.neg()], spec);
    assert.deepEqual(Object.keys(arr.outputs), ["out0", "out1", "out2"]);
    assert.equal(arr.outputs.out1, arr.inputs[0]);
    const rec = trace((x) => ({ loss: x.sum(), logits: x }), spec);
    assert.deepEqual(Object.keys(rec.outputs), ["loss", "logits"]);
    assert.deepEqual(rec.outputs.loss.shape, []);
  });

  await t.step("outputs that are not tensors are an error", () => {
    assert.throws(
      () => trace((x) => [x, 3 as unknown as Tensor], spec),
      /output "out1" is not a Tensor/,
    );
    assert.throws(
      () => trace(() => ({ y: "no" as unknown as Tensor }), spec),
      /output "y" is not a Tensor/,
    );
  });

  await t.step("inputs keep their declared order, dtypes and shapes, used or not", () => {
    const g = trace((_a, b) => b.add(1), [
      { name: "a", shape: [3] },
      { name: "b", shape: [2, 2], dtype: "i32" },
      { name: "c", shape: [] },
    ]);
    assert.deepEqual(g.inputs.map((n) => [n.name, n.dtype, n.shape]), [
      ["a", "f32", [3]],
      ["b", "i32", [2, 2]],
      ["c", "f32", []],
    ]);
    validate(g);
  });

  await t.step("input spec errors: bad dtype, bad dims, duplicate names", () => {
    const f = (x: Tensor) => x;
    assert.throws(
      () => trace(f, [{ name: "x", shape: [2], dtype: "f64" as DType }]),
      /input "x": unknown dtype "f64"/,
    );
    assert.throws(
      () => trace(f, [{ name: "x", shape: [2, -1] }]),
      /input "x": shape \[2,-1\] has an invalid dimension -1/,
    );
    assert.throws(() => trace(f, [{ name: "x", shape: [1.5] }]), /invalid dimension 1.5/);
    assert.throws(
      () => trace(f, [{ name: "x", shape: [2] }, { name: "x", shape: [2] }]),
      /input "x" is declared twice/,
    );
  });

  await t.step("meta is carried on the graph", () => {
    const g: Graph = trace((x) => x, spec, { purpose: "test" });
    assert.deepEqual(g.meta, { purpose: "test" });
  });
});
