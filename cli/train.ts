/** The `finetune` command (and, re-exported, `pretrain`). */
import type { BatchState } from "../data/batches.ts";
import { RowBatcher, rowEvalBatches, type TokenRow } from "../data/token_rows.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { LoadedModel } from "../nn/families.ts";
import { trainStep } from "../train/optim.ts";
import type { EvalBatch } from "../train/evaluation.ts";
import { scoreRows } from "./_scoring.ts";
import { type Json, loadCheckpoint, type LoadedCheckpoint } from "../train/checkpoint.ts";
import type { RunnerFactory, StepRunner } from "../train/runner.ts";
import { openRunDir } from "../train/run_dir.ts";
import { checkNameLength, checkRunInputs } from "./_outputs.ts";
import { evaluateModel, train, TrainInterrupted, type TrainResult } from "../train/trainer.ts";
import { resumeCommand, RunStopped } from "./_interrupt.ts";
import { humanOutput, intFlag, noPositionals, parseFlags, UsageError } from "./_args.ts";
import {
  backendOf,
  checkRunMemory,
  extendedResume,
  int,
  schedule,
  type TrainCommandOptions,
  trainingOptions,
} from "./_train_common.ts";
import {
  checkSeq,
  initialParams,
  loadBase,
  loadTaskData,
  type TaskData,
  taskGraph,
} from "./_task.ts";
import { applyMethod, writeAdapter } from "./_finetune_adapter.ts";
import {
  FINETUNE_FLAGS,
  finetuneRunConfig,
  type FinetuneSettings,
  finetuneSettings,
} from "./_finetune_settings.ts";
import {
  finetuneLine,
  finetuneSummary,
  sample,
  type SplitMetrics,
  testMetricsJson,
} from "./_finetune_summary.ts";

export { FINETUNE_FLAGS } from "./_finetune_settings.ts";
export { PRETRAIN_FLAGS, pretrainCommand } from "./pretrain.ts";
export type { TrainCommandOptions } from "./_train_common.ts";

type FlagValues = Record<string, unknown>;

/** The base model and the task's token rows; data that cannot make this run is refused. */
async function loadFinetuneTask(settings: FinetuneSettings, values: FlagValues) {
  const base = await loadBase(settings.basePath);
  const seq = intFlag(values, "seq") ?? base.config.maxSeqLen;
  checkSeq(base, seq);
  const task = await loadTaskData(values, base.tokenizer, seq);
  if (task.rows.train.length === 0) {
    throw new UsageError(`finetune: ${settings.data}: no training examples`);
  }
  if (task.task === "lm" && settings.method === "head") {
    throw new UsageError(
      "finetune: --method head trains a classification head; this data is for --task lm",
    );
  }
  return { base, seq, task };
}

/** Two graphs with the same params: the one trained (with any dropout) and the one measured. */
function finetuneGraphs(
  settings: FinetuneSettings,
  values: FlagValues,
  { base, seq, task }: { base: LoadedModel; seq: number; task: TaskData },
) {
  const { method, seed } = settings;
  const { optimizer, clipNorm, dropout } = trainingOptions(values);
  const shape = { batch: settings.batch, seqLen: seq, numClasses: task.labels?.length };
  const head = base.family.classificationHead;
  const defaults = {
    targets: base.family.defaultTargets,
    modulesToSave: task.labels ? [head] : [],
  };
  const { graph, adapter } = applyMethod(
    taskGraph(base, task.task, { ...shape, dropout }),
    method,
    values,
    seed,
    defaults,
  );
  const evalModel = taskGraph(base, task.task, shape);
  const evalGraph = applyMethod(evalModel, method, values, seed, defaults, false).graph;
  return { graph, evalGraph, adapter, head, optimizer, clipNorm, dropout };
}

/** A finetune run once its inputs are loaded and its graphs built. */
interface FinetuneRun {
  readonly args: readonly string[];
  readonly values: FlagValues;
  readonly options: TrainCommandOptions;
  readonly settings: FinetuneSettings;
  readonly base: LoadedModel;
  readonly seq: number;
  readonly task: TaskData;
  readonly graphs: ReturnType<typeof finetuneGraphs>;
  /** The initial params of the trained graph. */
  readonly params: Record<string, Float32Array>;
  readonly runner: RunnerFactory;
  readonly checkpointPath: string;
  /** The token that pads rows shorter than `seq`. */
  readonly padId: number;
}

/**
 * Locks `--out` (before the checkpoint is looked at, so a second run into it is refused as such),
 * reads the checkpoint to resume and makes the evaluation runner; the lock is given up on failure.
 */
