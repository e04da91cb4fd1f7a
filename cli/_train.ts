/** The `finetune` command (and, re-exported, `pretrain`). */
import type { Graph } from "../compiler/ir.ts";
import { rewrite } from "../compiler/rewrite.ts";
import { type GptConfig, gptGraph } from "../nn/gpt.ts";
import { initValue } from "../nn/init.ts";
import { freezeRule, vera } from "../adapters/vera.ts";
import { lora } from "../adapters/lora.ts";
import { exportPeft } from "../adapters/peft.ts";
import { type Adapter, isAdapterParam } from "../adapters/merge.ts";
import {
  type BatchState,
  ClassificationBatcher,
  classificationBatches,
  type ClassificationExample,
} from "../data/batches.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { adamw, trainStep } from "../train/optim.ts";
import type { StepRunner } from "../train/runner.ts";
import {
  type Json,
  loadBaseModel,
  loadCheckpoint,
  type LoadedCheckpoint,
} from "../train/checkpoint.ts";
import { openRunDir } from "../train/run_dir.ts";
import { checkNameLength, checkRunInputs } from "./_outputs.ts";
import { classificationTask } from "../train/_eval.ts";
import { classifierEvalBatches, evaluateModel, sourceOf, train } from "../train/trainer.ts";
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
  dataFlag,
  flag,
  int,
  schedule,
  type TrainCommandOptions,
} from "./_train_common.ts";

export { PRETRAIN_FLAGS, pretrainCommand } from "./_pretrain.ts";
export type { TrainCommandOptions } from "./_train_common.ts";

/**
 * The flags of `finetune`.
 *
 * @example
 * ```ts
 * import { flagHelp } from "./_args.ts";
 * import { FINETUNE_FLAGS } from "./_train.ts";
 * console.log(flagHelp(FINETUNE_FLAGS));
 * ```
 */
export const FINETUNE_FLAGS: Record<string, FlagSpec> = {
  base: flag("base model written by pretrain"),
  data: flag("spam | names"),
  method: flag("vera | lora | full | head"),
  out: flag("run directory to write (runs/NAME)"),
  r: flag("rank (default 256 for vera, 8 for lora)"),
  targets: flag("adapted modules, comma-separated", "q_proj,v_proj"),
  "d-initial": flag("VeRA: initial lambda_d", "0.1"),
  alpha: flag("LoRA: scaling numerator alpha (default r)"),
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
  ...COMMON_FLAGS,
};

const METHODS = ["vera", "lora", "full", "head"] as const;
type Method = typeof METHODS[number];
// VeRA and LoRA rates picked by validation accuracy on spam (bench/methods_table.ts sweeps, BENCHMARKS.md).
const DEFAULT_LR: Record<Method, number> = { vera: 3e-2, lora: 1e-2, full: 1e-3, head: 3e-3 };

