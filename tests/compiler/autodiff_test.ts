import assert from "node:assert/strict";
import { grad, gradients, gradName, valueAndGrad } from "../../compiler/autodiff.ts";
import { type Graph, graphNodes, makeNode } from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import { dce } from "../../compiler/passes/cleanup.ts";
import { concat, constant, param, Tensor, trace, where } from "../../compiler/trace.ts";
import { evaluate, type Feeds } from "../../backends/cpu/interpreter.ts";
import * as ops from "../../ops/mod.ts";

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const ok = Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i]));
    assert.ok(ok, `[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** The gradient of a one-param scalar function f(w), evaluated at `w`. */
function gradAt(f: (w: Tensor) => Tensor, w: number[]): number[] {
  const g = trace(() => f(param("w", [w.length])), []);
  const dg = validate(grad(g));
  return [...evaluate(dg, { params: { w } })[gradName("w")].data];
}

/** Central finite differences of output `of` with respect to every element of every fed param. */
function numericGrads(
  graph: Graph,
  feeds: Feeds,
  of: string,
  eps = 1e-6,
): Record<string, number[]> {
  const result: Record<string, number[]> = {};
  for (const [name, value] of Object.entries(feeds.params ?? {})) {
    const base = [...(value as number[])];
    result[name] = base.map((_, i) => {
      const at = (delta: number) => {
        const moved = base.map((v, j) => (j === i ? v + delta : v));
        return evaluate(graph, { ...feeds, params: { ...feeds.params, [name]: moved } })[of]
          .data[0];
      };
      return (at(eps) - at(-eps)) / (2 * eps);
    });
  }
  return result;
}

const w3 = [0.3, -1.2, 2];

Deno.test("autodiff: gradients of simple functions", async (t) => {
  await t.step("x² → 2x, exp → exp, log → 1/x, tanh → 1 − tanh²", () => {
    assertClose(gradAt((w) => w.square().sum(), w3), w3.map((v) => 2 * v));
    assertClose(gradAt((w) => w.pow(2).sum(), w3), w3.map((v) => 2 * v));
    assertClose(gradAt((w) => w.exp().sum(), w3), w3.map(Math.exp));
    assertClose(gradAt((w) => w.abs().log().sum(), w3), w3.map((v) => 1 / v));
    assertClose(gradAt((w) => w.tanh().sum(), w3), w3.map((v) => 1 - Math.tanh(v) ** 2));
    assertClose(
      gradAt((w) => w.sigmoid().sum(), w3),
      w3.map((v) => Math.exp(-v) / (1 + Math.exp(-v)) ** 2),
    );
    assertClose(
      gradAt((w) => w.abs().sqrt().sum(), w3),
      w3.map((v) => Math.sign(v) / (2 * Math.sqrt(Math.abs(v)))),
    );
  });

  await t.step("chain rule: d/dw sum(tanh(exp(w)·w)) and mean", () => {
    const want = w3.map((v) => {
      const u = Math.exp(v) * v;
      return (1 - Math.tanh(u) ** 2) * (Math.exp(v) * v + Math.exp(v));
    });
    assertClose(gradAt((w) => w.exp().mul(w).tanh().sum(), w3), want);
    assertClose(gradAt((w) => w.mean(), w3), [1 / 3, 1 / 3, 1 / 3]);
    assertClose(gradAt((w) => w.log().sum(), [0.5, 2, 4]), [2, 0.5, 0.25]);
  });

  await t.step("a value used twice accumulates: x·x, exp(x)+x, x through two broadcasts", () => {
    assertClose(gradAt((w) => w.mul(w).sum(), w3), w3.map((v) => 2 * v));
    assertClose(gradAt((w) => w.exp().add(w).sum(), w3), w3.map((v) => Math.exp(v) + 1));
    assertClose(gradAt((w) => w.mul(w).mul(w).sum(), w3), w3.map((v) => 3 * v * v));
    // w [3] broadcast against [2,3] twice: d/dw sum((w + c)·w) over 2 rows.
    const c = constant([1, 2, 3, 4, 5, 6], [2, 3]);
    const want = w3.map((v, i) => 2 * v + (1 + i) + 2 * v + (4 + i));
    assertClose(gradAt((w) => c.add(w).mul(w).sum(), w3), want);
    // Every use of a node accumulates into one cotangent.
    const g = trace(() => param("w", [3]).mul(param("w2", [3])).sum(), []);
    const gg = grad(g);
    const add = graphNodes(gg).filter((n) => n.op === "add");
    assert.equal(add.length, 0, "no accumulation needed when each value is used once");
  });

  await t.step("matmul: d/dW sum(x Wᵀ) = column sums of x", () => {
    const g = trace((x) => x.matmul(param("W", [2, 3]).T).sum(), [{ name: "x", shape: [4, 3] }]);
    const x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const W = [1, 0, -1, 2, 0.5, 3];
    const dW = evaluate(validate(grad(g)), { inputs: { x }, params: { W } })[gradName("W")];
    assert.deepEqual(dW.shape, [2, 3]);
    assert.deepEqual([...dW.data], [22, 26, 30, 22, 26, 30]);
  });

  await t.step("composite functions agree with finite differences", () => {
    const x = [0.5, -1, 2, 0.25, 1.5, -0.75];
    const labels = [2, 0];
    const g = trace((xs, y) => {
      const w = param("w", [3, 3]);
      const b = param("b", [3]);
      const h = xs.matmul(w.T).add(b).gelu();
      const z = concat([h.narrow(1, 0, 2), h.pad([0, 0], [0, 1]).narrow(1, 3, 1)], 1);
      const n = z.normalize().mul(b).softmax(0).add(h.logSoftmax());
      const gated = where(n.gt(0), n.maximum(h), n.minimum(h.neg())).div(b.abs().add(1));
      const loss = gated.crossEntropy(y).mean().add(h.max(1).rsqrt().sum()).add(
        w.mean([1], true).sum(),
      );
      return { loss, other: h.sum() };
    }, [{ name: "x", shape: [2, 3] }, { name: "y", shape: [2], dtype: "i32" }]);
    const feeds = {
      inputs: { x, y: labels },
      params: { w: [0.1, 0.2, -0.3, 0.4, -0.5, 0.6, 0.7, 0.8, -0.9], b: [0.5, 1.5, 2.5] },
    };
    const dg = validate(grad(g));
    const got = evaluate(dg, feeds);
    const want = numericGrads(g, feeds, "loss");
    for (const name of ["w", "b"]) assertClose(got[gradName(name)].data, want[name], 1e-6);
  });
});

Deno.test("autodiff: options and outputs", async (t) => {
  const g = trace((x) => {
    const w1 = param("w1", [2]);
    const w2 = param("w2", [2]);
    const frozen = param("frozen", [2], { role: "frozen" });
    return { loss: x.mul(w1).mul(frozen).sum(), aux: w2.exp().sum(), vec: x.add(w2) };
  }, [{ name: "x", shape: [2] }]);
  const feeds = { inputs: { x: [3, 4] }, params: { w1: [1, 2], w2: [0, 1], frozen: [5, 6] } };

  await t.step("default: every trainable param, of `loss`; unreachable params get zeros", () => {
    const dg = validate(grad(g));
    assert.deepEqual(Object.keys(dg.outputs), ["grad:w1", "grad:w2"]);
    const r = evaluate(dg, feeds);
    assert.deepEqual([...r["grad:w1"].data], [15, 24]);
    assert.deepEqual([...r["grad:w2"].data], [0, 0]);
    assert.equal(dg.outputs["grad:w2"].op, "const");
    assert.deepEqual(dg.outputs["grad:w2"].shape, [2]);
    assert.equal(gradName("layers.0.weight"), "grad:layers.0.weight");
  });

  await t.step("`of` picks another scalar output", () => {
    const r = evaluate(grad(g, { of: "aux" }), feeds);
    assert.deepEqual([...r["grad:w1"].data], [0, 0]);
    assertClose(r["grad:w2"].data, [1, Math.E]);
  });

  await t.step("`wrt` restricts (and orders) the gradients", () => {
    const dg = validate(grad(g, { wrt: ["w1"] }));
    assert.deepEqual(Object.keys(dg.outputs), ["grad:w1"]);
    assert.deepEqual(dg.params.map((p) => p.name), ["frozen"]);
    assert.deepEqual(Object.keys(grad(g, { wrt: ["w2", "w1"] }).outputs), ["grad:w2", "grad:w1"]);
    assert.deepEqual(Object.keys(grad(g, { wrt: [] }).outputs), []);
  });

  await t.step("`inputs` adds input gradients", () => {
    const dg = validate(grad(g, { inputs: ["x"], wrt: [] }));
    assert.deepEqual(Object.keys(dg.outputs), ["grad:x"]);
    assert.deepEqual([...evaluate(dg, feeds)["grad:x"].data], [5, 12]);
    const both = evaluate(grad(g, { inputs: ["x"] }), feeds);
    assert.deepEqual(Object.keys(both), ["grad:w1", "grad:w2", "grad:x"]);
  });

  await t.step("valueAndGrad keeps the outputs beside the gradients", () => {
    const vg = validate(valueAndGrad(g));
    assert.deepEqual(Object.keys(vg.outputs), ["loss", "aux", "vec", "grad:w1", "grad:w2"]);
    assert.equal(vg.outputs.loss, g.outputs.loss);
    assert.deepEqual(vg.inputs, g.inputs);
    const r = evaluate(vg, feeds);
    assert.deepEqual([...r.loss.data], [3 * 1 * 5 + 4 * 2 * 6]);
    assert.deepEqual([...r.vec.data], [3, 5]);
    assert.deepEqual([...r["grad:w1"].data], [15, 24]);
  });

  await t.step(
    "errors: non-scalar output, ambiguous or unknown output, unknown or frozen param, bad input",
    () => {
      assert.throws(
        () => grad(g, { of: "vec" }),
        /grad: output "vec" must be an f32 scalar, got f32\[2\]/,
      );
      assert.throws(
        () => grad(g, { of: "nope" }),
        /no output nope to differentiate \(outputs: loss, aux, vec\)/,
      );
      const two = trace((x) => ({ a: x.sum(), b: x.sum() }), [{ name: "x", shape: [2] }]);
      assert.throws(() => grad(two), /no output loss to differentiate/);
      const single = trace((x) => x.mul(param("w", [2])).sum(), [{ name: "x", shape: [2] }]);
      assert.deepEqual(Object.keys(grad(single).outputs), ["grad:w"]);
      assert.throws(
        () => grad(g, { wrt: ["w3"] }),
        /grad: no param "w3" \(params: frozen, w1, w2\)/,
      );
      assert.throws(() => grad(g, { wrt: ["frozen"] }), /grad: param "frozen" is frozen/);
      assert.throws(() => grad(g, { inputs: ["y"] }), /grad: no input "y"/);
      const ints = trace((x, i) => x.sum().add(i.cast("f32").sum()), [{ name: "x", shape: [2] }, {
        name: "i",
        shape: [2],
        dtype: "i32",
      }]);
      assert.throws(() => grad(ints, { inputs: ["i"] }), /grad: input "i" is i32, not f32/);
      const intLoss = trace((x) => x.cast("i32").sum(), [{ name: "x", shape: [2] }]);
      assert.throws(() => grad(intLoss, { inputs: ["x"] }), /must be an f32 scalar, got i32\[\]/);
    },
  );

  await t.step("a backward op on the path is a clear second-order error", () => {
    const h = trace((x) => {
      const y = x.mul(param("w", [3])).softmax();
      return new Tensor(makeNode(ops.softmaxBackward, [y.node, x.node])).sum();
    }, [{ name: "x", shape: [3] }]);
    assert.throws(() => grad(h), /op softmaxBackward has no gradient rule \(a backward op/);
  });

  await t.step("integer paths carry no gradient", () => {
    const h = trace(
      (x) => x.mul(param("w", [2])).cast("i32").cast("f32").sum().add(param("v", [2]).sum()),
      [
        { name: "x", shape: [2] },
      ],
    );
    const r = evaluate(validate(grad(h)), {
      inputs: { x: [1, 2] },
      params: { w: [1, 1], v: [0, 0] },
    });
    assert.deepEqual([...r["grad:w"].data], [0, 0]);
    assert.deepEqual([...r["grad:v"].data], [1, 1]);
  });

  await t.step("gradients() returns a node per leaf, zeros where out does not depend on it", () => {
    const x = makeNode(ops.input, [], { shape: [2], dtype: "f32" }, "gx");
    const y = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "gy");
    const out = makeNode(ops.sum, [makeNode(ops.exp, [x])], { axes: [0] });
    const [dx, dy] = gradients(out, [x, y]);
    assert.deepEqual(dx.shape, [2]);
    assert.deepEqual(dy.attrs, { value: 0, shape: [3], dtype: "f32" });
  });
});

Deno.test("autodiff: nothing is computed for frozen weights", async (t) => {
  // y = sum((x @ W1ᵀ) @ W2ᵀ), x [B=2, in=3], W1 [hid=4, in=3], W2 [out=5, hid=4].
  const build = (w1Role: "frozen" | "trainable") =>
    trace((x) => {
      const w1 = param("W1", [4, 3], { role: w1Role });
      const w2 = param("W2", [5, 4]);
      return x.matmul(w1.T).matmul(w2.T).sum();
    }, [{ name: "x", shape: [2, 3] }]);
  const matmuls = (g: Graph) => graphNodes(g).filter((n) => n.op === "matmul");
  const x = [1, 2, 3, -1, 0.5, 2];
  const W1 = Array.from({ length: 12 }, (_, i) => (i % 5) - 2);
  const W2 = Array.from({ length: 20 }, (_, i) => (i % 3) * 0.5);

  await t.step(
    "frozen W1: two matmuls (forward h = x W1ᵀ, then hᵀ·g for W2) and none for W1",
    () => {
      const dg = validate(dce(grad(build("frozen"))));
      assert.deepEqual(Object.keys(dg.outputs), ["grad:W2"]);
      const mms = matmuls(dg);
      assert.equal(mms.length, 2);
      for (const m of mms) {
        assert.ok(
          m.shape.join() !== "4,3" && m.shape.join() !== "3,4",
          `a matmul of W1's shape: [${m.shape}]`,
        );
      }
      // No node of the grad graph produces something of W1's (or W1ᵀ's) shape, other than reading W1.
      const w1Shaped = graphNodes(dg).filter((n) => n.op !== "param" && (n.shape.join() === "4,3"));
      assert.deepEqual(w1Shaped.map((n) => n.op), []);
      // And the cotangent of h (the input of the W2 matmul) is never built: no [2,4] matmul.
      assert.deepEqual(mms.map((m) => m.shape.join()).sort(), ["2,4", "4,5"]);
      // Values: dL/dW2[o, k] = Σ_b h[b, k].
      const r = evaluate(dg, { inputs: { x }, params: { W1, W2 } })["grad:W2"];
      const h = [0, 1].map((b) =>
        [0, 1, 2, 3].map((k) => [0, 1, 2].reduce((s, i) => s + x[b * 3 + i] * W1[k * 3 + i], 0))
      );
      const colSums = [0, 1, 2, 3].map((k) => h[0][k] + h[1][k]);
      assertClose(r.data, Array.from({ length: 5 }, () => colSums).flat());
    },
  );

  await t.step("trainable W1 costs two more matmuls; wrt W2 alone does not", () => {
    const g = build("trainable");
    assert.equal(matmuls(dce(grad(g))).length, 4);
    assert.equal(matmuls(dce(grad(g, { wrt: ["W2"] }))).length, 2);
    // The forward product that only feeds the loss value is not part of the gradient graph.
    assert.equal(matmuls(valueAndGrad(build("frozen"))).length, 3);
  });
});
