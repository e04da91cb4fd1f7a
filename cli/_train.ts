/** The `pretrain` and `finetune` commands. */
import { webgpuRunnerFactory } from "../train/gpu_runner.ts";
import { dirname } from "node:path";
import type { Graph } from "../compiler/ir.ts";
import { rewrite } from "../compiler/rewrite.ts";
import { type GptConfig, gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { freezeRule, vera } from "../adapters/vera.ts";
import { lora } from "../adapters/lora.ts";
import { exportPeft } from "../adapters/peft.ts";
import { type Adapter, isAdapterParam } from "../adapters/merge.ts";
import {
  type BatchState,
  ClassificationBatcher,
  classificationBatches,
  type ClassificationExample,
  lmBatches,
} from "../data/batches.ts";
import { vocabSize } from "../data/tokenizer.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { adamw, trainStep } from "../train/optim.ts";
import { warmupCosine } from "../train/schedule.ts";
import { cpuRunner, type RunnerFactory } from "../train/runner.ts";
import { type Json, loadBaseModel, loadCheckpoint, saveBaseModel } from "../train/checkpoint.ts";
import { classificationTask, lmTexts } from "../train/_eval.ts";
import {
  classifierEvalBatches,
  evaluateModel,
  lmEvalBatches,
  type ProgressMode,
  sourceOf,
  train,
} from "../train/trainer.ts";
import { type FlagSpec, intFlag, numberFlag, parseFlags, required, UsageError } from "./_args.ts";

/** A string flag with its help text and default. */
const flag = (help: string, fallback?: string): FlagSpec => ({
  type: "string",
  help,
  default: fallback,
});
const COMMON_FLAGS: Record<string, FlagSpec> = {
  batch: flag("batch size", "16"),
  seed: flag("seed of the init, the adapter and the data order", "0"),
  "log-every": flag("read back and log the loss every N steps", "25"),
  "eval-every": flag("evaluate on validation every N steps (default: at the end)"),
  backend: flag("webgpu (navigator.gpu) | cpu (float reference)", "webgpu"),
  json: { type: "boolean", help: "print a JSON summary as the last line" },
};

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
  ...COMMON_FLAGS,
};

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
  resume: { type: "boolean", help: "continue the run in --out from its checkpoint" },
  ...COMMON_FLAGS,
};

const METHODS = ["vera", "lora", "full", "head"] as const;
type Method = typeof METHODS[number];
// VeRA and LoRA rates picked by validation accuracy on spam (bench/methods_table.ts sweeps, BENCHMARKS.md).
const DEFAULT_LR: Record<Method, number> = { vera: 3e-2, lora: 1e-2, full: 1e-3, head: 3e-3 };

/**
 * Options of the training commands (tests and the lead's wiring use them).
 *
 * @example
 * ```ts
 * import { cpuRunner } from "../train/runner.ts";
 * import type { TrainCommandOptions } from "./_train.ts";
 * const options: TrainCommandOptions = { backends: { cpu: (g) => cpuRunner(g) }, progress: "lines" };
 * ```
 */
export interface TrainCommandOptions {
  /** Runner factories by `--backend` name (default: `cpu` and `webgpu`). */
  readonly backends?: Readonly<Record<string, RunnerFactory>>;
  /** Progress display (default `auto`). */
  readonly progress?: ProgressMode;
}

function backendOf(values: Record<string, unknown>, options: TrainCommandOptions): RunnerFactory {
  const backends = options.backends ??
    { cpu: (g: Graph) => cpuRunner(g), webgpu: webgpuRunnerFactory };
  const name = String(values.backend);
  const factory = backends[name];
  if (factory === undefined) {
    throw new UsageError(
      `--backend ${name} is not available (available: ${Object.keys(backends).join(", ")})`,
    );
  }
  return factory;
}

function dataFlag(values: Record<string, unknown>, command: string): "spam" | "names" {
  const data = required(values, "data", command);
  if (data !== "spam" && data !== "names") {
    throw new UsageError(`${command}: --data must be spam or names, got "${data}"`);
  }
  return data;
}

function int(values: Record<string, unknown>, name: string): number {
  return intFlag(values, name)!;
}

function schedule(peak: number, steps: number) {
  return warmupCosine({ peak, warmupSteps: Math.floor(steps * 0.06), totalSteps: steps });
}

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
  const { values } = parseFlags("pretrain", args, PRETRAIN_FLAGS);
  const data = dataFlag(values, "pretrain");
  const out = required(values, "out", "pretrain");
  const [steps, batch, seq] = [int(values, "steps"), int(values, "batch"), int(values, "seq")];
  const seed = intFlag(values, "seed", 0)!;
  const lr = numberFlag(values, "lr")!;
  const runner = backendOf(values, options);
  const config: GptConfig = {
    vocabSize,
    maxSeqLen: seq,
    dModel: int(values, "d-model"),
    heads: int(values, "heads"),
    layers: int(values, "layers"),
    head: "lm",
  };
  let model: Graph;
  try {
    model = gptGraph(config, { batch, seqLen: seq });
  } catch (e) {
    throw new UsageError(`pretrain: ${(e as Error).message}`);
  }
  const texts = lmTexts(data);
  const evalBatches = int(values, "eval-batches");
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
  console.log(
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
        alpha: numberFlag(values, "alpha") ?? r,
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
  const params = initParams(graph, { seed });
  for (const p of graph.params) {
    const name = p.name!;
    const fresh = name.startsWith("classifier.") || isAdapterParam(name);
    if (fresh) continue;
    const w = base[name];
    if (w === undefined) throw new UsageError(`${basePath}: the base model has no "${name}"`);
    if (w.length !== params[name].length) {
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
  const { values } = parseFlags("finetune", args, FINETUNE_FLAGS);
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
  const lr = numberFlag(values, "lr") ?? DEFAULT_LR[method];
  const headLr = numberFlag(values, "head-lr")!;
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
  const params = initialParams(graph, base.weights, basePath, seed);
  const checkpointPath = `${out}/checkpoint.safetensors`;
  const exists = await Deno.stat(checkpointPath).then(() => true, () => false);
  if (exists && !values.resume) {
    throw new UsageError(
      `finetune: ${out} already holds a run; pass --resume to continue it or choose another --out`,
    );
  }
  if (!exists && values.resume) throw new UsageError(`finetune: --resume: no ${checkpointPath}`);
  const resume = values.resume ? await loadCheckpoint(checkpointPath) : undefined;
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
  const evaluator = await runner(graph);
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
    console.log(
      `finetune ${method}: ${summary.trainable_params.toLocaleString("en-US")} trainable params; ` +
        `validation accuracy ${percent(before.validation.accuracy)} → ${
          percent(after.validation.accuracy)
        }, test ${percent(before.test.accuracy)} → ${percent(after.test.accuracy)}; ` +
        `${result.stepMs.toFixed(1)} ms/step → ${out}`,
    );
    if (values.json) console.log(JSON.stringify({ out, ...summary }));
  } finally {
    evaluator.dispose();
  }
}
