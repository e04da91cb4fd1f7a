import { deepEqual, equal, ok, throws } from "node:assert/strict";
import type { Graph } from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import { param, scope, trace } from "../../compiler/trace.ts";
import { gradName, valueAndGrad } from "../../compiler/autodiff.ts";
import { evaluate, type TensorData } from "../../backends/cpu/interpreter.ts";
import { gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { vera } from "../../adapters/vera.ts";
import {
  accumulateGraph,
  adamw,
  applyUpdates,
  hyperparameterFeeds,
  initOptimizerState,
  optimizerStateNames,
  sgd,
  trainStep,
} from "../../train/optim.ts";

type Vec = Float64Array;
type Params = Record<string, TensorData>;

const TRAINABLE = ["body.weight", "head.bias", "head.weight"];

/** A small two-layer regression with one frozen param (`body.scale`). */
function tinyModel(batch: number): Graph {
  return trace(
    (x, y) => {
      const [w, scale] = scope("body", () => [
        param("weight", [3, 4]),
        param("scale", [4], { role: "frozen" }),
      ]);
      const [hw, hb] = scope("head", () => [param("weight", [4, 2]), param("bias", [2])]);
      const out = x.matmul(w).mul(scale).tanh().matmul(hw).add(hb);
      return { loss: out.sub(y).square().mean(), out };
    },
    [{ name: "x", shape: [batch, 3] }, { name: "y", shape: [batch, 2] }],
  );
}

function wave(n: number, phase: number, amplitude = 1): Vec {
  return Float64Array.from({ length: n }, (_, i) => amplitude * Math.sin(1.7 * i + phase));
}

function tinyParams(): Record<string, Vec> {
  return {
    "body.weight": wave(12, 0.3),
    "body.scale": wave(4, 1.1, 0.5).map((v) => v + 1),
    "head.weight": wave(8, 2.0),
    "head.bias": wave(2, 0.7, 0.1),
  };
}

function tinyData(batch: number, offset = 0) {
  return { x: wave(3 * batch, 0.5 + offset), y: wave(2 * batch, 1.9 + offset) };
}

function copy(params: Record<string, Vec>): Record<string, Vec> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.slice()]));
}

function gradsAt(model: Graph, params: Params, inputs: Record<string, Vec>): Record<string, Vec> {
  const out = evaluate(valueAndGrad(model), { inputs, params });
  return Object.fromEntries(TRAINABLE.map((n) => [n, out[gradName(n)].data as Vec]));
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(1e-3, Math.abs(expected[i]));
    ok(err < 1e-12, `${what}[${i}]: ${actual[i]} vs reference ${expected[i]} (rel ${err})`);
  }
}

function asVec(v: TensorData): number[] {
  return Array.from("data" in v && !ArrayBuffer.isView(v) ? v.data : v as ArrayLike<number>);
}

// ---- float64 references, mirroring torch/optim/adamw.py and sgd.py (single-tensor path) ----

interface AdamWRef {
  lr: number;
  betas: [number, number];
  eps: number;
  wd: number;
}

function adamwReference(
  p: Vec,
  g: Vec,
  state: { exp_avg: Vec; exp_avg_sq: Vec },
  step: number,
  h: AdamWRef,
): void {
  const [b1, b2] = h.betas;
  const { exp_avg: m, exp_avg_sq: v } = state;
  for (let i = 0; i < p.length; i++) p[i] *= 1 - h.lr * h.wd; // param.mul_(1 - lr * wd)
  for (let i = 0; i < p.length; i++) m[i] = m[i] + (1 - b1) * (g[i] - m[i]); // lerp_
  for (let i = 0; i < p.length; i++) v[i] = v[i] * b2 + (1 - b2) * g[i] * g[i]; // addcmul_
  const bc1 = 1 - b1 ** step;
  const bc2 = 1 - b2 ** step;
  const stepSize = h.lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < p.length; i++) {
    const denom = Math.sqrt(v[i]) / bc2Sqrt + h.eps;
    p[i] += -stepSize * (m[i] / denom); // addcdiv_
  }
}

