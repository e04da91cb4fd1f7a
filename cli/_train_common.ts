/** What `pretrain` and `finetune` share: flags, the backend choice, the data flag, the schedule. */
import type { Graph } from "../compiler/ir.ts";
// The training commands read the built-in data sets through data/registry.ts;
// importing them here registers them (the library entry point does not).
import "../data/datasets.ts";
import { runnerFactoryFor } from "../train/executable_runner.ts";
import { type BackendChoice, parseBackend, resolveBackend } from "../backends/compile.ts";
import { warmupCosine } from "../train/schedule.ts";
import type { RunnerFactory } from "../train/runner.ts";
import type { ProgressMode } from "../train/trainer.ts";
import { CONFIG_FLAG, type FlagSpec, intFlag, numberFlag, required, UsageError } from "./_args.ts";
import { adamw, sgd } from "../train/optim.ts";
import type { Optimizer } from "../train/update_rules.ts";
import type { Json, LoadedCheckpoint } from "../train/checkpoint.ts";
import { checkMemory, estimateTrainingMemory, formatBytes } from "../train/memory.ts";
import { requestGpu } from "../backends/webgpu/device.ts";

/** A string flag with its help text and default. */
export const flag = (help: string, fallback?: string): FlagSpec => ({
  type: "string",
  help,
  default: fallback,
});
export const COMMON_FLAGS: Record<string, FlagSpec> = {
  batch: flag("batch size", "16"),
  seed: flag("seed of the init, the adapter and the data order", "0"),
  "log-every": flag("read back and log the loss every N steps", "25"),
  "eval-every": flag("evaluate on validation every N steps (default: at the end)"),
  backend: flag(
    "auto | webgpu | wasm | cpu (auto: WebGPU on a hardware GPU, else wasm SIMD threads)",
    "auto",
  ),
  dropout: flag("dropout probability in each block while training (0 = none)", "0"),
  optimizer: { ...flag("adamw | sgd", "adamw"), choices: ["adamw", "sgd"] },
  "weight-decay": flag("decoupled weight decay (AdamW's default 0.01, SGD's 0)"),
  betas: flag("AdamW: decay rates of the moments, as B1,B2", "0.9,0.999"),
  eps: flag("AdamW: added to the denominator", "1e-8"),
  momentum: flag("SGD: momentum", "0"),
  warmup: flag("learning-rate warm-up as a fraction of --steps (then cosine decay)", "0.06"),
  "clip-norm": flag("clip the global gradient norm to this (0 = no clipping)", "1"),
  json: { type: "boolean", help: "print only a JSON summary on stdout (the rest goes to stderr)" },
  config: CONFIG_FLAG,
};

/** The optimizer, gradient clipping and model dropout that `--weight-decay`, `--clip-norm` and `--dropout` set. */
export function trainingOptions(
  values: Record<string, unknown>,
): { optimizer: Optimizer; clipNorm?: number; dropout: number } {
  const weightDecay = numberFlag(values, "weight-decay", { min: 0 });
  const clipNorm = numberFlag(values, "clip-norm", { min: 0 })!;
  const dropout = numberFlag(values, "dropout", { min: 0, max: 1, maxExclusive: true })!;
  const betas = String(values.betas ?? "0.9,0.999").split(",");
  if (betas.length !== 2) {
    throw new UsageError(`--betas must be two numbers B1,B2, got "${values.betas}"`);
  }
  const beta = (i: number) =>
    numberFlag({ betas: betas[i].trim() }, "betas", { min: 0, max: 1, maxExclusive: true })!;
  const optimizer = values.optimizer === "sgd"
    ? sgd({
      momentum: numberFlag(values, "momentum", { min: 0 }) ?? 0,
      ...(weightDecay === undefined ? {} : { weightDecay }),
    })
    : adamw({
      betas: [beta(0), beta(1)],
      eps: numberFlag(values, "eps", { min: 0, minExclusive: true }) ?? 1e-8,
      ...(weightDecay === undefined ? {} : { weightDecay }),
    });
  return {
    optimizer,
    ...(clipNorm > 0 ? { clipNorm } : {}),
    dropout,
  };
}

/**
 * Options of the training commands (tests and the lead's wiring use them).
 *
 * @example
 * ```ts
 * import { cpuRunner } from "../train/runner.ts";
 * import type { TrainCommandOptions } from "./train.ts";
 * const options: TrainCommandOptions = { backends: { cpu: (g) => cpuRunner(g) }, progress: "lines" };
 * ```
 */
