/** The `pretrain` command. */
import { dirname } from "node:path";
import type { Graph } from "../compiler/ir.ts";
import { type GptConfig, gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { vocabSize } from "../data/tokenizer.ts";
import { trainStep } from "../train/optim.ts";
import { saveBaseModel } from "../train/checkpoint.ts";
import { lmTexts } from "../data/datasets.ts";
import { lmEvalBatches, train, TrainInterrupted } from "../train/trainer.ts";
import { LmBatcher } from "../data/batches.ts";
import type { BatchState } from "../data/batches.ts";
import { type Json, loadCheckpoint, type LoadedCheckpoint } from "../train/checkpoint.ts";
import { checkNameLength, checkOutput } from "./_outputs.ts";
import { lockOutputFile, openRunDir } from "../train/run_dir.ts";
import { resumeCommand, RunStopped } from "./_interrupt.ts";
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
  extendedResume,
  flag,
  int,
  schedule,
  snakeCaseKeys,
  type TrainCommandOptions,
  trainingOptions,
} from "./_train_common.ts";

/**
 * The flags of `pretrain`.
 *
 * @example
 * ```ts
 * import { flagHelp } from "./_args.ts";
 * import { PRETRAIN_FLAGS } from "./train.ts";
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
  "run-dir": flag(
    "where metrics.jsonl, loss.svg and the checkpoint go (default: --out without .safetensors, plus -run)",
  ),
  "save-every": flag("write the checkpoint every N steps (default --eval-every, else 100)"),
  resume: {
    type: "boolean",
    help: "continue the run in --run-dir from its checkpoint (a larger --steps extends it)",
  },
  force: { type: "boolean", help: "replace an existing --out and start --run-dir over" },
  ...COMMON_FLAGS,
};

/**
 * `pretrain`: train the reference GPT as a byte-level language model and write its weights.
 *
 * @example
 * ```ts
 * import { pretrainCommand } from "./train.ts";
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
  const { optimizer, clipNorm, dropout } = trainingOptions(values);
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
  // Trained with dropout, if any; evaluated and saved without.
  let model: Graph, trainGraph: Graph;
  try {
    model = gptGraph(config, { batch, seqLen: seq });
    trainGraph = dropout > 0 ? gptGraph({ ...config, dropout }, { batch, seqLen: seq }) : model;
  } catch (e) {
    throw new UsageError(`pretrain: ${(e as Error).message}`);
  }
  await checkRunMemory(
    "pretrain",
    trainGraph,
    values,
    "lower --d-model, --layers, --batch or --seq",
  );
  const texts = lmTexts(data);
  const evalBatches = int(values, "eval-batches");
  checkNameLength("pretrain", out);
  const runDirPath = typeof values["run-dir"] === "string"
    ? values["run-dir"]
    : `${out.replace(/\.safetensors$/, "")}-run`;
  // Locked before the existence check, so a second pretrain of the same --out is refused as such.
  const lock = await lockOutputFile(out, "pretrain").catch((e: Error) => {
    throw new UsageError(e.message);
  });
  try {
    await checkOutput("pretrain", out, {}, !!values.force);
    const runDir = await openRunDir(runDirPath, "pretrain", {
      resume: !!values.resume,
      force: !!values.force,
    }).catch((e: Error) => {
      throw new UsageError(e.message.replaceAll("--out", "--run-dir"));
    });
    try {
      await run(runDir.hasCheckpoint);
    } finally {
      runDir.release();
    }
  } finally {
    lock.release();
  }

  async function run(hasCheckpoint: boolean) {
    const checkpointPath = `${runDirPath}/checkpoint.safetensors`;
    let resume: LoadedCheckpoint | undefined, resumeNote: Record<string, number> | undefined;
    if (hasCheckpoint) {
      ({ resume, resumeNote } = extendedResume(
        await loadCheckpoint(checkpointPath),
        steps,
        checkpointPath,
      ));
    }
    // The run's settings, kept in the checkpoint: a resumed run must have the same ones.
    const runConfig: Json = {
      data,
      config: { ...config },
      steps,
      batch,
      seq,
      seed,
      lr,
      dropout,
      optimizer: String(values.optimizer),
      weight_decay: numberFlag(values, "weight-decay") ?? null,
      warmup: numberFlag(values, "warmup")!,
      clip_norm: clipNorm ?? 0,
    };
    const batchOptions = { batchSize: batch, seqLen: seq, seed };
    const evalEvery = intFlag(values, "eval-every");
    const result = await train({
      step: trainStep(trainGraph, { optimizer, ...(clipNorm ? { clipNorm } : {}) }),
      params: initParams(model, { seed }),
      data: (state) => {
        const it = state === undefined
          ? new LmBatcher(texts.train, batchOptions)
          : LmBatcher.fromState(texts.train, batchOptions, state as BatchState);
        return {
          next: () => {
            const r = it.next();
            return r.done ? undefined : { tokens: r.value.tokens, targets: r.value.targets };
          },
          get state() {
            return it.state;
          },
        };
      },
      steps,
      lr: schedule(lr, steps, values),
      logEvery: int(values, "log-every"),
      evalEvery,
      eval: {
        graph: model,
        batches: () =>
          lmEvalBatches(texts.validation, { batchSize: batch, seqLen: seq, limit: evalBatches }),
      },
      evalAtStart: true,
      outDir: runDirPath,
      checkpoint: {
        path: checkpointPath,
        every: intFlag(values, "save-every") ?? evalEvery ?? 100,
        config: runConfig,
      },
      resume,
      resumeNote,
      stopOnInterrupt: true,
      seed,
      runner,
      progress: options.progress,
    }).catch((e) => {
      if (!(e instanceof TrainInterrupted)) throw e;
      throw new RunStopped(e.message, resumeCommand("pretrain", args));
    });
    await Deno.mkdir(dirname(out), { recursive: true });
    await saveBaseModel(out, config, model, { ...initParams(model, { seed }), ...result.params });
    await Deno.remove(checkpointPath).catch(() => {}); // the model file now holds the weights
    const count = model.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    humanOutput(values)(
      `pretrained a ${config.layers}-layer GPT (d=${config.dModel}, ${
        count.toLocaleString("en-US")
      } ` +
        `params) on ${data} for ${steps} steps: loss ${result.loss.toFixed(4)}, validation loss ` +
        `${result.eval?.loss.toFixed(4)} → ${out} (metrics and loss plot in ${runDirPath})`,
    );
    if (values.json) {
      console.log(JSON.stringify({
        out,
        run_dir: runDirPath,
        config: snakeCaseKeys({ ...config }),
        params: count,
        loss: result.loss,
        validation_loss: result.eval?.loss ?? null,
        step_ms: result.stepMs,
        tokens_per_s: result.tokensPerS,
      }));
    }
  }
}
