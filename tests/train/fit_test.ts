import { deepEqual, equal, notDeepEqual, ok, rejects } from "node:assert/strict";
import { param, trace } from "../../compiler/trace.ts";
import { gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { fit, type FitStep } from "../../train/fit.ts";
import { NonFiniteError } from "../../train/trainer.ts";
import { readSafetensors } from "../../io/safetensors.ts";
import { classificationBatches } from "../../data/batches.ts";
import { saveBaseModel } from "../../train/checkpoint.ts";
import { loadModel } from "../../nn/families.ts";
import { evaluateModel } from "../../train/adapted_model.ts";

const linear = () =>
  trace(
    (x, y) => ({ loss: x.matmul(param("w", [3, 1])).sub(y).square().mean() }),
    [{ name: "x", shape: [4, 3] }, { name: "y", shape: [4, 1] }],
  );
const BATCH = { x: [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], y: [1, 2, 3, 6] };

const CONFIG = { vocabSize: 260, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1 } as const;

Deno.test("fit", async (t) => {
  await t.step("trains a model with no adapter and returns its history and params", async () => {
    const { history, params, graph } = await fit({
      model: linear(),
      data: [BATCH],
      steps: 200,
      schedule: 0.05,
      logEvery: 10,
    });
    equal(history.at(-1)!.step, 200);
    ok(history.at(-1)!.loss! < history[0].loss! / 100);
    deepEqual(Array.from(params.w, Math.round), [1, 2, 3]);
    deepEqual(Object.keys(params), graph.params.map((p) => p.name));
  });

  await t.step(
    "VeRA: only the adapter and saved modules train, the base stays as given",
    async () => {
      const model = gptGraph({ ...CONFIG, head: "classifier", numClasses: 2 }, {
        batch: 2,
        seqLen: 8,
      });
      const base = initParams(model, { seed: 3 });
      const examples = [
        { text: "ham ham", label: 0 },
        { text: "spam!!", label: 1 },
        { text: "hello", label: 0 },
        { text: "WIN $$$", label: 1 },
      ];
      const steps: FitStep[] = [];
      let ended = 0;
      const logged: number[] = [], evaluated: [number, number][] = [];
      const result = await fit({
        model,
        adapter: {
          vera: { r: 4, targetModules: ["q_proj", "v_proj"], modulesToSave: ["classifier"] },
        },
        params: { ...base, "lm_head.weight": new Float32Array(4) }, // not this model's: skipped
        data: () =>
          classificationBatches(examples, { batchSize: 2, seqLen: 8, seed: 0, epochs: 1 }),
        steps: 5,
        schedule: 1e-2,
        logEvery: 2,
        callbacks: {
          onStep: (s) => void steps.push(s),
          onLog: (r) => void logged.push(r.step),
          onEvaluate: (m, step) => void evaluated.push([step, m.accuracy!]),
          onEnd: () => void ended++,
        },
        eval: {
          batches: () => [{ feeds: classificationFeeds(examples.slice(0, 2)), rows: 2 }],
          every: 5,
        },
      });
      ok(result.adapter !== undefined);
      deepEqual(steps.map((s) => s.step), [1, 2, 3, 4, 5]);
      deepEqual(steps.filter((s) => s.loss !== undefined).map((s) => s.step), [1, 2, 4, 5]);
      ok(steps.every((s) => s.lr === 1e-2));
      equal(ended, 1);
      deepEqual(logged, result.history.map((r) => r.step));
      deepEqual(evaluated.map(([step]) => step), [0, 5]);
      equal(evaluated[1][1], result.eval!.accuracy);
      ok(result.eval !== undefined && result.eval.accuracy !== undefined);
      equal(typeof result.history.at(-1)!.eval_loss, "number");
      // The untrained model is evaluated first, as the CLI does: a step-0 record with eval fields only.
      equal(result.history[0].step, 0);
      equal(typeof result.history[0].eval_accuracy, "number");
      equal(result.history[0].loss, undefined);
      for (const [name, value] of Object.entries(base)) {
        const trained = name.startsWith("classifier.");
        if (trained) notDeepEqual(result.params[name], value, name);
        else deepEqual(result.params[name], value, name);
      }
      const lambdas = Object.keys(result.params).filter((n) => n.includes("vera_lambda"));
      ok(lambdas.length === 4, lambdas.join());
    },
  );

  await t.step("an outDir gets metrics, a plot and a checkpoint", async () => {
    const dir = await Deno.makeTempDir();
    try {
      await fit({ model: linear(), data: [BATCH], steps: 4, schedule: 0.05, outDir: dir });
      const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n");
      equal(JSON.parse(lines.at(-1)!).step, 4);
      ok((await Deno.readTextFile(`${dir}/loss.svg`)).startsWith("<svg"));
      ok((await readSafetensors(`${dir}/checkpoint.safetensors`)).tensors.has("w"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("data: arrays and functions cycle, a single iterable runs out", async () => {
    const once = [BATCH, BATCH].values();
    await rejects(
      fit({ model: linear(), data: once, steps: 3 }),
      /data ran out before step 3/,
    );
    let calls = 0;
    await fit({ model: linear(), data: () => (calls++, [BATCH]), steps: 3 });
    equal(calls, 3);
  });

  await t.step("epochs: passes over the data, one step per batch", async () => {
    const three = [BATCH, BATCH, BATCH];
    const byArray = await fit({ model: linear(), data: three, epochs: 2, logEvery: 1 });
    equal(byArray.history.at(-1)!.step, 6);
    let calls = 0;
    const byFunction = await fit({ model: linear(), data: () => (calls++, three), epochs: 2 });
    equal(byFunction.history.at(-1)!.step, 6);
    equal(calls, 1 + 2, "one pass to count the batches, then one per epoch");
    await rejects(fit({ model: linear(), data: three.values(), epochs: 1 }), /epochs needs data/);
    await rejects(fit({ model: linear(), data: three, epochs: 1, steps: 3 }), /either steps or/);
    await rejects(fit({ model: linear(), data: three }), /either steps or epochs/);
    await rejects(fit({ model: linear(), data: three, epochs: 0.5 }), /epochs must be an integer/);
  });

  await t.step("divergence stops the run with the trainer's NaN guard", async () => {
    await rejects(
      fit({ model: linear(), data: [BATCH], steps: 50, schedule: 1e30, optimizer: undefined }),
      (e) => e instanceof NonFiniteError,
    );
  });

  await t.step("bad options are named", async () => {
    await rejects(
      fit({ model: linear(), data: [BATCH], steps: 1, params: { v: new Float32Array(3) } }),
      /none of the given params is in the model \(given v; the model has w\)/,
    );
    await rejects(
      fit({ model: linear(), data: [BATCH], steps: 1, params: { w: new Float32Array(2) } }),
      /param w has 2 values, the model's has 3/,
    );
    await rejects(
      fit({ model: linear(), data: [BATCH], steps: 1, checkpointEvery: 1 }),
      /checkpointEvery needs outDir/,
    );
  });
});

function classificationFeeds(examples: { text: string; label: number }[]) {
  const [batch] = classificationBatches(examples, {
    batchSize: examples.length,
    seqLen: 8,
    seed: 0,
    epochs: 1,
    shuffle: false,
  });
  return { tokens: batch.tokens, labels: batch.labels, lastIndex: batch.lastIndex };
}

Deno.test("fit on a loaded model and examples", async (t) => {
  const dir = await Deno.makeTempDir();
  const config = { ...CONFIG, vocabSize: 260, head: "lm" as const };
  const lm = gptGraph(config, { batch: 1, seqLen: 8 });
  await saveBaseModel(`${dir}/base.safetensors`, config, lm, initParams(lm, { seed: 3 }));
  const model = await loadModel(`${dir}/base.safetensors`);
  const examples = ["anna", "bob", "carla", "dave", "eve"].map((text, i) => ({
    text,
    label: i % 2,
  }));

  await t.step("a classifier: VeRA on the family's targets, the new head trained too", async () => {
    const result = await fit({
      model,
      adapter: { vera: { r: 4 } },
      data: examples,
      epochs: 2,
      batch: 2,
      schedule: 1e-2,
      eval: { examples },
      logEvery: 1,
    });
    // 5 examples in batches of 2: 3 batches a pass, 2 passes; step 0 is the evaluation before.
    deepEqual(result.history.map((r) => r.step), [0, 1, 2, 3, 4, 5, 6]);
    equal(result.adapter?.kind, "vera");
    deepEqual(result.adapter!.targets.map((x) => x.module), [
      "layers.0.attn.q_proj",
      "layers.0.attn.v_proj",
    ]);
    ok(result.params["classifier.weight"] !== undefined, "a classification head");
    notDeepEqual(
      result.params["classifier.weight"],
      initParams(result.graph, { seed: 0 })["classifier.weight"],
    );
    // The base weights are the loaded model's, untouched.
    deepEqual(
      result.params["layers.0.attn.q_proj.weight"],
      model.weights["layers.0.attn.q_proj.weight"],
    );
    equal(result.history.at(-1)!.eval_accuracy, result.eval!.accuracy);
  });

  await t.step("a language model on texts, measured as evaluateModel measures it", async () => {
    const texts = ["anna", "bob", "carla", "dave"];
    const result = await fit({ model, data: texts, steps: 3, batch: 2, seqLen: 8, schedule: 1e-2 });
    ok(Number.isFinite(result.history.at(-1)!.loss));
    const trained = { ...model, weights: { ...model.weights, ...result.params } };
    const docs = texts.map((completion) => ({ prompt: "", completion }));
    const after = await evaluateModel(trained, docs, { batch: 2, seqLen: 8 });
    const before = await evaluateModel(model, docs, { batch: 2, seqLen: 8 });
    ok(after.loss < before.loss, `${before.loss} → ${after.loss}`);
  });

  await t.step("examples need a loaded model, a loaded model needs examples", async () => {
    await rejects(
      fit({ model: linear(), data: examples, steps: 1 }),
      /examples train a loaded model/,
    );
    await rejects(fit({ model, data: [BATCH], steps: 1 }), /a loaded model trains on examples/);
    await rejects(
      fit({ model: linear(), adapter: { lora: { r: 2 } }, data: [BATCH], steps: 1 }),
      /needs targetModules/,
    );
  });
  await Deno.remove(dir, { recursive: true });
});