interface SgdRef {
  lr: number;
  momentum: number;
  dampening: number;
  wd: number;
  nesterov: boolean;
}

function sgdReference(p: Vec, g: Vec, state: { buf?: Vec }, h: SgdRef): void {
  const d = g.map((gi, i) => (h.wd !== 0 ? gi + h.wd * p[i] : gi));
  if (h.momentum !== 0) {
    if (state.buf === undefined) state.buf = d.slice(); // torch.clone(grad).detach()
    else {
      const buf = state.buf;
      for (let i = 0; i < d.length; i++) buf[i] = buf[i] * h.momentum + (1 - h.dampening) * d[i];
    }
    const buf = state.buf;
    for (let i = 0; i < d.length; i++) d[i] = h.nesterov ? d[i] + h.momentum * buf[i] : buf[i];
  }
  for (let i = 0; i < p.length; i++) p[i] += -h.lr * d[i];
}

// A different rate each step exercises the lr input; rates are fed as f32, so the reference rounds them too.
const LRS = [0.05, 0.03, 0.02].map(Math.fround);

Deno.test("AdamW matches PyTorch's algorithm over 3 steps", async (t) => {
  const cases: [string, AdamWRef][] = [
    ["defaults", { lr: 0, betas: [0.9, 0.999], eps: 1e-8, wd: 0.01 }],
    ["no weight decay, other betas", { lr: 0, betas: [0.8, 0.95], eps: 1e-6, wd: 0 }],
    ["strong weight decay", { lr: 0, betas: [0.9, 0.999], eps: 1e-8, wd: 0.5 }],
  ];
  for (const [label, h] of cases) {
    await t.step(label, () => {
      const model = tinyModel(4);
      const step = validate(trainStep(model, {
        optimizer: adamw({ betas: h.betas, eps: h.eps, weightDecay: h.wd }),
      }));
      const data = tinyData(4);
      let params: Params = { ...tinyParams(), ...initOptimizerState(step) };
      const ref = copy(tinyParams());
      const refState = Object.fromEntries(
        TRAINABLE.map((
          n,
        ) => [n, {
          exp_avg: new Float64Array(ref[n].length),
          exp_avg_sq: new Float64Array(ref[n].length),
        }]),
      );
      for (let s = 1; s <= 3; s++) {
        const grads = gradsAt(model, ref, data);
        for (const n of TRAINABLE) {
          adamwReference(ref[n], grads[n], refState[n], s, { ...h, lr: LRS[s - 1] });
        }
        const out = evaluate(step, {
          inputs: { ...data, ...hyperparameterFeeds(step, { step: s, lr: LRS[s - 1] }) },
          params,
        });
        params = applyUpdates(params, out, step.meta.updates as Record<string, string>);
        for (const n of TRAINABLE) {
          assertClose(asVec(params[n]), ref[n], `step ${s} ${n}`);
          assertClose(asVec(params[`optim.exp_avg.${n}`]), refState[n].exp_avg, `step ${s} m ${n}`);
          assertClose(
            asVec(params[`optim.exp_avg_sq.${n}`]),
            refState[n].exp_avg_sq,
            `step ${s} v ${n}`,
          );
        }
      }
    });
  }
});

