/**
 * Fine-tune the committed pretrained GPT as a spam classifier with VeRA,
 * using the library API directly (the `finetune` command does the same with
 * more options): trace the classifier, rewrite it with `vera`, train the
 * lambdas and the head on the GPU, and export a PEFT adapter.
 *
 *   deno run -A examples/vera_finetune.ts
 */
import { gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { vera } from "../adapters/vera.ts";
import { exportPeft } from "../adapters/peft.ts";
import { formatSummary, summary } from "../adapters/summary.ts";
import { loadBaseModel } from "../train/checkpoint.ts";
import { adamw, initOptimizerState, trainStep } from "../train/optim.ts";
import { constant } from "../train/schedule.ts";
import { train } from "../train/trainer.ts";
import { classificationTask, classifierEvalBatches, sourceOf } from "../train/_eval.ts";
import { webgpuRunnerFactory } from "../train/gpu_runner.ts";
import { classificationBatches } from "../data/batches.ts";

const base = await loadBaseModel(
  new URL("../models/gpt-spam-2L-d64-t128.safetensors", import.meta.url).pathname,
);
const [batch, seqLen] = [16, base.config.maxSeqLen];

// The base model with a new two-class head, then the VeRA rewrite: base
// weights frozen, one lambda_d [r] and lambda_b [out] per targeted layer.
const classifier = gptGraph({ ...base.config, head: "classifier", numClasses: 2 }, {
  batch,
  seqLen,
});
const { graph, adapter } = vera(classifier, {
  r: 256,
  targetModules: ["q_proj", "v_proj"],
  modulesToSave: ["classifier"],
});
console.log(formatSummary(summary(adapter, graph)));

const params = { ...initParams(graph, { seed: 0 }), ...base.weights };
const step = trainStep(graph, {
  optimizer: adamw(),
  groups: [{ name: "head", match: ["classifier"] }], // the head trains at its own rate
  clipNorm: 1,
});
const spam = classificationTask("spam");
const result = await train({
  step,
  params: { ...params, ...initOptimizerState(step) },
  data: () =>
    sourceOf(
      classificationBatches(spam.train, { batchSize: batch, seqLen, seed: 0, epochs: Infinity }),
    ),
  steps: 60,
  lr: { default: constant(1e-2), head: constant(3e-3) },
  logEvery: 10,
  eval: {
    graph,
    batches: () => classifierEvalBatches(spam.validation, { batchSize: batch, seqLen, limit: 256 }),
  },
  evalEvery: 60,
  runner: webgpuRunnerFactory,
});
console.log(`validation accuracy after 60 steps: ${(100 * result.eval!.accuracy!).toFixed(1)}%`);

const dir = await Deno.makeTempDir();
await exportPeft(`${dir}/adapter`, adapter, { ...params, ...result.params }, { graph });
console.log(`PEFT adapter written to ${dir}/adapter (load it with PeftModel.from_pretrained)`);
