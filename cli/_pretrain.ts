/** The `pretrain` command. */
import { dirname } from "node:path";
import type { Graph } from "../compiler/ir.ts";
import { type GptConfig, gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { lmBatches } from "../data/batches.ts";
import { vocabSize } from "../data/tokenizer.ts";
import { adamw, trainStep } from "../train/optim.ts";
import { saveBaseModel } from "../train/checkpoint.ts";
import { lmTexts } from "../data/datasets.ts";
import { lmEvalBatches, sourceOf, train } from "../train/trainer.ts";
import { checkNameLength, checkOutput } from "./_outputs.ts";
import { lockOutputFile } from "../train/run_dir.ts";
import {
  type FlagSpec,
  humanOutput,
  intFlag,
  noPositionals,
  numberFlag,
  parseFlags,
  required,
  UsageError,
} from "./_args.ts";
import {
  backendOf,
  checkConfigMemory,
  checkRunMemory,
  COMMON_FLAGS,
  dataFlag,
  flag,
  int,
  schedule,
  type TrainCommandOptions,
} from "./_train_common.ts";

/**
 * The flags of `pretrain`.
 *
 * @example
 * ```ts
 * import { flagHelp } from "./_args.ts";
 * import { PRETRAIN_FLAGS } from "./_train.ts";
 * console.log(flagHelp(PRETRAIN_FLAGS));
 * ```
 */
export const PRETRAIN_FLAGS: Record<string, FlagSpec> = {
  data: flag("spam | names"),
  out: flag("base model safetensors file to write"),
  layers: flag("transformer blocks", "2"),
  "d-model": flag("model width", "64"),
  heads: flag("attention heads", "4"),
  seq: flag("sequence length (the model's maxSeqLen)", "64"),
  steps: flag("training steps", "500"),
  lr: flag("peak learning rate (warm-up, cosine decay)", "0.003"),
  "eval-batches": flag("validation batches per evaluation", "8"),
  force: { type: "boolean", help: "replace an existing --out" },
  ...COMMON_FLAGS,
};

/**
 * `pretrain`: train the reference GPT as a byte-level language model and write its weights.
 *
 * @example
 * ```ts
 * import { pretrainCommand } from "./_train.ts";
 * const out = `${await Deno.makeTempDir()}/base.safetensors`;
 * await pretrainCommand(["--data", "names", "--out", out, "--layers", "1", "--d-model", "8", "--heads", "2", "--seq", "8", "--steps", "2", "--batch", "2", "--eval-batches", "1"], { progress: "none" });
 * ```
 */
export async function pretrainCommand(
  args: readonly string[],
  options: TrainCommandOptions = {},
): Promise<void> {
  const { values, positionals } = parseFlags("pretrain", args, PRETRAIN_FLAGS);
  noPositionals("pretrain", positionals);
  const data = dataFlag(values, "pretrain");
  const out = required(values, "out", "pretrain");
  const [steps, batch, seq] = [int(values, "steps"), int(values, "batch"), int(values, "seq")];
  const seed = intFlag(values, "seed", 0)!;
  const lr = numberFlag(values, "lr", { min: 0, minExclusive: true })!;
  const runner = backendOf(values, options);
  const config: GptConfig = {
    vocabSize,
    maxSeqLen: seq,
    dModel: int(values, "d-model"),
    heads: int(values, "heads"),
    layers: int(values, "layers"),
    head: "lm",
  };
  // Before the graph is traced (its node count grows with --layers): a size that cannot fit in
  // memory is refused from the config alone.
  checkConfigMemory("pretrain", config, batch, seq);
  let model: Graph;
  try {
    model = gptGraph(config, { batch, seqLen: seq });
  } catch (e) {
    throw new UsageError(`pretrain: ${(e as Error).message}`);
  }
  await checkRunMemory("pretrain", model, values, "lower --d-model, --layers, --batch or --seq");
  const texts = lmTexts(data);
  const evalBatches = int(values, "eval-batches");
  checkNameLength("pretrain", out);
  // Locked before the existence check, so a second pretrain of the same --out is refused as such.
  const lock = await lockOutputFile(out, "pretrain").catch((e: Error) => {
    throw new UsageError(e.message);
  });
  try {
    await checkOutput("pretrain", out, {}, !!values.force);
    await run();
  } finally {
    lock.release();
  }

  async function run() {
    const result = await train({
      step: trainStep(model, { optimizer: adamw(), clipNorm: 1 }),
      params: initParams(model, { seed }),
      data: () => sourceOf(lmBatches(texts.train, { batchSize: batch, seqLen: seq, seed })),
      steps,
      lr: schedule(lr, steps),
      logEvery: int(values, "log-every"),
      evalEvery: intFlag(values, "eval-every"),
      eval: {
        graph: model,
        batches: () =>
          lmEvalBatches(texts.validation, { batchSize: batch, seqLen: seq, limit: evalBatches }),
      },
      seed,
      runner,
      progress: options.progress,
    });
    await Deno.mkdir(dirname(out), { recursive: true });
    await saveBaseModel(out, config, model, { ...initParams(model, { seed }), ...result.params });
    const count = model.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    humanOutput(values)(
      `pretrained a ${config.layers}-layer GPT (d=${config.dModel}, ${
        count.toLocaleString("en-US")
      } ` +
        `params) on ${data} for ${steps} steps: loss ${result.loss.toFixed(4)}, validation loss ` +
        `${result.eval?.loss.toFixed(4)} → ${out}`,
    );
    if (values.json) {
      console.log(JSON.stringify({
        out,
        config,
        params: count,
        loss: result.loss,
        validation_loss: result.eval?.loss ?? null,
        step_ms: result.stepMs,
        tokens_per_s: result.tokensPerS,
      }));
    }
  }
}
