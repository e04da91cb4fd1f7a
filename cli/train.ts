/** The `finetune` command (and, re-exported, `pretrain`). */
import type { Graph } from "../compiler/ir.ts";
import { rewrite } from "../compiler/rewrite.ts";
import { freezeRule, vera } from "../adapters/vera.ts";
import { lora } from "../adapters/lora.ts";
import { peftFiles } from "../adapters/peft.ts";
import type { Adapter } from "../adapters/merge.ts";
import type { BatchState } from "../data/batches.ts";
import { permutation } from "../data/random.ts";
import { RowBatcher, rowEvalBatches, type TokenRow } from "../data/token_rows.ts";
import { writeDirAtomic, writeFileAtomic } from "../io/atomic.ts";
import type { LoadedModel } from "../nn/families.ts";
import { parseHubRef } from "../io/hub.ts";
import { trainStep } from "../train/optim.ts";
import { classificationMetrics } from "../train/metrics_cls.ts";
import { scoreRows } from "./_scoring.ts";
import { type Json, loadCheckpoint, type LoadedCheckpoint } from "../train/checkpoint.ts";
import type { StepRunner } from "../train/runner.ts";
import { openRunDir } from "../train/run_dir.ts";
import { checkNameLength, checkRunInputs } from "./_outputs.ts";
import { evaluateModel, train, TrainInterrupted } from "../train/trainer.ts";
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
  checkRunMemory,
  COMMON_FLAGS,
  extendedResume,
  flag,
  int,
  schedule,
  snakeCaseKeys,
  type TrainCommandOptions,
  trainingOptions,
} from "./_train_common.ts";
import {
  checkSeq,
  DATA_FLAGS,
  initialParams,
  labelMaps,
  loadBase,
  loadTaskData,
  taskGraph,
} from "./_task.ts";

export { PRETRAIN_FLAGS, pretrainCommand } from "./pretrain.ts";
export type { TrainCommandOptions } from "./_train_common.ts";

/**
 * The flags of `finetune`.
 *
 * @example
 * ```ts
 * import { flagHelp } from "./_args.ts";
 * import { FINETUNE_FLAGS } from "./train.ts";
 * console.log(flagHelp(FINETUNE_FLAGS));
 * ```
 */
export const FINETUNE_FLAGS: Record<string, FlagSpec> = {
  base: flag("base model: a file written by pretrain or a Hugging Face directory"),
  data: flag("spam | names | FILE (.jsonl, .csv, .txt)"),
  method: flag("vera | lora | full | head"),
  out: flag("run directory to write (runs/NAME)"),
  r: flag("rank (default 256 for vera, 8 for lora)"),
  targets: flag("adapted modules, comma-separated (default: the model family's)"),
  "target-layers": flag(
    "adapt only these layer indices, comma-separated (PEFT's layers_to_transform)",
  ),
  "layers-pattern": flag(
    "the module name before the layer index, e.g. layers (PEFT's layers_pattern)",
  ),
  "exclude-modules": flag("never adapt these modules, comma-separated (PEFT's exclude_modules)"),
  "d-initial": flag("VeRA: initial lambda_d", "0.1"),
  alpha: flag("LoRA: scaling numerator alpha (default r)"),
  rslora: { type: "boolean", help: "LoRA: scale by alpha/√r instead of alpha/r (rsLoRA)" },
  "rank-pattern": {
    ...flag(`LoRA: ranks by module, as JSON: '{"q_proj": 4}' (PEFT's rank_pattern)`),
    json: true,
  },
  "alpha-pattern": {
    ...flag(`LoRA: alphas by module, as JSON: '{"q_proj": 8}' (PEFT's alpha_pattern)`),
    json: true,
  },
  "adapter-dropout": flag("VeRA/LoRA: dropout on the adapter's input while training", "0"),
  seq: flag("tokens per example (default: the base's maxSeqLen)"),
  steps: flag("training steps", "200"),
  lr: flag("peak learning rate of the adapter (vera 3e-2, lora 1e-2, full 1e-3)"),
  "head-lr": flag("peak learning rate of the classifier head", "0.003"),
  "eval-limit": flag("at most N examples per evaluation split"),
  "save-every": flag("write checkpoint.safetensors every N steps (default 100)"),
  resume: {
    type: "boolean",
    help: "continue the run in --out from its checkpoint (a larger --steps extends it)",
  },
  force: {
    type: "boolean",
    help: "start over in an --out that holds a run or other files (files not the run's are kept)",
  },
  ...DATA_FLAGS,
  ...COMMON_FLAGS,
};

