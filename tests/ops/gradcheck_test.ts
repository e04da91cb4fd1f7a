// Gradient checks of every differentiable op against central differences in
// float64, keyed by op name, plus a registry walk that fails when an op with
// a vjp has no case here, or an op without one has neither a noGradient
// reason nor a forward check.

import assert from "node:assert/strict";
import { grad } from "../../compiler/autodiff.ts";
import {
  constant,
  type InputSpec,
  iota,
  param,
  randomUniform,
  type Tensor,
  trace,
} from "../../compiler/trace.ts";
import { builtinOps } from "../../ops/mod.ts";
import { dropoutConstants } from "../../ops/random.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";
import { dropoutKeep, uniformSymmetric } from "../../prng/threefry.ts";
import { checkGradients, checkGraphGradients, opsOf, Rng } from "./_gradcheck.ts";
import { CASES } from "./_grad_cases.ts";

const f32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "f32" });
const i32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "i32" });

/** Fused backward ops have no vjp; they are checked through their forward op's gradient. */
const COVERED_BY_GRADIENT_OF: Record<string, string> = {
  softmaxBackward: "softmax",
  logSoftmaxBackward: "logSoftmax",
  layerNormBackward: "layerNorm",
  crossEntropyBackward: "crossEntropy",
};

function run(graph: ReturnType<typeof trace>, inputs: Record<string, number[]> = {}) {
  return evaluate(graph, { inputs });
}

/** Forward checks of the ops without a vjp (values by hand). */
const FORWARD_CHECKS: Record<string, () => void> = {
  input: () => {
    const g = trace((x) => x, [f32("x", [3])]);
    assert.deepEqual([...run(g, { x: [1, 2, 3] }).out.data], [1, 2, 3]);
  },
  param: () => {
    const g = trace(() => param("w", [2]).mul(2), []);
    assert.deepEqual([...evaluate(g, { params: { w: [1.5, -2] } }).out.data], [3, -4]);
  },
  const: () => {
    const g = trace(
      () => ({ a: constant(2.5, [2]), b: constant([1, 2, 3, 4], [2, 2], "i32") }),
      [],
    );
    const r = run(g);
    assert.deepEqual([...r.a.data], [2.5, 2.5]);
    assert.ok(r.b.data instanceof Int32Array);
    assert.deepEqual([...r.b.data], [1, 2, 3, 4]);
  },
  iota: () => {
    const g = trace(() => ({ a: iota([2, 3], 1), b: iota([2, 3], 0) }), []);
    const r = run(g);
    assert.deepEqual([...r.a.data], [0, 1, 2, 0, 1, 2]);
    assert.deepEqual([...r.b.data], [0, 0, 0, 1, 1, 1]);
  },
  random: () => {
    const g = trace(() => randomUniform([3, 4], { seed: 9, stream: 2, bound: 0.5 }), []);
    assert.deepEqual([...run(g).out.data], [...uniformSymmetric(9, 2, 12, 0.5)]);
  },
  ...Object.fromEntries(
    ([
      ["eq", [0, 1, 0, 0]],
      ["ne", [1, 0, 1, 1]],
      ["lt", [1, 0, 0, 0]],
      ["le", [1, 1, 0, 0]],
      ["gt", [0, 0, 1, 1]],
      ["ge", [0, 1, 1, 1]],
    ] as [string, number[]][]).map(([op, want]) => [op, () => {
      const g = trace(
        (a, b) => (a as unknown as Record<string, (b: Tensor) => Tensor>)[op](b),
        [f32("a", [4]), f32("b", [4])],
      );
      const out = run(g, { a: [1, 2, 3, -0], b: [2, 2, 1, -1] }).out;
      assert.equal(out.dtype, "bool");
      assert.deepEqual([...out.data], want, op);
    }]),
  ),
};