export interface TrainCommandOptions {
  /** Runner factories by `--backend` name (default: every backend, `auto` included). */
  readonly backends?: Readonly<Record<string, RunnerFactory>>;
  /** Progress display (default `auto`). */
  readonly progress?: ProgressMode;
}

/** `--backend`'s value, checked: a usage error names the choices. */
export function backendFlag(value: string): BackendChoice {
  try {
    return parseBackend(value, "--backend");
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function backendOf(
  values: Record<string, unknown>,
  options: TrainCommandOptions,
): RunnerFactory {
  const name = String(values.backend);
  if (options.backends === undefined) return runnerFactoryFor(backendFlag(name));
  const backends = options.backends;
  // Own keys only: "toString" or "constructor" must not find Object.prototype's members.
  const factory = Object.hasOwn(backends, name) ? backends[name] : undefined;
  if (factory === undefined) {
    throw new UsageError(
      `--backend ${name} is not available (available: ${Object.keys(backends).join(", ")})`,
    );
  }
  return factory;
}

export function dataFlag(values: Record<string, unknown>, command: string): "spam" | "names" {
  const data = required(values, "data", command);
  if (data !== "spam" && data !== "names") {
    throw new UsageError(`${command}: --data must be spam or names, got "${data}"`);
  }
  return data;
}

export function int(values: Record<string, unknown>, name: string): number {
  return intFlag(values, name)!;
}

/** Warm-up over `--warmup` of the steps, then cosine decay to the last step. */
export function schedule(peak: number, steps: number, values: Record<string, unknown> = {}) {
  const warmup = numberFlag(values, "warmup", { min: 0, max: 1 }) ?? 0.06;
  return warmupCosine({ peak, warmupSteps: Math.floor(steps * warmup), totalSteps: steps });
}

/**
 * Refuses, before anything is allocated, a run whose graph cannot fit: its largest tensor past
 * the GPU's buffer limit (on `--backend webgpu`), or what it keeps allocated past host memory.
 */
export async function checkRunMemory(
  command: string,
  graph: Graph,
  values: Record<string, unknown>,
  hint: string,
): Promise<void> {
  const backend = await resolveBackend(backendFlag(String(values.backend)));
  const gpu = backend === "webgpu" ? await requestGpu().catch(() => undefined) : undefined;
  try {
    checkMemory(command, estimateTrainingMemory(graph), {
      maxBufferSize: gpu?.limits.maxBufferSize,
      hint,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * Refuses, from the config alone and before a graph is traced, a GPT that cannot fit in host
 * memory: its weights with gradients and AdamW state (4 copies of about `12·L·D² + (V + T)·D`
 * values), or one step's activations (about `B·T·(V + 16·D·L)` values), in words naming the
 * flags to lower.
 */
export function checkConfigMemory(
  command: string,
  config: { vocabSize: number; maxSeqLen: number; dModel: number; layers: number },
  batch: number,
  seq: number,
): void {
  const { vocabSize, maxSeqLen, dModel: d, layers } = config;
  const host = 0.9 * Deno.systemMemoryInfo().total;
  const params = layers * 12 * d * d + (vocabSize + maxSeqLen) * d;
  if (4 * 4 * params > host) {
    throw new UsageError(
      `${command}: a model with ${layers} layers, d_model ${d} and ${maxSeqLen} positions has about ` +
        `${params.toExponential(1)} parameters, needing ${formatBytes(16 * params)} with its ` +
        `gradients and optimizer state, more than the ${formatBytes(host)} of memory available; ` +
        `lower --layers, --d-model or --seq`,
    );
  }
  const activations = batch * seq * (vocabSize + 16 * d * layers);
  if (4 * activations > host) {
    throw new UsageError(
      `${command}: --batch ${batch} × --seq ${seq} needs about ${activations.toExponential(1)} ` +
        `activation values per step (${formatBytes(4 * activations)}), more than the ` +
        `${formatBytes(host)} of memory available; lower --batch or --seq`,
    );
  }
}

/**
 * A checkpoint to resume with `--steps`: the run's own total, or a larger one (the run is
 * extended, its schedule recomputed for the new total, and the change noted in the metrics).
 */
export function extendedResume(
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

/**
 * `targetModules` → `target_modules`, recursively through objects (values are kept): the one naming
 * style of what the commands write (summary.json, --json), as in metrics.jsonl and PEFT's files.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { snakeCaseKeys } from "./_train_common.ts";
 * deepStrictEqual(snakeCaseKeys({ dModel: 64, targetModules: ["q_proj"] }), {
 *   d_model: 64,
 *   target_modules: ["q_proj"],
 * });
 * ```
 */
export function snakeCaseKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map((
      [k, v],
    ) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeCaseKeys(v)]),
  );
}
