/**
 * Fine-tune the committed pretrained GPT as a spam classifier with VeRA using
 * `fit` (the `finetune` command does the same with more options), then export
 * a PEFT adapter.
 *
 *   deno run -A examples/vera_finetune.ts [steps]
 */
import { classifierEvalBatches, exportPeft, fit, gptGraph, loadBaseModel } from "../mod.ts";
import { classificationBatches, classificationTask } from "../data/mod.ts";

const steps = Number(Deno.args[0] ?? 60);
const base = await loadBaseModel(
  new URL("../models/gpt-spam-2L-d64-t128.safetensors", import.meta.url).pathname,
);
const shape = { batchSize: 16, seqLen: base.config.maxSeqLen };
const spam = classificationTask("spam");

// The base with a new two-class head; fit applies VeRA (base frozen, lambda_d and lambda_b train).
const config = { ...base.config, head: "classifier" as const, numClasses: 2 };
const { graph, adapter, params, history } = await fit({
  model: gptGraph(config, { batch: shape.batchSize, seqLen: shape.seqLen }),
  adapter: { vera: { r: 256, targetModules: ["q_proj", "v_proj"], modulesToSave: ["classifier"] } },
  params: base.weights,
  data: () => classificationBatches(spam.train, { ...shape, seed: 0 }),
  steps,
  schedule: 1e-2,
  eval: { batches: () => classifierEvalBatches(spam.validation, { ...shape, limit: 128 }) },
  backend: "webgpu",
  progress: "auto",
});
const [before, after] = [history[0], history.at(-1)!].map((r) =>
  (100 * r.eval_accuracy!).toFixed(1)
);
console.log(`validation accuracy: ${before}% before, ${after}% after ${steps} steps`);
const dir = await Deno.makeTempDir();
await exportPeft(`${dir}/adapter`, adapter!, params, { graph });
console.log(`PEFT adapter written to ${dir}/adapter (PeftModel.from_pretrained loads it)`);
