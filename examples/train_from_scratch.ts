/**
 * Train a tiny GPT from scratch on first names (a character-level language
 * model), on the GPU through WebGPU, then sample a few new names.
 *
 *   deno run -A examples/train_from_scratch.ts
 */
import { gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { adamw, hyperparameterFeeds, initOptimizerState, trainStep } from "../train/optim.ts";
import { webgpuRunner } from "../train/gpu_runner.ts";
import { warmupCosine } from "../train/schedule.ts";
import { loadNames } from "../data/names.ts";
import { lmBatches, mulberry32 } from "../data/batches.ts";
import { BOS, decode, EOS, PAD, vocabSize } from "../data/tokenizer.ts";

const config = { vocabSize, maxSeqLen: 16, dModel: 32, heads: 4, layers: 2, head: "lm" as const };
const [batch, steps] = [32, 300];

// 1. Trace the model and turn it into one training step: forward, backward, AdamW.
const model = gptGraph(config, { batch, seqLen: config.maxSeqLen });
const step = trainStep(model, { optimizer: adamw({ weightDecay: 0.01 }), clipNorm: 1 });
const params = { ...initParams(model, { seed: 0 }), ...initOptimizerState(step) };

// 2. Compile it for the GPU; params and optimizer state stay there between steps.
const runner = await webgpuRunner(step);
await runner.setParams(params);
const lr = warmupCosine({ peak: 3e-3, warmupSteps: 20, totalSteps: steps });
const data = lmBatches(loadNames().train, { batchSize: batch, seqLen: config.maxSeqLen, seed: 0 });
for (let t = 1; t <= steps; t++) {
  const { tokens, targets } = data.next().value!;
  const feeds = { tokens, targets, ...hyperparameterFeeds(step, { step: t, lr: lr(t) }) };
  // Read the loss back only now and then: each readback waits for the GPU.
  const read = t % 50 === 0 || t === 1 ? ["loss"] : [];
  const out = await runner.run(feeds, { read });
  if (read.length) console.log(`step ${t}: loss ${out.loss[0].toFixed(3)}`);
}

// 3. Sample: feed the prefix, take the last position's logits, draw the next byte.
const trained = await runner.readParams(model.params.map((p) => p.name!));
runner.dispose();
const sampler = await webgpuRunner(gptGraph(config, { batch: 1, seqLen: config.maxSeqLen }));
await sampler.setParams(trained);
const random = mulberry32(7);
for (let n = 0; n < 5; n++) {
  const ids = [BOS];
  while (ids.length < config.maxSeqLen) {
    const tokens = new Int32Array(config.maxSeqLen).fill(PAD);
    tokens.set(ids);
    const { logits } = await sampler.run(
      { tokens, targets: new Int32Array(config.maxSeqLen).fill(-1) },
      { read: ["logits"] },
    );
    const row = logits.subarray((ids.length - 1) * vocabSize, ids.length * vocabSize);
    const max = Math.max(...row);
    // Never sample padding, BOS or CLS; EOS ends the name.
    const weights = Array.from(row, (v, id) => (id >= 256 && id !== EOS ? 0 : Math.exp(v - max)));
    let u = random() * weights.reduce((a, b) => a + b, 0);
    const next = weights.findIndex((w) => (u -= w) <= 0);
    if (next === EOS) break;
    ids.push(next);
  }
  console.log(`sample: ${decode(Int32Array.from(ids))}`);
}
sampler.dispose();