const METHODS = ["vera", "lora", "full", "head"] as const;
type Method = typeof METHODS[number];
// VeRA and LoRA rates picked by validation accuracy on spam (bench/methods_table.ts sweeps, BENCHMARKS.md).
const DEFAULT_LR: Record<Method, number> = { vera: 3e-2, lora: 1e-2, full: 1e-3, head: 3e-3 };

/** A `--rank-pattern`/`--alpha-pattern` value: a JSON object of positive numbers by module key. */
function patternFlag(values: Record<string, unknown>, name: string): Record<string, number> {
  const v = values[name];
  if (v === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(v));
  } catch {
    throw new UsageError(`--${name} must be a JSON object such as '{"q_proj": 4}', got ${v}`);
  }
  const ok = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) &&
    Object.values(parsed).every((n) => typeof n === "number" && Number.isFinite(n) && n > 0);
  if (!ok) {
    throw new UsageError(`--${name} must map module names to positive numbers, got ${v}`);
  }
  return parsed as Record<string, number>;
}

/**
 * The model of a method: the task's graph with the adapter applied or params frozen. The
 * training graph has the adapter's dropout; the evaluation graph (`training` false) has none.
 */
function applyMethod(
  model: Graph,
  method: Method,
  values: Record<string, unknown>,
  seed: number,
  defaults: { targets: readonly string[]; modulesToSave: string[] },
  training = true,
): { graph: Graph; adapter?: Adapter } {
  const targetModules = values.targets === undefined
    ? [...defaults.targets]
    : String(values.targets).split(",").map((t) => t.trim()).filter((t) => t);
  const { modulesToSave } = defaults;
  const list = (name: string) =>
    values[name] === undefined
      ? undefined
      : String(values[name]).split(",").map((t) => t.trim()).filter((t) => t);
  const layers = list("target-layers")?.map((l) => {
    if (!/^\d+$/.test(l)) throw new UsageError(`--target-layers must be layer indices, got "${l}"`);
    return Number(l);
  });
  const excluded = list("exclude-modules");
  const targeting = {
    ...(layers ? { layersToTransform: layers } : {}),
    ...(excluded ? { excludeModules: excluded } : {}),
    ...(values["layers-pattern"] === undefined
      ? {}
      : { layersPattern: String(values["layers-pattern"]) }),
  };
  const dropout = training
    ? numberFlag(values, "adapter-dropout", { min: 0, max: 1, maxExclusive: true })!
    : 0;
  try {
    if (method === "vera") {
      const r = intFlag(values, "r") ?? 256;
      const dInitial = numberFlag(values, "d-initial");
      return vera(model, {
        r,
        targetModules,
        dInitial,
        projectionPrngKey: seed,
        modulesToSave,
        dropout,
        ...targeting,
      });
    }
    if (method === "lora") {
      const r = intFlag(values, "r") ?? 8;
      return lora(model, {
        r,
        alpha: numberFlag(values, "alpha") ?? r,
        targetModules,
        modulesToSave,
        dropout,
        useRslora: !!values.rslora,
        rankPattern: patternFlag(values, "rank-pattern"),
        alphaPattern: patternFlag(values, "alpha-pattern"),
        ...targeting,
      });
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`finetune: ${(e as Error).message}`);
  }
  return { graph: method === "full" ? model : rewrite(model, [freezeRule(modulesToSave)]) };
}

