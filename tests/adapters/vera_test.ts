import { deepEqual, equal, fail, match, ok, throws } from "node:assert/strict";
import type { Graph } from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import { param, trace } from "../../compiler/trace.ts";
import { grad, gradName } from "../../compiler/autodiff.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";
import { type GptConfig, gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { graphNodes } from "../../compiler/ir.ts";
import { vera, veraTrainableCount } from "../../adapters/vera.ts";
import { lora, loraTrainableCount } from "../../adapters/lora.ts";
import { merge, safeMerge, unmerge } from "../../adapters/merge.ts";
import { kaimingUniformBound } from "../../prng/threefry.ts";

const CONFIG: GptConfig = {
  vocabSize: 11,
  maxSeqLen: 5,
  dModel: 8,
  heads: 2,
  layers: 2,
  head: "classifier",
  numClasses: 3,
};
const SHAPE = { batch: 2, seqLen: 5 };
const INPUTS = { tokens: [1, 4, 2, 9, 3, 7, 0, 5, 10, 6], labels: [1, 0], lastIndex: [4, 2] };

function base(config: GptConfig = CONFIG): Graph {
  return gptGraph(config, SHAPE);
}

/** Params with non-zero lambdaB so the adapter actually does something. */
function perturbed(graph: Graph, seed = 5): Record<string, Float32Array> {
  const params = initParams(graph, { seed });
  for (const [name, v] of Object.entries(params)) {
    if (/vera_lambda_b|lora_B/.test(name)) {
      params[name] = v.map((_, i) => 0.5 * Math.sin(3 * i + 1));
    }
  }
  return params;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return m;
}

Deno.test("lambdaB is zero-initialised so the adapted model equals the base", () => {
  const g = base();
  const { graph } = vera(g, { r: 6, targetModules: ["q_proj", "v_proj", "fc1", "fc2"] });
  validate(graph);
  const params = initParams(graph, { seed: 1 });
  for (const [name, v] of Object.entries(params)) {
    if (name.endsWith("vera_lambda_b")) ok(v.every((x) => x === 0), name);
    if (name.endsWith("vera_lambda_d")) ok(v.every((x) => x === Math.fround(0.1)), name);
  }
  const before = evaluate(g, { inputs: INPUTS, params });
  const after = evaluate(graph, { inputs: INPUTS, params });
  deepEqual([...after.logits.data], [...before.logits.data]);
  deepEqual([...after.loss.data], [...before.loss.data]);
});

Deno.test("gradients reach only the lambdas", async (t) => {
  for (const form of ["branch", "merged"] as const) {
    await t.step(form, () => gradientsReachOnlyLambdas(form));
  }
});

function gradientsReachOnlyLambdas(form: "branch" | "merged") {
  const g = base();
  const { graph, adapter } = vera(g, { r: 6, targetModules: ["q_proj", "fc1", "fc2"] }, { form });
  const trainable = graph.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name!);
  ok(trainable.length > 0 && trainable.every((n) => /vera_lambda_[bd]$/.test(n)), trainable.join());
  const gradGraph = grad(graph);
  deepEqual(Object.keys(gradGraph.outputs).sort(), trainable.map(gradName).sort());
  // Backward work = nodes the forward graph does not have. A gradient of a
  // frozen weight or projection would be a matmul of its shape (either
  // orientation); the embedding's would be a scatterAdd over the vocabulary.
  const forward = new Set(graphNodes(graph).map((n) => n.id));
  const weightShapes = new Set<string>();
  const add = (a: number, b: number) => weightShapes.add(`${a}x${b}`).add(`${b}x${a}`);
  for (const p of graph.params) {
    if (p.attrs.role === "frozen" && p.shape.length === 2) add(p.shape[0], p.shape[1]);
  }
  add(adapter.config.r, adapter.maxIn);
  add(adapter.maxOut, adapter.config.r);
  for (const t of adapter.targets) {
    add(adapter.config.r, t.inFeatures);
    add(t.outFeatures, adapter.config.r);
  }
  const backward = graphNodes(gradGraph).filter((n) => !forward.has(n.id));
  const offenders = backward.filter((n) =>
    (n.op === "matmul" && weightShapes.has(n.shape.join("x"))) ||
    (n.op === "scatterAdd" && n.attrs.rows === CONFIG.vocabSize)
  );
  // The merged form x (W + ΔW)ᵀ differentiates ΔW (never W): per target one
  // [out, in] product dΔW = gᵀx and the two factors' cotangents, [out, r] and [r, in].
  const expected = form === "branch" ? 0 : 3 * adapter.targets.length;
  equal(offenders.length, expected, offenders.map((n) => `${n.op}[${n.shape}]`).join(" "));
  ok(offenders.every((n) => n.op === "matmul"));
  // The only reductions backward are the two per target that shrink each lambda's cotangent.
  equal(backward.filter((n) => n.op === "sum").length, 2 * adapter.targets.length);
  const baseForward = new Set(graphNodes(g).map((n) => n.id));
  const fullBackward = graphNodes(grad(g)).filter((n) => !baseForward.has(n.id));
  ok(backward.length < fullBackward.length, `${backward.length} vs ${fullBackward.length}`);
}

