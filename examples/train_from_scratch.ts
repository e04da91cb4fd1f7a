/**
 * Train a tiny GPT from scratch on first names (a character-level language
 * model), then sample a few new names.
 *
 *   deno run -A examples/train_from_scratch.ts [steps]
 */
import { fit, generate, gptGraph, loadModel, saveBaseModel, warmupCosine } from "../mod.ts";
import { lmBatches, loadNames, vocabSize } from "../data/mod.ts";

const steps = Number(Deno.args[0] ?? 300);
const config = { vocabSize, maxSeqLen: 16, dModel: 32, heads: 4, layers: 2, head: "lm" as const };
const model = gptGraph(config, { batch: 32, seqLen: config.maxSeqLen });

// fit builds the training step (forward, backward, AdamW) and runs it on the GPU.
const { params } = await fit({
  model,
  data: () => lmBatches(loadNames().train, { batchSize: 32, seqLen: 16, seed: 0 }),
  steps,
  schedule: warmupCosine({ peak: 3e-3, warmupSteps: Math.ceil(steps / 15), totalSteps: steps }),
  backend: "webgpu",
  progress: "auto",
});

// Save it as a base model, load it back with its tokenizer, and sample.
const path = `${await Deno.makeTempDir()}/names.safetensors`;
await saveBaseModel(path, config, model, params);
const trained = await loadModel(path);
for (const seed of [1, 2, 3, 4, 5]) {
  const opts = { prompt: "", maxNewTokens: 12, temperature: 0.8, seed, backend: "cpu" as const };
  console.log(`sample: ${(await generate(trained, opts)).text.trim()}`);
}