Deno.test("SGD matches PyTorch's algorithm over 3 steps", async (t) => {
  const cases: [string, Partial<SgdRef>][] = [
    ["plain", {}],
    ["weight decay", { wd: 0.1 }],
    ["momentum", { momentum: 0.9 }],
    ["momentum, dampening and weight decay", { momentum: 0.9, dampening: 0.3, wd: 0.05 }],
    ["nesterov", { momentum: 0.8, nesterov: true }],
    ["nesterov with weight decay", { momentum: 0.9, nesterov: true, wd: 0.01 }],
  ];
  for (const [label, partial] of cases) {
    await t.step(label, () => {
      const h: SgdRef = { lr: 0, momentum: 0, dampening: 0, wd: 0, nesterov: false, ...partial };
      const model = tinyModel(4);
      const step = validate(trainStep(model, {
        optimizer: sgd({
          momentum: h.momentum,
          dampening: h.dampening,
          weightDecay: h.wd,
          nesterov: h.nesterov,
        }),
      }));
      const expectState = h.momentum === 0
        ? []
        : TRAINABLE.map((n) => `optim.momentum_buffer.${n}`);
      deepEqual(optimizerStateNames(step), expectState.sort());
      const data = tinyData(4);
      let params: Params = { ...tinyParams(), ...initOptimizerState(step) };
      const ref = copy(tinyParams());
      const refState = Object.fromEntries(TRAINABLE.map((n) => [n, {} as { buf?: Vec }]));
      for (let s = 1; s <= 3; s++) {
        const grads = gradsAt(model, ref, data);
        for (const n of TRAINABLE) {
          sgdReference(ref[n], grads[n], refState[n], { ...h, lr: LRS[s - 1] });
        }
        const out = evaluate(step, {
          inputs: { ...data, ...hyperparameterFeeds(step, { step: s, lr: LRS[s - 1] }) },
          params,
        });
        params = applyUpdates(params, out, step.meta.updates as Record<string, string>);
        for (const n of TRAINABLE) {
          assertClose(asVec(params[n]), ref[n], `step ${s} ${n}`);
          if (h.momentum !== 0) {
            assertClose(asVec(params[`optim.momentum_buffer.${n}`]), refState[n].buf!, `buf ${n}`);
          }
        }
      }
    });
  }
});

Deno.test("gradient clipping is PyTorch's clip_grad_norm_", async (t) => {
  const model = tinyModel(4);
  const data = tinyData(4);
  const grads = gradsAt(model, tinyParams(), data);
  // torch: total_norm = norm(stack([norm(g) for g in grads])); coef = clamp(max / (total + 1e-6), max=1)
  const norms = TRAINABLE.map((n) => Math.sqrt(grads[n].reduce((s, v) => s + v * v, 0)));
  const total = Math.sqrt(norms.reduce((s, v) => s + v * v, 0));
  for (const maxNorm of [0.05 * total, 1e3]) {
    await t.step(`max norm ${maxNorm.toPrecision(3)}`, () => {
      const step = trainStep(model, { optimizer: sgd(), clipNorm: maxNorm });
      const out = evaluate(step, {
        inputs: { ...data, lr: [0.5], step: [1] },
        params: tinyParams(),
      });
      assertClose(out.grad_norm.data, [total], "grad_norm");
      const coef = Math.min(maxNorm / (total + 1e-6), 1);
      for (const n of TRAINABLE) {
        const expected = tinyParams()[n].map((p, i) => p + -0.5 * (grads[n][i] * coef));
        assertClose(out[`update:${n}`].data, expected, n);
      }
    });
  }
  await t.step("grad_norm is reported without clipping too", () => {
    const out = evaluate(trainStep(model, { optimizer: sgd() }), {
      inputs: { ...data, lr: [0.5], step: [1] },
      params: tinyParams(),
    });
    assertClose(out.grad_norm.data, [total], "grad_norm");
  });
  throws(() => trainStep(model, { optimizer: sgd(), clipNorm: 0 }), /clipNorm must be/);
});