async function loadBase(path: string) {
  try {
    return await loadBaseModel(path);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The model of a method: the classifier GPT with the adapter applied or params frozen. */
function applyMethod(
  model: Graph,
  method: Method,
  values: Record<string, unknown>,
  seed: number,
): { graph: Graph; adapter?: Adapter } {
  const targetModules = String(values.targets).split(",").map((t) => t.trim()).filter((t) => t);
  const modulesToSave = ["classifier"];
  try {
    if (method === "vera") {
      const r = intFlag(values, "r") ?? 256;
      const dInitial = numberFlag(values, "d-initial");
      return vera(model, { r, targetModules, dInitial, projectionPrngKey: seed, modulesToSave });
    }
    if (method === "lora") {
      const r = intFlag(values, "r") ?? 8;
      return lora(model, {
        r,
        alpha: numberFlag(values, "alpha", { min: 0, minExclusive: true }) ?? r,
        targetModules,
        modulesToSave,
      });
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`finetune: ${(e as Error).message}`);
  }
  return { graph: method === "full" ? model : rewrite(model, [freezeRule(modulesToSave)]) };
}

/** Initial params: the base weights where the graph has them, the seeded init elsewhere. */
function initialParams(
  graph: Graph,
  base: Record<string, Float32Array>,
  basePath: string,
  seed: number,
): Record<string, Float32Array> {
  const params: Record<string, Float32Array> = {};
  for (const p of graph.params) {
    const name = p.name!;
    const fresh = name.startsWith("classifier.") || isAdapterParam(name);
    // Only new params are initialised: the rest come from the base, never allocated twice.
    if (fresh) {
      params[name] = initValue(p, seed);
      continue;
    }
    const w = base[name];
    if (w === undefined) throw new UsageError(`${basePath}: the base model has no "${name}"`);
    if (w.length !== p.shape.reduce((x, y) => x * y, 1)) {
      throw new UsageError(
        `${basePath}: "${name}" has ${w.length} values, the model needs [${p.shape}]`,
      );
    }
    params[name] = w;
  }
  return params;
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    total += e.isFile ? (await Deno.stat(`${dir}/${e.name}`)).size : 0;
  }
  return total;
}

const percent = (v: number | undefined) => v === undefined ? "?" : `${(100 * v).toFixed(1)}%`;

/**
 * `finetune`: train a classifier on a base model with VeRA, LoRA, fully or only its head.
 *
 * @example
 * ```ts
 * import { finetuneCommand, pretrainCommand } from "./_train.ts";
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
  const data = dataFlag(values, "finetune");
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
  if (seq > base.config.maxSeqLen) {
    throw new UsageError(
      `finetune: --seq ${seq} exceeds the base model's maxSeqLen ${base.config.maxSeqLen} (${basePath})`,
    );
  }
  const config: GptConfig = { ...base.config, head: "classifier", numClasses: 2 };
  const model = gptGraph(config, { batch, seqLen: seq });
  const { graph, adapter } = applyMethod(model, method, values, seed);
  await checkRunMemory("finetune", graph, values, "lower --r, --batch or --seq");
  const params = initialParams(graph, base.weights, basePath, seed);
  const checkpointPath = `${out}/checkpoint.safetensors`;
  checkNameLength("finetune", out);
  await checkRunInputs(out, { "--base": basePath });
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
    evaluator = await runner(graph);
  } catch (e) {
    await runDir.abandon();
    throw e;
  }
  const adapterConfig = adapter ? JSON.parse(JSON.stringify(adapter.config)) : null;
  const runConfig: Json = {
    base: basePath,
    data,
    method,
    steps,
    batch,
    seq,
    seed,
    lr,
    headLr,
    adapterConfig,
  };

  const splits = classificationTask(data);
  const batchOptions = { batchSize: batch, seqLen: seq, seed, epochs: Infinity, dropLast: true };
  const evalOn = (split: ClassificationExample[]) => () =>
    classifierEvalBatches(split, { batchSize: batch, seqLen: seq, limit: evalLimit });
  const measure = async (weights: Record<string, Float32Array>) => {
    await evaluator.setParams(
      Object.fromEntries(graph.params.map((p) => [p.name!, weights[p.name!]])),
    );
    return {
      validation: await evaluateModel(evaluator, evalOn(splits.validation)()),
      test: await evaluateModel(evaluator, evalOn(splits.test)()),
    };
  };
  const groups = [{ name: "head", match: ["classifier"] }];
  try {
    const before = await measure(params);
    const result = await train({
      step: trainStep(graph, { optimizer: adamw(), groups, clipNorm: 1 }),
      params,
      data: (state) =>
        sourceOf(
          state === undefined
            ? classificationBatches(splits.train, batchOptions)
            : ClassificationBatcher.fromState(splits.train, batchOptions, state as BatchState),
        ),
      steps,
      lr: { default: schedule(lr, steps), head: schedule(headLr, steps) },
      logEvery: int(values, "log-every"),
      evalEvery,
      eval: { graph, batches: evalOn(splits.validation) },
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
    });
    const trained = { ...params, ...result.params };
    const after = await measure(trained);
    let adapterBytes: number | null = null;
    if (adapter) {
      await exportPeft(`${out}/adapter`, adapter, trained, { graph, baseModel: basePath });
      adapterBytes = await bytesUnder(`${out}/adapter`);
    }
    const trainable = graph.params.filter((p) => p.attrs.role === "trainable");
    const summary = {
      method,
      trainable_params: trainable.reduce((n, p) => n + params[p.name!].length, 0),
      total_params: graph.params.reduce((n, p) => n + params[p.name!].length, 0),
      accuracy: {
        validation: { before: before.validation.accuracy, after: after.validation.accuracy },
        test: { before: before.test.accuracy, after: after.test.accuracy },
      },
      loss: {
        train: result.loss,
        validation: { before: before.validation.loss, after: after.validation.loss },
      },
      adapter_bytes: adapterBytes,
      step_ms: result.stepMs,
      tokens_per_s: result.tokensPerS,
      ...runConfig,
    };
    await writeFileAtomic(`${out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
    humanOutput(values)(
      `finetune ${method}: ${summary.trainable_params.toLocaleString("en-US")} trainable params; ` +
        `validation accuracy ${percent(before.validation.accuracy)} → ${
          percent(after.validation.accuracy)
        }, test ${percent(before.test.accuracy)} → ${percent(after.test.accuracy)}; ` +
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

/**
 * A checkpoint to resume with `--steps`: the run's own total, or a larger one (the run is
 * extended, its schedule recomputed for the new total, and the change noted in the metrics).
 */
function extendedResume(
  loaded: LoadedCheckpoint | undefined,
  steps: number,
  path: string,
): { resume?: LoadedCheckpoint; resumeNote?: Record<string, number> } {
  if (loaded === undefined) return {};
  const config = loaded.config;
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new UsageError(
      `finetune: --resume: ${path} is incomplete: its "config" field is empty (the run's settings)`,
    );
  }
  const before = config.steps;
  if (typeof before !== "number" || !Number.isSafeInteger(before) || before < 1) {
    throw new UsageError(
      `finetune: --resume: ${path}: its "config.steps" field must be an integer ≥ 1, got ` +
        JSON.stringify(before ?? null),
    );
  }
  if (steps < before) {
    throw new UsageError(
      `finetune: --steps ${steps} is less than the run's ${before} steps (${path} is at step ` +
        `${loaded.step}); a resumed run continues to its own total or is extended with a larger one`,
    );
  }
  if (steps === before) return { resume: loaded };
  return {
    resume: { ...loaded, config: { ...config, steps } },
    resumeNote: { steps_before: before, steps },
  };
}
