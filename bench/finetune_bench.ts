/**
 * VeRA fine-tuning steps on the Hugging Face model families: the committed
 * tiny fixtures (tests/fixtures/hf) and two large shapes with random weights
 * built in the process (GPT-2-small's body, a ~90M Llama). Each run compiles
 * the training step (LM loss, AdamW, VeRA on the family's default targets),
 * runs a few warm-up steps, then reports the median step time and tokens/s.
 *
 *   deno run -A bench/finetune_bench.ts                          # the fixtures
 *   deno run -A bench/finetune_bench.ts gpt2-small-v40k 5        # one large shape, 5 timed steps
 *
 * @module
 */
import { mulberry32 } from "../data/random.ts";
import { getFamily, loadModel, type ModelConfig } from "../nn/families.ts";
import { initParams } from "../nn/init.ts";
import { vera } from "../adapters/vera.ts";
import { adamw, hyperparameterFeeds, trainStep } from "../train/optim.ts";
import { webgpuRunner } from "../train/executable_runner.ts";
import { requestGpu } from "../backends/webgpu/device.ts";
import { SHAPES } from "./_shapes.ts";

const FIXTURES = ["tiny-gpt2", "tiny-llama", "tiny-qwen2"];

interface Row {
  model: string;
  params: number;
  trainable: number;
  batch: number;
  seq: number;
  firstStepMs: number;
  stepMs: number;
  tokensPerS: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function bench(
  name: string,
  familyName: string,
  config: ModelConfig,
  weights: Record<string, Float32Array> | undefined,
  shape: { batch: number; seq: number; steps: number },
): Promise<Row> {
  const family = getFamily(familyName);
  const model = family.graph(config, { batch: shape.batch, seqLen: shape.seq, task: "lm" });
  const { graph } = vera(model, { r: 256, targetModules: [...family.defaultTargets] });
  const step = trainStep(graph, { optimizer: adamw(), clipNorm: 1 });
  const params = initParams(step, { seed: 0 });
  for (const [k, v] of Object.entries(weights ?? {})) if (k in params) params[k] = v;
  const random = mulberry32(1);
  const vocab = (config as { vocabSize: number }).vocabSize;
  const tokens = Int32Array.from(
    { length: shape.batch * shape.seq },
    () => Math.floor(random() * vocab),
  );
  const targets = Int32Array.from(tokens, (_, i) => tokens[(i + 1) % tokens.length]);
  const started = performance.now();
  const runner = await webgpuRunner(step);
  await runner.setParams(params);
  const feeds = (s: number) => ({
    tokens,
    targets,
    ...hyperparameterFeeds(step, { step: s, lr: { default: 1e-3 } }),
  });
  await runner.run(feeds(1), { read: ["loss"] });
  const firstStepMs = performance.now() - started;
  const times: number[] = [];
  for (let s = 2; s < 2 + shape.steps; s++) {
    const t0 = performance.now();
    await runner.run(feeds(s), { read: ["loss"] });
    times.push(performance.now() - t0);
  }
  runner.dispose();
  const stepMs = median(times);
  const count = (nodes: typeof graph.params) =>
    nodes.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  return {
    model: name,
    params: count(model.params),
    trainable: count(graph.params.filter((p) => p.attrs.role === "trainable")),
    batch: shape.batch,
    seq: shape.seq,
    firstStepMs,
    stepMs,
    tokensPerS: (shape.batch * shape.seq) / (stepMs / 1000),
  };
}

if (import.meta.main) {
  const [only, stepsArg] = Deno.args;
  const gpu = await requestGpu();
  console.error(`adapter: ${gpu.description}`);
  const rows: Row[] = [];
  if (only === undefined) {
    for (const name of FIXTURES) {
      const loaded = await loadModel(
        new URL(`../tests/fixtures/hf/${name}`, import.meta.url).pathname,
      );
      rows.push(
        await bench(name, loaded.family.name, loaded.config, loaded.weights, {
          batch: 4,
          seq: 32,
          steps: 10,
        }),
      );
    }
  } else {
    const json = SHAPES[only];
    if (json === undefined) {
      throw new Error(`unknown shape ${only} (${Object.keys(SHAPES).join(", ")})`);
    }
    const family = getFamily(String(json.model_type));
    const config = family.configFromJson(json, only);
    rows.push(
      await bench(only, family.name, config, undefined, {
        batch: 1,
        seq: 64,
        steps: Number(stepsArg ?? 3),
      }),
    );
  }
  console.log(
    "| model | params | trainable (VeRA r=256) | batch × seq | first step ms | step ms | tokens/s |",
  );
  console.log("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
  for (const r of rows) {
    console.log(
      `| ${r.model} | ${(r.params / 1e6).toFixed(2)}M | ${r.trainable.toLocaleString("en-US")} | ` +
        `${r.batch} × ${r.seq} | ${r.firstStepMs.toFixed(0)} | ${r.stepMs.toFixed(1)} | ${
          r.tokensPerS.toFixed(0)
        } |`,
    );
  }
}
