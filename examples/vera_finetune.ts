/**
 * Fine-tune the committed pretrained GPT as a spam classifier with VeRA,
 * using the library's `fit` (the `finetune` command does the same with more
 * options): the classifier graph, a VeRA adapter on q_proj and v_proj, the
 * lambdas and the head trained on the GPU, and a PEFT adapter exported.
 *
 *   deno run -A examples/vera_finetune.ts
 */
import {
  classifierEvalBatches,
  exportPeft,
  fit,
  formatSummary,
  gptGraph,
  loadBaseModel,
  summary,
} from "../mod.ts";
// The data sets are a separate entry point (`@wgrad/wgrad/data`): several megabytes from npm.
import { classificationBatches, classificationTask } from "../data/mod.ts";

const base = await loadBaseModel(
  new URL("../models/gpt-spam-2L-d64-t128.safetensors", import.meta.url).pathname,
);
const [batch, seqLen] = [16, base.config.maxSeqLen];
const spam = classificationTask("spam");

// The base model with a new two-class head; `fit` applies the VeRA rewrite
// (base weights frozen, one lambda_d [r] and lambda_b [out] per targeted layer).
const model = gptGraph({ ...base.config, head: "classifier", numClasses: 2 }, { batch, seqLen });
const { graph, adapter, params, eval: metrics } = await fit({
  model,
  adapter: { vera: { r: 256, targetModules: ["q_proj", "v_proj"], modulesToSave: ["classifier"] } },
  params: base.weights,
  data: () => classificationBatches(spam.train, { batchSize: batch, seqLen, seed: 0, epochs: 1 }),
  steps: 60,
  schedule: { default: () => 1e-2, head: () => 3e-3 }, // the head trains at its own rate
  step: { groups: [{ name: "head", match: ["classifier"] }], clipNorm: 1 },
  eval: {
    batches: () => classifierEvalBatches(spam.validation, { batchSize: batch, seqLen, limit: 256 }),
  },
  backend: "webgpu",
  logEvery: 10,
  progress: "auto",
});
console.log(formatSummary(summary(adapter!, graph)));
console.log(`validation accuracy after 60 steps: ${(100 * metrics!.accuracy!).toFixed(1)}%`);

const dir = await Deno.makeTempDir();
await exportPeft(`${dir}/adapter`, adapter!, params, { graph });
console.log(`PEFT adapter written to ${dir}/adapter (load it with PeftModel.from_pretrained)`);
