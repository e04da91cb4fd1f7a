/** The `pretrain` command. */
import { dirname } from "node:path";
import type { Graph } from "../compiler/ir.ts";
import { type GptConfig, gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { vocabSize } from "../data/tokenizer.ts";
import { trainStep } from "../train/optim.ts";
import { saveBaseModel } from "../train/checkpoint.ts";
import { lmTexts } from "../data/datasets.ts";
import { lmEvalBatches, train, TrainInterrupted, type TrainResult } from "../train/trainer.ts";
import type { RunnerFactory } from "../train/runner.ts";
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
 * import { ok } from "node:assert/strict";
 * import { flagHelp } from "./_args.ts";
 * import { PRETRAIN_FLAGS } from "./train.ts";
 * ok(flagHelp(PRETRAIN_FLAGS).includes("--d-model"));
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

type FlagValues = Record<string, unknown>;

/** The flags `pretrain` checks first, in the order their usage errors are reported. */
function pretrainSettings(values: FlagValues) {
  const data = dataFlag(values, "pretrain");
  const out = required(values, "out", "pretrain");
  const [steps, batch, seq] = [int(values, "steps"), int(values, "batch"), int(values, "seq")];
  const seed = intFlag(values, "seed", 0)!;
  const lr = numberFlag(values, "lr", { min: 0, minExclusive: true })!;
  const { optimizer, clipNorm, dropout } = trainingOptions(values);
  return { data, out, steps, batch, seq, seed, lr, optimizer, clipNorm, dropout };
}

type PretrainSettings = ReturnType<typeof pretrainSettings>;

/**
 * The model evaluated and saved, and the one trained (the same graph unless `--dropout`), refused
 * from the config alone, before tracing (its node count grows with --layers), when it cannot fit.
 */
async function pretrainGraphs(values: FlagValues, settings: PretrainSettings) {
  const { batch, seq, dropout } = settings;
  const config: GptConfig = {
    vocabSize,
    maxSeqLen: seq,
    dModel: int(values, "d-model"),
    heads: int(values, "heads"),
    layers: int(values, "layers"),
    head: "lm",
  };
  checkConfigMemory("pretrain", config, batch, seq);
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
  return { config, model, trainGraph };
}

/** A pretrain run once its settings are checked and its graphs built. */
interface PretrainRun {
  readonly args: readonly string[];
  readonly values: FlagValues;
  readonly options: TrainCommandOptions;
  readonly settings: PretrainSettings;
  readonly graphs: Awaited<ReturnType<typeof pretrainGraphs>>;
  readonly runner: RunnerFactory;
  readonly texts: ReturnType<typeof lmTexts>;
  readonly evalBatches: number;
  /** Where metrics.jsonl, loss.svg and the checkpoint go. */
  readonly runDirPath: string;
}

/**
 * Runs `body` holding the locks of `--out` and `--run-dir`. `--out` is locked before the existence
 * check, so a second pretrain of the same --out is refused as such.
 */
async function withPretrainLocks(
  run: PretrainRun,
  body: (hasCheckpoint: boolean) => Promise<void>,
): Promise<void> {
  const { out } = run.settings;
  const force = !!run.values.force;
  const lock = await lockOutputFile(out, "pretrain").catch((e: Error) => {
    throw new UsageError(e.message);
  });
  try {
    await checkOutput("pretrain", out, {}, force);
    const runDir = await openRunDir(run.runDirPath, "pretrain", {
      resume: !!run.values.resume,
      force,
    }).catch((e: Error) => {
      throw new UsageError(e.message.replaceAll("--out", "--run-dir"));
    });
    try {
      await body(runDir.hasCheckpoint);
    } finally {
      runDir.release();
    }
  } finally {
    lock.release();
  }
}

/** The run's settings, kept in the checkpoint: a resumed run must have the same ones. */
function pretrainRunConfig(run: PretrainRun): Json {
  const { settings, values } = run;
  return {
    data: settings.data,
    config: { ...run.graphs.config },
    steps: settings.steps,
    batch: settings.batch,
    seq: settings.seq,
    seed: settings.seed,
    lr: settings.lr,
    dropout: settings.dropout,
    optimizer: String(values.optimizer),
    weight_decay: numberFlag(values, "weight-decay") ?? null,
    warmup: numberFlag(values, "warmup")!,
    clip_norm: settings.clipNorm ?? 0,
  };
}

/** Trains the language model on the training texts, resuming from `resumed` if given. */
function trainPretrain(
  run: PretrainRun,
  checkpointPath: string,
  resumed: { resume?: LoadedCheckpoint; resumeNote?: Record<string, number> },
): Promise<TrainResult> {
  const { settings, values, graphs, texts } = run;
  const { steps, batch, seq, seed, optimizer, clipNorm } = settings;
  const batchOptions = { batchSize: batch, seqLen: seq, seed };
  const evalEvery = intFlag(values, "eval-every");
  return train({
    step: trainStep(graphs.trainGraph, { optimizer, ...(clipNorm ? { clipNorm } : {}) }),
    params: initParams(graphs.model, { seed }),
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
    lr: schedule(settings.lr, steps, values),
    logEvery: int(values, "log-every"),
    evalEvery,
    eval: {
      graph: graphs.model,
      batches: () =>
        lmEvalBatches(texts.validation, { batchSize: batch, seqLen: seq, limit: run.evalBatches }),
    },
    evalAtStart: true,
    outDir: run.runDirPath,
    checkpoint: {
      path: checkpointPath,
      every: intFlag(values, "save-every") ?? evalEvery ?? 100,
      config: pretrainRunConfig(run),
    },
    resume: resumed.resume,
    resumeNote: resumed.resumeNote,
    stopOnInterrupt: true,
    seed,
    runner: run.runner,
    progress: run.options.progress,
  }).catch((e) => {
    if (!(e instanceof TrainInterrupted)) throw e;
    throw new RunStopped(e.message, resumeCommand("pretrain", run.args));
  });
}

/** Prints what was trained and where it went: a line, or with `--json` a JSON object. */
function reportPretrain(run: PretrainRun, result: TrainResult): void {
  const { values, runDirPath } = run;
  const { data, steps, out } = run.settings;
  const { config, model } = run.graphs;
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

/** Trains (resuming from the run directory's checkpoint, if any), saves the model and reports. */
async function runPretrain(run: PretrainRun, hasCheckpoint: boolean): Promise<void> {
  const { out, steps, seed } = run.settings;
  const { config, model } = run.graphs;
  const checkpointPath = `${run.runDirPath}/checkpoint.safetensors`;
  const resumed = hasCheckpoint
    ? extendedResume(await loadCheckpoint(checkpointPath), steps, checkpointPath)
    : {};
  const result = await trainPretrain(run, checkpointPath, resumed);
  await Deno.mkdir(dirname(out), { recursive: true });
  await saveBaseModel(out, config, model, { ...initParams(model, { seed }), ...result.params });
  await Deno.remove(checkpointPath).catch(() => {}); // the model file now holds the weights
  reportPretrain(run, result);
}

/**
 * `pretrain`: train the reference GPT as a byte-level language model and write its weights.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { pretrainCommand } from "./train.ts";
 * const out = `${await Deno.makeTempDir()}/base.safetensors`;
 * await pretrainCommand(["--data", "names", "--out", out, "--layers", "1", "--d-model", "8", "--heads", "2", "--seq", "8", "--steps", "2", "--batch", "2", "--eval-batches", "1"], { progress: "none" });
 * ok((await Deno.stat(out)).size > 0);
 * ```
 */
export async function pretrainCommand(
  args: readonly string[],
  options: TrainCommandOptions = {},
): Promise<void> {
  const { values, positionals } = parseFlags("pretrain", args, PRETRAIN_FLAGS);
  noPositionals("pretrain", positionals);
  const settings = pretrainSettings(values);
  const runner = backendOf(values, options);
  const graphs = await pretrainGraphs(values, settings);
  const texts = lmTexts(settings.data);
  const evalBatches = int(values, "eval-batches");
  checkNameLength("pretrain", settings.out);
  const runDirPath = typeof values["run-dir"] === "string"
    ? values["run-dir"]
    : `${settings.out.replace(/\.safetensors$/, "")}-run`;
  const run: PretrainRun = {
    args,
    values,
    options,
    settings,
    graphs,
    runner,
    texts,
    evalBatches,
    runDirPath,
  };
  await withPretrainLocks(run, (hasCheckpoint) => runPretrain(run, hasCheckpoint));
}