Deno.test("gradient accumulation is exact", async (t) => {
  const micro = 2, k = 3;
  const combined = tinyModel(micro * k);
  const small = tinyModel(micro);
  const batches = [0, 1, 2, 3, 4, 5].map((i) => tinyData(micro, i));
  const merge = (group: typeof batches) => ({
    x: Float64Array.from(group.flatMap((b) => [...b.x])),
    y: Float64Array.from(group.flatMap((b) => [...b.y])),
  });

  await t.step("mean of micro-batch gradients = gradient of the combined mean loss", () => {
    const acc = validate(accumulateGraph(small));
    deepEqual(optimizerStateNames(acc), TRAINABLE.map((n) => `accum.${n}`));
    let params: Params = { ...tinyParams(), ...initOptimizerState(acc) };
    for (const b of batches.slice(0, k)) {
      params = applyUpdates(
        params,
        evaluate(acc, { inputs: b, params }),
        acc.meta.updates as Record<string, string>,
      );
    }
    const full = gradsAt(combined, tinyParams(), merge(batches.slice(0, k)));
    for (const n of TRAINABLE) {
      assertClose(asVec(params[`accum.${n}`]).map((v) => v / k), full[n], n);
    }
  });

  await t.step("k micro-batches + accumulated step = one step on the combined batch", () => {
    const optimizer = adamw({ weightDecay: 0.1 });
    const acc = accumulateGraph(small);
    const step = validate(
      trainStep(small, { optimizer, accumulated: true, accumulateSteps: k, clipNorm: 0.5 }),
    );
    equal(step.inputs.map((n) => n.name).join(), "lr,step");
    const big = trainStep(combined, { optimizer, clipNorm: 0.5 });
    let params: Params = {
      ...tinyParams(),
      ...initOptimizerState(acc),
      ...initOptimizerState(step),
    };
    let bigParams: Params = { ...tinyParams(), ...initOptimizerState(big) };
    for (let s = 1; s <= 2; s++) {
      const group = batches.slice((s - 1) * k, s * k);
      for (const b of group) {
        params = applyUpdates(
          params,
          evaluate(acc, { inputs: b, params }),
          acc.meta.updates as Record<string, string>,
        );
      }
      const feeds = hyperparameterFeeds(step, { step: s, lr: 0.01 });
      const out = evaluate(step, { inputs: feeds, params });
      params = applyUpdates(params, out, step.meta.updates as Record<string, string>);
      const bigOut = evaluate(big, { inputs: { ...merge(group), ...feeds }, params: bigParams });
      bigParams = applyUpdates(bigParams, bigOut, big.meta.updates as Record<string, string>);
      assertClose(out.grad_norm.data, bigOut.grad_norm.data, `grad_norm ${s}`);
      for (const n of TRAINABLE) {
        assertClose(asVec(params[n]), asVec(bigParams[n]), `step ${s} ${n}`);
        ok(asVec(params[`accum.${n}`]).every((v) => v === 0), `accum.${n} reset`);
      }
    }
  });

  await t.step("options are checked", () => {
    throws(
      () => trainStep(small, { optimizer: sgd(), accumulateSteps: 2 }),
      /needs accumulated: true/,
    );
    throws(() => trainStep(small, { optimizer: sgd(), accumulated: true }), /positive integer/);
    throws(() => accumulateGraph(accumulateGraph(small)), /already has meta.updates/);
  });
});