async function openFinetuneRun(run: FinetuneRun) {
  const { out, data, basePath } = run.settings;
  checkNameLength("finetune", out);
  const dataFile = data === "spam" || data === "names" ? undefined : data;
  const baseFile = basePath.startsWith("hf:") ? undefined : basePath;
  await checkRunInputs(out, { "--base": baseFile, "--data": dataFile });
  const runDir = await openRunDir(out, "finetune", {
    resume: !!run.values.resume,
    force: !!run.values.force,
  })
    .catch((e: Error) => {
      throw new UsageError(e.message);
    });
  try {
    const loaded = runDir.hasCheckpoint ? await loadCheckpoint(run.checkpointPath) : undefined;
    const { resume, resumeNote } = extendedResume(loaded, run.settings.steps, run.checkpointPath);
    const evaluator = await run.runner(run.graphs.evalGraph);
    return { runDir, resume, resumeNote, evaluator };
  } catch (e) {
    await runDir.abandon();
    throw e;
  }
}

/** Measures the evaluation graph's params `weights` on the task's validation and test splits. */
function measurements(run: FinetuneRun, evaluator: StepRunner) {
  const { batch, evalLimit } = run.settings;
  const { evalGraph } = run.graphs;
  const rows = run.task.rows;
  const padId = run.padId;
  const evalOn = (split: TokenRow[]) => () =>
    rowEvalBatches(sample(split, evalLimit), { batchSize: batch, seqLen: run.seq, padId });
  // A small file may leave a split empty: it is then not measured.
  const measureOn = (split: TokenRow[]) =>
    split.length === 0 ? Promise.resolve(undefined) : evaluateModel(evaluator, evalOn(split)());
  const setWeights = (weights: Record<string, Float32Array>) =>
    evaluator.setParams(
      Object.fromEntries(evalGraph.params.map((p) => [p.name!, weights[p.name!]])),
    );
  const measure = async (weights: Record<string, Float32Array>): Promise<SplitMetrics> => {
    await setWeights(weights);
    return { validation: await measureOn(rows.validation), test: await measureOn(rows.test) };
  };
  return { evalOn, measureOn, setWeights, measure };
}

/** Trains the graph on the task's training rows, with `checkpoint` config and resume. */
function trainFinetune(
  run: FinetuneRun,
  evalOn: (split: TokenRow[]) => () => Iterable<EvalBatch>,
  runConfig: Json,
  { resume, resumeNote }: { resume?: LoadedCheckpoint; resumeNote?: Record<string, number> },
): Promise<TrainResult> {
  const { settings, values, graphs, task, params } = run;
  const { steps, batch, seed, evalEvery } = settings;
  const batchOptions = { batchSize: batch, seqLen: run.seq, seed, padId: run.padId };
  const { graph, evalGraph, optimizer, clipNorm } = graphs;
  const groups = task.labels ? [{ name: "head", match: [graphs.head] }] : [];
  return train({
    step: trainStep(graph, { optimizer, groups, ...(clipNorm ? { clipNorm } : {}) }),
    params,
    data: (state) => {
      const it = state === undefined
        ? new RowBatcher(task.rows.train, batchOptions)
        : RowBatcher.fromState(task.rows.train, batchOptions, state as BatchState);
      return {
        next: () => it.next().value,
        get state() {
          return it.state;
        },
      };
    },
    steps,
    lr: {
      default: schedule(settings.lr, steps, values),
      head: schedule(settings.headLr, steps, values),
    },
    logEvery: int(values, "log-every"),
    evalEvery,
    eval: task.rows.validation.length > 0
      ? { graph: evalGraph, batches: evalOn(task.rows.validation) }
      : undefined,
    evalAtStart: true,
    stopOnInterrupt: true,
    outDir: settings.out,
    checkpoint: {
      path: run.checkpointPath,
      every: intFlag(values, "save-every") ?? evalEvery ?? 100,
      config: runConfig,
    },
    resume,
    resumeNote,
    seed,
    runner: run.runner,
    progress: run.options.progress,
  }).catch((e) => {
    if (!(e instanceof TrainInterrupted)) throw e;
    throw new RunStopped(e.message, resumeCommand("finetune", run.args));
  });
}