/**
 * The PEFT adapter directory's files for this base: the task type, GPT-2's
 * `fan_in_fan_out` (its Conv1D weights are stored [in, out]), and the class
 * names of a classifier (`id2label`/`label2id`, which PEFT ignores).
 */
function adapterFiles(
  adapter: Adapter,
  params: Record<string, Float32Array>,
  graph: Graph,
  model: LoadedModel,
  basePath: string,
  labels: string[] | undefined,
): Record<string, Uint8Array | string> {
  // A Hub model is named as PEFT names it (ORG/NAME), so from_pretrained can fetch it.
  const baseModel = parseHubRef(basePath)?.repo ?? basePath;
  const files = peftFiles(adapter, params, { graph, baseModel });
  const config = JSON.parse(files["adapter_config.json"] as string);
  const targets = adapter.targets.map((t) => t.weight);
  config.fan_in_fan_out = targets.some((w) => model.family.storedLayout(w).transposed);
  config.task_type = model.source.kind === "hf-dir"
    ? (labels ? "SEQ_CLS" : "CAUSAL_LM")
    : config.task_type;
  if (labels) Object.assign(config, labelMaps(labels));
  const sorted = Object.fromEntries(Object.keys(config).sort().map((k) => [k, config[k]]));
  return { ...files, "adapter_config.json": JSON.stringify(sorted, null, 2) + "\n" };
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    total += e.isFile ? (await Deno.stat(`${dir}/${e.name}`)).size : 0;
  }
  return total;
}

const percent = (v: number | undefined) => v === undefined ? "?" : `${(100 * v).toFixed(1)}%`;

/** A fixed random sample of at most `limit` rows (the splits may be sorted or grouped). */
function sample(rows: TokenRow[], limit: number | undefined): TokenRow[] {
  if (limit === undefined || limit >= rows.length) return rows;
  return Array.from(permutation(rows.length, 0).subarray(0, limit), (i) => rows[i]);
}

/**
 * `finetune`: train a classifier on a base model with VeRA, LoRA, fully or only its head.
 *
 * @example
 * ```ts
 * import { finetuneCommand, pretrainCommand } from "./train.ts";
 * const dir = await Deno.makeTempDir();
 * const tiny = ["--data", "names", "--steps", "2", "--batch", "2"];
 * await pretrainCommand([...tiny, "--out", `${dir}/base.safetensors`, "--layers", "1", "--d-model", "8", "--heads", "2", "--seq", "8", "--eval-batches", "1"], { progress: "none" });
 * await finetuneCommand([...tiny, "--base", `${dir}/base.safetensors`, "--method", "vera", "--r", "4", "--eval-limit", "4", "--out", `${dir}/run`], { progress: "none" });
 * ```
 */