Deno.test("param groups read their own learning rate and weight decay", async (t) => {
  const model = tinyModel(4);
  const data = tinyData(4);
  const grads = gradsAt(model, tinyParams(), data);
  const matchers = {
    "module names": ["head"],
    regex: /^head\./,
    predicate: (name: string) => name.startsWith("head."),
  };
  for (const [label, match] of Object.entries(matchers)) {
    await t.step(label, () => {
      const step = validate(trainStep(model, {
        optimizer: sgd({ weightDecay: 0.1 }),
        groups: [{ name: "head", match, weightDecay: 0 }],
      }));
      equal(step.inputs.map((n) => n.name).join(), "x,y,lr,lr.head,step");
      deepEqual((step.meta.optimizer as { lrInputs: unknown }).lrInputs, {
        lr: ["body.weight"],
        "lr.head": ["head.bias", "head.weight"],
      });
      const out = evaluate(step, {
        inputs: {
          ...data,
          ...hyperparameterFeeds(step, { step: 1, lr: { default: 0.25, head: 2 } }),
        },
        params: tinyParams(),
      });
      const p = tinyParams();
      assertClose(
        out["update:body.weight"].data,
        p["body.weight"].map((v, i) => v + -0.25 * (grads["body.weight"][i] + 0.1 * v)),
        "body.weight (lr, decayed)",
      );
      for (const n of ["head.weight", "head.bias"]) {
        assertClose(out[`update:${n}`].data, p[n].map((v, i) => v + -2 * grads[n][i]), n);
      }
    });
  }
  await t.step("module names match whole path components", () => {
    const step = trainStep(model, { optimizer: sgd(), groups: [{ name: "w", match: ["weight"] }] });
    deepEqual((step.meta.optimizer as { lrInputs: unknown }).lrInputs, {
      lr: ["head.bias"],
      "lr.w": ["body.weight", "head.weight"],
    });
    throws(
      () => trainStep(model, { optimizer: sgd(), groups: [{ name: "w", match: ["eight"] }] }),
      /matches no trainable param/,
    );
  });
  await t.step("mistakes are errors", () => {
    const g = (name: string, match: RegExp) => ({ name, match });
    throws(
      () => trainStep(model, { optimizer: sgd(), groups: [g("a", /head/), g("b", /bias/)] }),
      /several groups/,
    );
    throws(
      () => trainStep(model, { optimizer: sgd(), groups: [g("a", /head/), g("a", /body/)] }),
      /declared twice/,
    );
    const step = trainStep(model, { optimizer: sgd(), groups: [g("head", /head/)] });
    throws(
      () => hyperparameterFeeds(step, { step: 1, lr: { default: 0.1 } }),
      /no learning rate for group "head"/,
    );
  });
});

Deno.test("frozen params get no optimizer state and no update", async (t) => {
  await t.step("tiny model", () => {
    const step = trainStep(tinyModel(4), { optimizer: adamw() });
    ok(step.params.some((p) => p.name === "body.scale"), "the forward still reads it");
    const updated = Object.values(step.meta.updates as Record<string, string>);
    ok(!updated.includes("body.scale"));
    ok(!optimizerStateNames(step).some((n) => n.endsWith("body.scale")));
    deepEqual(
      updated.filter((n) => !n.startsWith("optim.")).sort(),
      TRAINABLE,
    );
  });
  await t.step("VeRA on GPT: state only for the lambdas and the saved classifier", () => {
    const base = gptGraph(
      { vocabSize: 10, maxSeqLen: 4, dModel: 8, heads: 2, layers: 2, head: "classifier" },
      { batch: 2, seqLen: 4 },
    );
    const { graph } = vera(base, {
      r: 4,
      targetModules: ["q_proj", "v_proj"],
      modulesToSave: ["classifier"],
    });
    const step = validate(trainStep(graph, {
      optimizer: adamw(),
      groups: [{ name: "head", match: ["classifier"] }],
    }));
    const trainable = graph.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name!);
    ok(trainable.every((n) => /vera_lambda_[bd]$|^classifier\./.test(n)), trainable.join());
    deepEqual(
      optimizerStateNames(step),
      trainable.flatMap((n) => [`optim.exp_avg.${n}`, `optim.exp_avg_sq.${n}`]).sort(),
    );
    ok(optimizerStateNames(step).includes("optim.exp_avg.layers.0.attn.q_proj.vera_lambda_d"));
    deepEqual(
      (step.meta.optimizer as { lrInputs: Record<string, string[]> }).lrInputs["lr.head"],
      ["classifier.bias", "classifier.weight"],
    );
  });
});