/** Per-class metrics of the trained classifier on the test split (the evaluator holds its weights). */
async function testMetricsOf(run: FinetuneRun, evaluator: StepRunner) {
  const labels = run.task.labels;
  const test = sample(run.task.rows.test, run.settings.evalLimit);
  if (!labels || test.length === 0) return null;
  const scores = await scoreRows(evaluator, run.graphs.evalGraph, test, run.padId);
  const predicted = scores.map((s) => s.probabilities!.indexOf(Math.max(...s.probabilities!)));
  return testMetricsJson(test.map((r) => r.label!), predicted, labels);
}

/**
 * Measures the test split, trains (the validation split is the trainer's step-0 evaluation),
 * measures both splits again and writes the adapter and summary.json.
 */
async function trainAndReport(
  run: FinetuneRun,
  evaluator: StepRunner,
  resumed: { resume?: LoadedCheckpoint; resumeNote?: Record<string, number> },
  runConfig: { [key: string]: Json },
): Promise<void> {
  const { settings, values, task, params } = run;
  const { method, out } = settings;
  const { evalOn, measureOn, setWeights, measure } = measurements(run, evaluator);
  await setWeights(params);
  const testBefore = await measureOn(task.rows.test);
  const result = await trainFinetune(run, evalOn, runConfig, resumed);
  const atStart = result.records.find((r) => r.step === 0);
  const before = {
    validation: atStart?.eval_loss === undefined
      ? undefined
      : { loss: atStart.eval_loss, accuracy: atStart.eval_accuracy },
    test: testBefore,
  };
  const trained = { ...params, ...result.params };
  const after = await measure(trained);
  const testMetrics = await testMetricsOf(run, evaluator);
  const { adapter, graph, evalGraph } = run.graphs;
  const adapterBytes = adapter
    ? await writeAdapter(
      `${out}/adapter`,
      adapter,
      trained,
      evalGraph,
      run.base,
      settings.basePath,
      task.labels,
    )
    : null;
  const summary = finetuneSummary({
    method,
    graph,
    params,
    labels: task.labels,
    before,
    after,
    result,
    testMetrics,
    adapterBytes,
    runConfig,
  });
  await writeFileAtomic(`${out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  humanOutput(values)(finetuneLine({
    method,
    trainableParams: summary.trainable_params,
    classifier: !!task.labels,
    before,
    after,
    result,
    out,
  }));
  if (values.json) console.log(JSON.stringify({ out, ...summary }));
}

/**
 * `finetune`: train a classifier on a base model with VeRA, LoRA, fully or only its head.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { finetuneCommand, pretrainCommand } from "./train.ts";
 * const dir = await Deno.makeTempDir();
 * const tiny = ["--data", "names", "--steps", "2", "--batch", "2"];
 * await pretrainCommand([...tiny, "--out", `${dir}/base.safetensors`, "--layers", "1", "--d-model", "8", "--heads", "2", "--seq", "8", "--eval-batches", "1"], { progress: "none" });
 * await finetuneCommand([...tiny, "--base", `${dir}/base.safetensors`, "--method", "vera", "--r", "4", "--eval-limit", "4", "--out", `${dir}/run`], { progress: "none" });
 * ok((await Deno.stat(`${dir}/run/adapter/adapter_config.json`)).isFile);
 * ```
 */
export async function finetuneCommand(
  args: readonly string[],
  options: TrainCommandOptions = {},
): Promise<void> {
  const { values, positionals } = parseFlags("finetune", args, FINETUNE_FLAGS);
  noPositionals("finetune", positionals);
  const settings = finetuneSettings(values);
  const runner = backendOf(values, options);
  const { base, seq, task } = await loadFinetuneTask(settings, values);
  const graphs = finetuneGraphs(settings, values, { base, seq, task });
  await checkRunMemory("finetune", graphs.graph, values, "lower --r, --batch or --seq");
  const params = initialParams(graphs.graph, base, settings.seed);
  const checkpointPath = `${settings.out}/checkpoint.safetensors`;
  const padId = base.tokenizer.padId ?? base.tokenizer.eosId ?? 0;
  const run: FinetuneRun = {
    args,
    values,
    options,
    settings,
    base,
    seq,
    task,
    graphs,
    params,
    runner,
    checkpointPath,
    padId,
  };
  const { runDir, evaluator, ...resumed } = await openFinetuneRun(run);
  const runConfig = finetuneRunConfig(settings, values, {
    task: task.task,
    labels: task.labels,
    seq,
    dropout: graphs.dropout,
    clipNorm: graphs.clipNorm,
    adapter: graphs.adapter,
  });
  try {
    await trainAndReport(run, evaluator, resumed, runConfig);
  } finally {
    evaluator.dispose();
    runDir.release();
  }
}