Deno.test("float64 gradient check of the VeRA-rewritten GPT with respect to every lambda", () => {
  for (const head of ["classifier", "lm"] as const) {
    const config = { ...CONFIG, head };
    const { graph } = vera(base(config), { r: 3, targetModules: ["q_proj", "v_proj", "fc2"] });
    const inputs = head === "lm"
      ? { tokens: INPUTS.tokens, targets: [4, 2, 9, 3, -1, 0, 5, 10, 6, 1] }
      : INPUTS;
    const params = perturbed(graph);
    const grads = evaluate(grad(graph), { inputs, params });
    const lossAt = (p: Record<string, Float32Array | Float64Array>) =>
      evaluate(graph, { inputs, params: p }).loss.data[0];
    for (const p of graph.params.filter((n) => n.attrs.role === "trainable")) {
      const values = Float64Array.from(params[p.name!]);
      const analytic = grads[gradName(p.name!)].data;
      for (let i = 0; i < values.length; i++) {
        const eps = 1e-6;
        const plus = Float64Array.from(values), minus = Float64Array.from(values);
        plus[i] += eps;
        minus[i] -= eps;
        const numeric =
          (lossAt({ ...params, [p.name!]: plus }) - lossAt({ ...params, [p.name!]: minus })) /
          (2 * eps);
        const err = Math.abs(numeric - analytic[i]) / Math.max(1e-3, Math.abs(numeric));
        ok(
          err < 1e-4 || Math.abs(numeric - analytic[i]) < 1e-8,
          `${head} ${p.name}[${i}]: ${analytic[i]} vs ${numeric}`,
        );
      }
    }
  }
});

Deno.test("merge folds the adapter: merged model equals adapted model; unmerge restores W", async () => {
  const g = base();
  for (
    const adapt of [
      () => vera(g, { r: 6, targetModules: ["q_proj", "v_proj", "fc1", "fc2"] }),
      () => lora(g, { r: 2, alpha: 4, targetModules: ["q_proj", "fc2"] }),
    ]
  ) {
    const { graph, adapter } = adapt();
    const params = perturbed(graph);
    const adapted = evaluate(graph, { inputs: INPUTS, params }, { precision: "f32" });
    const merged = await merge(adapter, params);
    ok(!Object.keys(merged).some((k) => /vera_|lora_/.test(k)), "adapter params removed");
    const folded = evaluate(g, { inputs: INPUTS, params: merged }, { precision: "f32" });
    ok(maxRelDiff(folded.logits.data, adapted.logits.data) <= 1e-5, adapter.kind);
    const restored = await unmerge(adapter, { ...params, ...merged });
    for (const t of adapter.targets) {
      ok(maxRelDiff(restored[t.weight], params[t.weight]) < 1e-6, t.weight);
    }
  }
});

Deno.test("safeMerge refuses a non-finite result and names the layer", async () => {
  const { graph, adapter } = vera(base(), { r: 4, targetModules: ["q_proj"] });
  const params = perturbed(graph);
  params["layers.1.attn.q_proj.vera_lambda_d"][0] = Infinity;
  await safeMerge(adapter, params).then(
    () => fail("expected a refusal"),
    (e: Error) => match(e.message, /safe merge refused: layers\.1\.attn\.q_proj\.weight/),
  );
});

Deno.test("trainable count equals the sum over targets of out + r", () => {
  const cases: [string[], number][] = [[["q_proj"], 4], [["q_proj", "v_proj"], 16], [[
    "fc1",
    "fc2",
    "o_proj",
  ], 7]];
  for (const [targets, r] of cases) {
    const { graph, adapter } = vera(base(), { r, targetModules: targets });
    const expected = adapter.targets.reduce((n, t) => n + t.outFeatures + r, 0);
    equal(veraTrainableCount(adapter), expected);
    const counted = graph.params.filter((p) => p.attrs.role === "trainable")
      .reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    equal(counted, expected);
  }
  // The paper's L_tuned × (d_model + r) when all targets are d_model × d_model.
  const d = CONFIG.dModel, r = 16;
  const { adapter } = vera(base(), { r, targetModules: ["q_proj", "v_proj"] });
  equal(veraTrainableCount(adapter), adapter.targets.length * (d + r));
  equal(adapter.targets.length, 2 * CONFIG.layers);
  // LoRA: Σ r·(in + out).
  const { graph: lg, adapter: la } = lora(base(), { r: 2, targetModules: ["q_proj", "fc1"] });
  equal(
    loraTrainableCount(la),
    la.targets.reduce((n, t) => n + 2 * (t.inFeatures + t.outFeatures), 0),
  );
  const lcount = lg.params.filter((p) => p.attrs.role === "trainable").reduce(
    (n, p) => n + p.shape[0] * p.shape[1],
    0,
  );
  equal(lcount, loraTrainableCount(la));
});