Deno.test("the loss falls over 30 AdamW steps on a fixed batch (tiny GPT classifier)", () => {
  const model = gptGraph(
    { vocabSize: 12, maxSeqLen: 6, dModel: 16, heads: 2, layers: 1, head: "classifier" },
    { batch: 4, seqLen: 6 },
  );
  const step = trainStep(model, { optimizer: adamw({ weightDecay: 0.01 }), clipNorm: 1 });
  const inputs = {
    tokens: [1, 5, 2, 7, 3, 0, 4, 4, 9, 1, 0, 0, 11, 2, 6, 8, 10, 3, 7, 7, 1, 2, 0, 0],
    labels: [0, 1, 1, 0],
    lastIndex: [4, 3, 5, 3],
  };
  let params: Params = { ...initParams(model, { seed: 3 }), ...initOptimizerState(step) };
  const losses: number[] = [];
  for (let s = 1; s <= 30; s++) {
    const out = evaluate(step, {
      inputs: { ...inputs, ...hyperparameterFeeds(step, { step: s, lr: 1e-2 }) },
      params,
    });
    losses.push(out.loss.data[0]);
    ok(Number.isFinite(out.grad_norm.data[0]));
    params = applyUpdates(params, out, step.meta.updates as Record<string, string>);
  }
  ok(losses[29] < 0.25 * losses[0], `loss ${losses[0]} → ${losses[29]}`);
});

Deno.test("the step graph's signature and bookkeeping", async (t) => {
  const model = tinyModel(4);
  await t.step("outputs, meta and state", () => {
    const step = trainStep(model, { optimizer: sgd({ momentum: 0.5 }), clipNorm: 2 });
    ok("loss" in step.outputs && "out" in step.outputs && "grad_norm" in step.outputs);
    ok(!Object.keys(step.outputs).some((n) => n.startsWith("grad:")));
    for (const [output, name] of Object.entries(step.meta.updates as Record<string, string>)) {
      equal(output, `update:${name}`);
      const p = step.params.find((q) => q.name === name)!;
      deepEqual(step.outputs[output].shape, p.shape);
    }
    const state = initOptimizerState(step);
    // One momentum buffer per trainable param (the frozen body.scale has none), sorted.
    deepEqual(Object.keys(state), [
      "optim.momentum_buffer.body.weight",
      "optim.momentum_buffer.head.bias",
      "optim.momentum_buffer.head.weight",
    ]);
    deepEqual(Object.keys(state).map((n) => state[n].length), [12, 2, 8]);
    ok(Object.values(state).every((v) => v instanceof Float32Array && v.every((x) => x === 0)));
    const meta = step.meta.optimizer as Record<string, unknown>;
    equal(meta.kind, "sgd");
    equal(meta.clipNorm, 2);
    equal(meta.accumulateSteps, null);
  });
  await t.step("errors", () => {
    throws(
      () => trainStep(trainStep(model, { optimizer: sgd() }), { optimizer: sgd() }),
      /already/,
    );
    const clash = trace((lr) => ({ loss: lr.mul(param("w", [])).sum() }), [{
      name: "lr",
      shape: [],
    }]);
    throws(() => trainStep(clash, { optimizer: sgd() }), /already has an input named "lr"/);
    const frozen = trace((x) => ({ loss: x.mul(param("w", [2], { role: "frozen" })).sum() }), [{
      name: "x",
      shape: [2],
    }]);
    throws(() => trainStep(frozen, { optimizer: sgd() }), /no trainable params/);
    throws(() => adamw({ betas: [1, 0.999] }), /beta1 must be in \[0, 1\)/);
    throws(() => sgd({ nesterov: true }), /nesterov momentum requires/);
    throws(() => sgd({ momentum: -1 }), /momentum must be ≥ 0/);
    throws(() => applyUpdates({}, {}, { "update:w": "w" }), /no output "update:w"/);
    throws(
      () => trainStep(model, {} as unknown as Parameters<typeof trainStep>[1]),
      /optimizer is required/,
    );
  });
});
