// Resume on WebGPU: a run interrupted after its checkpoint and resumed gives
// the same loss sequence as an uninterrupted run (≤ 1e-5), with dropout on.
import { equal, ok, rejects } from "node:assert/strict";
import { type GptConfig, gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { vera } from "../../adapters/vera.ts";
import { ClassificationBatcher, classificationBatches } from "../../data/batches.ts";
import type { BatchState } from "../../data/batches.ts";
import { adamw, trainStep } from "../../train/optim.ts";
import { warmupCosine } from "../../train/schedule.ts";
import type { RunnerFactory } from "../../train/runner.ts";
import { webgpuRunner } from "../../train/executable_runner.ts";
import { loadCheckpoint } from "../../train/checkpoint.ts";
import { sourceOf, train, type TrainOptions } from "../../train/trainer.ts";

const CONFIG: GptConfig = {
  vocabSize: 260,
  maxSeqLen: 8,
  dModel: 8,
  heads: 2,
  layers: 1,
  head: "classifier",
  dropout: 0.1,
};
const EXAMPLES = Array.from(
  { length: 12 },
  (_, i) => ({ text: i % 2 ? `win cash ${i}` : `hi ${i}`, label: i % 2 }),
);
const BATCHING = { batchSize: 4, seqLen: 8, seed: 3, epochs: Infinity, dropLast: true };

Deno.test("train on WebGPU: resume equals the uninterrupted run (≤ 1e-5)", async () => {
  const dir = await Deno.makeTempDir();
  const { graph } = vera(gptGraph(CONFIG, { batch: 4, seqLen: 8 }), {
    r: 4,
    targetModules: ["q_proj", "v_proj"],
    modulesToSave: ["classifier"],
    dropout: 0.1,
  });
  const step = trainStep(graph, {
    optimizer: adamw(),
    groups: [{ name: "head", match: ["classifier"] }],
  });
  const options = (name: string, runner: RunnerFactory): TrainOptions => ({
    step,
    params: initParams(graph, { seed: 2 }),
    data: (state) =>
      sourceOf(
        state === undefined
          ? classificationBatches(EXAMPLES, BATCHING)
          : ClassificationBatcher.fromState(EXAMPLES, BATCHING, state as BatchState),
      ),
    steps: 6,
    lr: { default: warmupCosine({ peak: 2e-2, warmupSteps: 2, totalSteps: 6 }), head: () => 1e-2 },
    logEvery: 1,
    outDir: `${dir}/${name}`,
    checkpoint: { path: `${dir}/${name}/checkpoint.safetensors`, every: 3, config: { run: 1 } },
    seed: 5,
    progress: "none",
    runner,
  });
  const whole = await train(options("whole", webgpuRunner));
  // Crash on the 5th step: the checkpoint of step 3 stays behind.
  let runs = 0;
  const crashing: RunnerFactory = async (g) => {
    const inner = await webgpuRunner(g);
    return {
      ...inner,
      run: (
        inputs,
        o,
      ) => (++runs === 5 ? Promise.reject(new Error("simulated crash")) : inner.run(inputs, o)),
    };
  };
  await rejects(train(options("resumed", crashing)), /simulated crash/);
  const checkpoint = await loadCheckpoint(`${dir}/resumed/checkpoint.safetensors`);
  equal(checkpoint.step, 3);
  const resumed = await train({ ...options("resumed", webgpuRunner), resume: checkpoint });
  const losses = (r: typeof whole) => r.records.map((x) => x.loss!);
  const a = losses(whole), b = losses(resumed);
  // The resumed run's metrics hold steps 1–3 from before the crash and 4–6 from after it.
  equal(b.length, 6);
  equal(resumed.records[3].step, 4);
  for (let i = 0; i < 6; i++) {
    const rel = Math.abs(a[i] - b[i]) / Math.max(1e-6, Math.abs(a[i]));
    ok(rel <= 1e-5, `step ${i + 1}: ${a[i]} vs ${b[i]}`);
  }
  for (const [name, v] of Object.entries(whole.params)) {
    const w = resumed.params[name];
    const worst = v.reduce(
      (m, x, i) => Math.max(m, Math.abs(x - w[i]) / Math.max(1e-3, Math.abs(x))),
      0,
    );
    ok(worst <= 1e-5, `${name}: ${worst}`);
  }
  await Deno.remove(dir, { recursive: true });
});