Deno.test("layers of different shapes share one sliced pair of projections", () => {
  const r = 5, d = CONFIG.dModel;
  const { graph, adapter } = vera(base(), { r, targetModules: ["q_proj", "fc1", "fc2"] });
  const randoms = graphNodes(graph).filter((n) => n.op === "random");
  equal(randoms.length, 2, "one A and one B for all targets");
  const [a, b] = randoms.sort((x, y) => (x.attrs.stream as number) - (y.attrs.stream as number));
  deepEqual([...a.shape], [r, 4 * d]);
  deepEqual([...b.shape], [4 * d, r]);
  equal(adapter.maxIn, 4 * d);
  equal(adapter.maxOut, 4 * d);
  equal(a.attrs.bound, kaimingUniformBound(4 * d));
  equal(b.attrs.bound, kaimingUniformBound(r));
  const slices = graphNodes(graph).filter((n) => n.op === "slice" && n.inputs[0].op === "random");
  const shapes = new Set(slices.map((n) => `${n.inputs[0].attrs.stream}:${n.shape}`));
  deepEqual(
    [...shapes].sort(),
    [`0:${r},${4 * d}`, `0:${r},${d}`, `1:${4 * d},${r}`, `1:${d},${r}`].sort(),
  );
});

Deno.test("Kaiming-uniform projections: within the bound, with the right moments", () => {
  const { graph } = vera(base(), { r: 64, targetModules: ["fc1", "fc2"], projectionPrngKey: 7 });
  const a = graphNodes(graph).find((n) => n.op === "random" && n.attrs.stream === 0)!;
  const values = Float64Array.from(evaluate({ ...graph, outputs: { a } } as Graph, {}).a.data);
  const bound = a.attrs.bound as number;
  ok(values.every((v) => v >= -bound && v < bound));
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
  ok(Math.abs(mean) < 4 * bound / Math.sqrt(3 * values.length), `mean ${mean}`);
  ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.05, `variance ${variance}`);
});

Deno.test("targeting follows PEFT: suffix names, regex, layersToTransform, modulesToSave", () => {
  const one = vera(base(), {
    r: 2,
    targetModules: ["attn.q_proj"],
    layersToTransform: [1],
    layersPattern: "layers",
  }).adapter;
  deepEqual(one.targets.map((t) => t.module), ["layers.1.attn.q_proj"]);
  // As in PEFT, a top-level "layers.1." has no layer index without a pattern (no dot before it).
  throws(
    () => vera(base(), { r: 2, targetModules: ["attn.q_proj"], layersToTransform: [1] }),
    /no module matched .* in layers \[1\] \(PEFT reads a layer index only after/,
  );
  const re = vera(base(), { r: 2, targetModules: "layers\\.0\\.mlp\\.fc\\d" }).adapter;
  deepEqual(re.targets.map((t) => t.module), ["layers.0.mlp.fc1", "layers.0.mlp.fc2"]);
  const { graph } = vera(base(), {
    r: 2,
    targetModules: ["v_proj"],
    modulesToSave: ["classifier"],
  });
  const trainable = graph.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name!);
  ok(trainable.includes("classifier.weight") && trainable.includes("classifier.bias"));
  ok(!trainable.includes("layers.0.attn.v_proj.weight"));
});

Deno.test("bad VeRA config is a clear error", () => {
  throws(
    () => vera(base(), { targetModules: ["nope"] }),
    /no module matched .*"nope".*layers\.0\.attn\.q_proj/,
  );
  throws(() => vera(base(), { r: 0, targetModules: ["q_proj"] }), /r must be an integer ≥ 1/);
  throws(
    () => vera(base(), { targetModules: ["q_proj"], projectionPrngKey: 1.5 }),
    /projectionPrngKey/,
  );
  throws(
    () =>
      vera(base(), { targetModules: ["q_proj"], layersToTransform: [7], layersPattern: "layers" }),
    /no module matched targetModules \["q_proj"\] in layers \[7\] with layersPattern "layers"/,
  );
  throws(() => vera(base(), { targetModules: "([" }), /invalid regex/);
  const notMatmul = trace((x) => x.mul(param("lin.weight", [2, 2])).sum(), [{
    name: "x",
    shape: [2, 2],
  }]);
  throws(() => vera(notMatmul, { targetModules: ["lin"] }), /not a matmul with a param weight/);
  const { graph } = vera(base(), { r: 2, targetModules: ["q_proj"] });
  throws(() => vera(graph, { targetModules: ["q_proj"] }), /already has VeRA/);
});