export async function finetuneCommand(
  args: readonly string[],
  options: TrainCommandOptions = {},
): Promise<void> {
  const { values, positionals } = parseFlags("finetune", args, FINETUNE_FLAGS);
  noPositionals("finetune", positionals);
  const basePath = required(values, "base", "finetune");
  const data = required(values, "data", "finetune");
  const out = required(values, "out", "finetune");
  const method = required(values, "method", "finetune") as Method;
  if (!METHODS.includes(method)) {
    throw new UsageError(`finetune: --method must be vera, lora, full or head, got "${method}"`);
  }
  const [steps, batch, seed] = [
    int(values, "steps"),
    int(values, "batch"),
    intFlag(values, "seed", 0)!,
  ];
  const lr = numberFlag(values, "lr", { min: 0, minExclusive: true }) ?? DEFAULT_LR[method];
  const headLr = numberFlag(values, "head-lr", { min: 0, minExclusive: true })!;
  const evalLimit = intFlag(values, "eval-limit");
  const evalEvery = intFlag(values, "eval-every");
  const runner = backendOf(values, options);
  const base = await loadBase(basePath);
  const seq = intFlag(values, "seq") ?? base.config.maxSeqLen;
  checkSeq(base, seq);
  const tokenizer = base.tokenizer;
  const task = await loadTaskData(values, tokenizer, seq);
  if (task.rows.train.length === 0) throw new UsageError(`finetune: ${data}: no training examples`);
  if (task.task === "lm" && method === "head") {
    throw new UsageError(
      "finetune: --method head trains a classification head; this data is for --task lm",
    );
  }
  const labels = task.labels;
  const { optimizer, clipNorm, dropout } = trainingOptions(values);
  const shape = { batch, seqLen: seq, numClasses: labels?.length };
  const head = base.family.classificationHead;
  const defaults = { targets: base.family.defaultTargets, modulesToSave: labels ? [head] : [] };
  // Two graphs with the same params: the one trained (with any dropout) and the one measured.
  const { graph, adapter } = applyMethod(
    taskGraph(base, task.task, { ...shape, dropout }),
    method,
    values,
    seed,
    defaults,
  );
  const evalGraph = applyMethod(
    taskGraph(base, task.task, shape),
    method,
    values,
    seed,
    defaults,
    false,
  ).graph;
  await checkRunMemory("finetune", graph, values, "lower --r, --batch or --seq");
  const params = initialParams(graph, base, seed);
  const checkpointPath = `${out}/checkpoint.safetensors`;
  checkNameLength("finetune", out);
  const dataFile = data === "spam" || data === "names" ? undefined : data;
  const baseFile = basePath.startsWith("hf:") ? undefined : basePath;
  await checkRunInputs(out, { "--base": baseFile, "--data": dataFile });
  // Locked before the checkpoint is looked at, so a second run into --out is refused as such.
  const runDir = await openRunDir(out, "finetune", {
    resume: !!values.resume,
    force: !!values.force,
  })
    .catch((e: Error) => {
      throw new UsageError(e.message);
    });
  let resume: LoadedCheckpoint | undefined, resumeNote: Record<string, number> | undefined;
  let evaluator: StepRunner;
  try {
    const loaded = runDir.hasCheckpoint ? await loadCheckpoint(checkpointPath) : undefined;
    ({ resume, resumeNote } = extendedResume(loaded, steps, checkpointPath));
    evaluator = await runner(evalGraph);
  } catch (e) {
    await runDir.abandon();
    throw e;
  }
  const adapterConfig = adapter ? snakeCaseKeys(JSON.parse(JSON.stringify(adapter.config))) : null;
  // snake_case throughout, as in metrics.jsonl and PEFT's files.
  const runConfig: Json = {
    base: basePath,
    data,
    task: task.task,
    labels: labels ?? null,
    method,
    steps,
    batch,
    seq,
    seed,
    lr,
    head_lr: headLr,
    dropout,
    optimizer: String(values.optimizer),
    weight_decay: numberFlag(values, "weight-decay") ?? null,
    warmup: numberFlag(values, "warmup")!,
    clip_norm: clipNorm ?? 0,
    adapter_config: adapterConfig,
  };

  const padId = tokenizer.padId ?? tokenizer.eosId ?? 0;
  const batchOptions = { batchSize: batch, seqLen: seq, seed, padId };
  const evalOn = (split: TokenRow[]) => () =>
    rowEvalBatches(sample(split, evalLimit), { batchSize: batch, seqLen: seq, padId });
  // A small file may leave a split empty: it is then not measured.
  const measureOn = (split: TokenRow[]) =>
    split.length === 0 ? Promise.resolve(undefined) : evaluateModel(evaluator, evalOn(split)());
  const measure = async (weights: Record<string, Float32Array>) => {
    await evaluator.setParams(
      Object.fromEntries(evalGraph.params.map((p) => [p.name!, weights[p.name!]])),
    );
    return {
      validation: await measureOn(task.rows.validation),
      test: await measureOn(task.rows.test),
    };
  };
  const groups = labels ? [{ name: "head", match: [head] }] : [];
  try {
    // The test split before training; the validation split is the trainer's step-0 evaluation.
    await evaluator.setParams(
      Object.fromEntries(evalGraph.params.map((p) => [p.name!, params[p.name!]])),
    );
    const testBefore = await measureOn(task.rows.test);
    const result = await train({
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
      lr: { default: schedule(lr, steps, values), head: schedule(headLr, steps, values) },
      logEvery: int(values, "log-every"),
      evalEvery,
      eval: task.rows.validation.length > 0
        ? { graph: evalGraph, batches: evalOn(task.rows.validation) }
        : undefined,
      evalAtStart: true,
      stopOnInterrupt: true,
      outDir: out,
      checkpoint: {
        path: checkpointPath,
        every: intFlag(values, "save-every") ?? evalEvery ?? 100,
        config: runConfig,
      },
      resume,
      resumeNote,
      seed,
      runner,
      progress: options.progress,
    }).catch((e) => {
      if (!(e instanceof TrainInterrupted)) throw e;
      throw new RunStopped(e.message, resumeCommand("finetune", args));
    });
    const atStart = result.records.find((r) => r.step === 0);
    const before = {
      validation: atStart?.eval_loss === undefined
        ? undefined
        : { loss: atStart.eval_loss, accuracy: atStart.eval_accuracy },
      test: testBefore,
    };
    const trained = { ...params, ...result.params };
    const after = await measure(trained);
    // Per-class metrics of the trained classifier on the test split (evaluator holds its weights).
    const test = sample(task.rows.test, evalLimit);
    let testMetrics: Json = null;
    if (labels && test.length > 0) {
      const scores = await scoreRows(evaluator, evalGraph, test, padId);
      const predicted = scores.map((s) => s.probabilities!.indexOf(Math.max(...s.probabilities!)));
      const m = classificationMetrics(test.map((r) => r.label!), predicted, labels);
      testMetrics = {
        accuracy: m.accuracy,
        macro_f1: m.macroF1,
        per_class: m.perClass.map((c) => ({ ...c })),
        confusion: m.confusion,
      };
    }
    let adapterBytes: number | null = null;
    if (adapter) {
      await writeDirAtomic(
        `${out}/adapter`,
        adapterFiles(adapter, trained, evalGraph, base, basePath, labels),
      );
      adapterBytes = await bytesUnder(`${out}/adapter`);
    }
    const trainable = graph.params.filter((p) => p.attrs.role === "trainable");
    const at = (
      split: "validation" | "test",
      key: "accuracy" | "loss",
    ) => ({ before: before[split]?.[key] ?? null, after: after[split]?.[key] ?? null });
    const summary = {
      method,
      trainable_params: trainable.reduce((n, p) => n + params[p.name!].length, 0),
      total_params: graph.params.reduce((n, p) => n + params[p.name!].length, 0),
      accuracy: labels
        ? { validation: at("validation", "accuracy"), test: at("test", "accuracy") }
        : null,
      loss: { train: result.loss, validation: at("validation", "loss"), test: at("test", "loss") },
      test_metrics: testMetrics,
      adapter_bytes: adapterBytes,
      step_ms: result.stepMs,
      tokens_per_s: result.tokensPerS,
      ...runConfig,
    };
    await writeFileAtomic(`${out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
    const change = (key: "accuracy" | "loss", split: "validation" | "test") => {
      const show = key === "accuracy" ? percent : (v?: number) => v?.toFixed(4) ?? "?";
      return `${show(before[split]?.[key])} → ${show(after[split]?.[key])}`;
    };
    const key = labels ? "accuracy" : "loss";
    humanOutput(values)(
      `finetune ${method}: ${summary.trainable_params.toLocaleString("en-US")} trainable params; ` +
        `validation ${key} ${change(key, "validation")}, test ${change(key, "test")}; ` +
        `${
          Number.isFinite(result.stepMs)
            ? `${result.stepMs.toFixed(1)} ms/step`
            : `finished from its step-${result.step} checkpoint`
        } → ${out}`,
    );
    if (values.json) console.log(JSON.stringify({ out, ...summary }));
  } finally {
    evaluator.dispose();
    runDir.release();
  }
}