Deno.test("registry: every op has a cpu rule and is covered by a gradient or forward check", () => {
  const problems: string[] = [];
  for (const op of builtinOps()) {
    if (typeof op.cpu !== "function") problems.push(`${op.name}: no cpu rule`);
    if (op.vjp !== undefined) {
      if (!(CASES[op.name]?.length > 0)) {
        problems.push(`${op.name}: has a vjp but no gradient case`);
      }
    } else {
      if (typeof op.noGradient !== "string" || op.noGradient.trim() === "") {
        problems.push(`${op.name}: no vjp and no noGradient reason`);
      }
      if (FORWARD_CHECKS[op.name] === undefined && COVERED_BY_GRADIENT_OF[op.name] === undefined) {
        problems.push(`${op.name}: no vjp and its forward is not exercised`);
      }
    }
  }
  const names = new Set(builtinOps().map((o) => o.name));
  for (const key of [...Object.keys(CASES), ...Object.keys(FORWARD_CHECKS)]) {
    if (!names.has(key)) problems.push(`${key}: checked here but not a registered op`);
  }
  for (const [backward, forward] of Object.entries(COVERED_BY_GRADIENT_OF)) {
    if (CASES[forward] === undefined) {
      problems.push(`${backward}: covering op ${forward} has no case`);
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("forward checks of the ops without a vjp", async (t) => {
  for (const [op, check] of Object.entries(FORWARD_CHECKS)) await t.step(op, check);
});

function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

Deno.test("gradient checks (float64 central differences)", async (t) => {
  const coveredBackward = new Map<string, string>();
  for (const [op, cases] of Object.entries(CASES)) {
    for (let k = 0; k < cases.length; k++) {
      await t.step(`${op} #${k}`, () => {
        const report = cases[k](new Rng(hashName(`${op}#${k}`)));
        assert.ok(opsOf(report.graph).has(op), `case ${op} #${k} does not use ${op}`);
        assert.ok(report.maxError <= 1e-6);
        for (const [backward, forward] of Object.entries(COVERED_BY_GRADIENT_OF)) {
          if (forward === op && opsOf(report.gradGraph).has(backward)) {
            coveredBackward.set(backward, `${op} #${k}`);
          }
        }
      });
    }
  }
  await t.step("fused backward ops are reached by their forward op's cases", () => {
    assert.deepEqual(
      Object.fromEntries([...coveredBackward].sort()),
      {
        crossEntropyBackward: "crossEntropy #1",
        layerNormBackward: "layerNorm #2",
        logSoftmaxBackward: "logSoftmax #2",
        softmaxBackward: "softmax #2",
      },
    );
  });
});

Deno.test("gradient checks are not vacuous: a wrong gradient is caught", () => {
  const report = checkGradients((x) => x.exp(), [f32("x", [3])]);
  assert.ok(report.maxMagnitude > 0.1);
  // d/dx sum(exp(x)) is exp(x); claim it is x*x instead.
  const g = trace((x) => ({ loss: x.exp().sum() }), [f32("x", [2])]);
  const wrong = trace((x) => ({ "grad:x": x.mul(x) }), [f32("x", [2])]);
  const leaves = [{ name: "x", kind: "input" as const }];
  assert.throws(
    () => checkGraphGradients(g, wrong, { x: [0.3, 0.4] }, {}, leaves),
    /gradient of input "x" element 0: analytic 0\.09/,
  );
  const right = trace((x) => ({ "grad:x": x.exp() }), [f32("x", [2])]);
  assert.ok(checkGraphGradients(g, right, { x: [0.3, 0.4] }, {}, leaves).maxError < 1e-8);
});

Deno.test("dropout: the gradient is the same mask, scaled by 1/(1-p)", () => {
  const p = 0.3, stream = 5, seed = 4242;
  const shape = [4, 8];
  const g = trace(
    (x, s) => ({ loss: x.dropout(p, s, stream).sum() }),
    [f32("x", shape), { name: "s", shape: [], dtype: "u32" }],
  );
  const x = Array.from({ length: 32 }, (_, i) => (i % 7) - 3.5);
  const dx = evaluate(grad(g, { inputs: ["x"] }), { inputs: { x, s: [seed] } })["grad:x"];
  const { scale } = dropoutConstants(p);
  assert.equal(scale, Math.fround(1 / 0.7));
  const want = x.map((_, i) => (dropoutKeep(seed, stream, i, p) ? scale : 0));
  assert.deepEqual([...dx.data], want);
  // Some dropped, some kept.
  assert.ok(want.some((v) => v === 0) && want.some((v) => v !== 0));
  // The forward uses the same mask.
  const fwd = trace((xx, s) => xx.dropout(p, s, stream), [
    f32("x", shape),
    { name: "s", shape: [], dtype: "u32" },
  ]);
  const y = evaluate(fwd, { inputs: { x, s: [seed] } }).out.data;
  y.forEach((v, i) => assert.ok(v === x[i] * want[i], `element ${i}`));
});

Deno.test("crossEntropy: ignored rows (negative labels) get exactly zero gradient", () => {
  const g = trace((x, y) => ({ loss: x.crossEntropy(y).sum() }), [
    f32("x", [3, 4]),
    i32("y", [3]),
  ]);
  const x = [0.1, 0.2, -0.3, 0.5, 1, -1, 0.5, 0, 0.3, 0.3, 0.3, 0.3];
  const dx = evaluate(grad(g, { inputs: ["x"] }), { inputs: { x, y: [2, -1, 0] } })["grad:x"].data;
  assert.deepEqual([...dx.slice(4, 8)], [0, 0, 0, 0]);
  // Each kept row of softmax - onehot sums to zero.
  assert.ok(Math.abs([...dx.slice(0, 4)].reduce((a, b) => a + b, 0)) < 1e-15);
  assert.ok(Math.abs(dx[8] - (0.25 - 1)) < 1e-15);
});

Deno.test("max: tied maxima share the gradient equally (like JAX)", () => {
  const g = trace((x) => ({ loss: x.max(1).mul(constant([1, 10], [2])).sum() }), [
    f32("x", [2, 3]),
  ]);
  const dx = evaluate(grad(g, { inputs: ["x"] }), { inputs: { x: [1, 3, 3, 2, 2, 2] } })["grad:x"];
  const want = [0, 0.5, 0.5, 10 / 3, 10 / 3, 10 / 3];
  want.forEach((w, i) =>
    assert.ok(Math.abs(dx.data[i] - w) < 1e-14, `element ${i}: ${dx.data[i]}`)
  );
});
