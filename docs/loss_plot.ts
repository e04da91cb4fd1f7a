/**
 * Makes docs/loss_plot.svg (and, with rsvg-convert installed, docs/loss_plot.png): a short
 * VeRA fine-tune of the committed base model on spam-assassin, with an evaluation before
 * training (step 0) and every 20 steps, drawn by the trainer's plot.
 *
 *   deno run -A docs/loss_plot.ts
 */
import {
  classifierEvalBatches,
  fit,
  gptGraph,
  loadBaseModel,
  type MetricsRecord,
  vera,
  warmupCosine,
  webgpuRunnerFactory,
} from "../mod.ts";
import { classificationBatches, classificationTask } from "../data/mod.ts";
import { evaluateModel } from "../train/trainer.ts";
import { lossPlotSvg } from "../train/_plot.ts";
import { initParams } from "../nn/init.ts";

const here = (p: string) => new URL(p, import.meta.url).pathname;
const base = await loadBaseModel(here("../models/gpt-spam-2L-d64-t128.safetensors"));
const [batch, seqLen, steps] = [8, 64, 160];
const spam = classificationTask("spam");
const model = gptGraph({ ...base.config, head: "classifier", numClasses: 2 }, { batch, seqLen });
const adapted = vera(model, {
  r: 64,
  targetModules: ["q_proj", "v_proj"],
  modulesToSave: ["classifier"],
});
const evalBatches = () =>
  classifierEvalBatches(spam.validation, { batchSize: batch, seqLen, limit: 96 });

// Step 0: the adapted model before training (the new head is random).
const initial = { ...initParams(adapted.graph, { seed: 0 }) };
for (const [name, value] of Object.entries(base.weights)) {
  if (name in initial) initial[name] = value;
}
const runner = await webgpuRunnerFactory(adapted.graph);
await runner.setParams(initial);
const before = await evaluateModel(runner, evalBatches());
runner.dispose();

const { history } = await fit({
  model,
  adapter: () => adapted,
  params: initial,
  data: () => classificationBatches(spam.train, { batchSize: batch, seqLen, seed: 0, epochs: 1 }),
  steps,
  schedule: warmupCosine({ peak: 1e-2, warmupSteps: 15, totalSteps: steps }),
  step: { clipNorm: 1 },
  eval: { batches: evalBatches, every: 20 },
  backend: "webgpu",
  logEvery: 2,
  progress: "lines",
});
const step0 = {
  step: 0,
  loss: NaN,
  lr: 0,
  grad_norm: NaN,
  tokens_per_s: 0,
  eval_loss: before.loss,
  eval_accuracy: before.accuracy!,
} as MetricsRecord;
const svg = await lossPlotSvg([step0, ...history]);
await Deno.writeTextFile(here("loss_plot.svg"), svg);
const png = await new Deno.Command("rsvg-convert", {
  args: ["-z", "1.5", "-o", here("loss_plot.png"), here("loss_plot.svg")],
}).output().catch(() => undefined);
console.log(
  png?.success ? "wrote docs/loss_plot.svg and docs/loss_plot.png" : "wrote docs/loss_plot.svg",
);
