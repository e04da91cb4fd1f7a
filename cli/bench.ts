/**
 * The `bench step` command (docs/ARCHITECTURE.md §11): one training step of the reference
 * GPT (forward, backward, AdamW) with VeRA, LoRA or full fine-tuning, on
 * random frozen weights and random tokens, timed so that every timed step's
 * GPU work has really finished.
 *
 * Timing: Deno 2.9's `mapAsync` costs about 10 ms however little the GPU did,
 * so steps are timed in blocks of k, each block ending in one readback of the
 * loss, and the block time is divided by k. k is chosen after warm-up so that
 * the readback is at most about 5% of a block (or given with `--block`).
 *
 * @module
 */
import { resolveBackend } from "../backends/compile.ts";
import type { BackendName } from "../backends/executable.ts";
import { backendFlag } from "./_train_common.ts";
import {
  type BenchMethod,
  median,
  prepareStep,
  type PrepareStepOptions,
  type StepBenchConfig,
  stepGraphs,
} from "./_bench_step.ts";
import { type FlagSpec, humanOutput, intFlag, parseFlags, required, UsageError } from "./_args.ts";

export {
  type BenchMethod,
  median,
  type PreparedStep,
  prepareStep,
  type PrepareStepOptions,
  randomBatches,
  type StepBenchConfig,
  stepGraphs,
  type TokenBatch,
} from "./_bench_step.ts";

/** Steps between loss readbacks in `finetune`/`pretrain` (the trainer's default `logEvery`). */
// The trainer's default: a readback (~11 ms in Deno 2.9) every 25 steps stays under 1% of training.
const LOG_EVERY = 25;

/**
 * What `bench step --json` prints (snake_case, as on the command line).
 *
 * @example
 * ```ts
 * import type { StepReport } from "./bench.ts";
 * const check = (r: StepReport) => r.buffers_created_after_first === 0;
 * ```
 */
export interface StepReport {
  /** The method measured. */
  readonly method: BenchMethod;
  /** `webgpu` or `cpu`. */
  readonly backend: BackendName;
  /** The adapter's description. */
  readonly adapter: string;
  /** The model and adapter shape. */
  readonly config: {
    layers: number;
    d_model: number;
    heads: number;
    seq: number;
    batch: number;
    vocab: number;
    r: number | null;
    targets: string[];
  };
  /** Graph building + compilation + upload + first step + its readback, ms. */
  readonly first_step_ms: number;
  /** Of which `compile()`, ms. */
  readonly compile_ms: number;
  /** Median over blocks of (block time / k), ms; each block ends in one readback. */
  readonly step_ms: number;
  /** Steps per timed block (one readback per block). */
  readonly steps_per_readback: number;
  /** Timed blocks. */
  readonly blocks: number;
  /** Untimed steps after the first. */
  readonly warmup_steps: number;
  /** batch · seq / step time. */
  readonly tokens_per_s: number;
  /** Host time to feed, encode and submit one step (median over blocks), ms. */
  readonly host_submit_ms: number;
  /** Elements of the trainable params. */
  readonly trainable_params: number;
  /** Elements of all model params. */
  readonly total_params: number;
  /** Dispatches per step. */
  readonly kernels_per_step: number;
  /** Bytes of GPU buffers the executable holds (0 on cpu). */
  readonly gpu_bytes: number;
  /** GPU buffers created after the first step (the memory plan makes this 0). */
  readonly buffers_created_after_first: number;
  /** One loss readback with nothing queued, ms (median of 5). */
  readonly readback_ms: number;
  /** readback / (readback + log_every · step), in percent. */
  readonly readback_overhead_pct: number;
  /** The log interval the overhead is computed for. */
  readonly log_every: number;
  /** Loss of the first step and after the last one (a sanity check that it trains). */
  readonly loss_first: number;
  /** Loss of the last timed step. */
  readonly loss_last: number;
  /** Whether the driver's on-disk shader cache was disabled (`--cold`). */
  readonly shader_cache: "default" | "disabled";
}

/**
 * Options of {@link measureStep}.
 *
 * @example
 * ```ts
 * import type { MeasureOptions } from "./bench.ts";
 * const options: MeasureOptions = { steps: 20, warmup: 2 };
 * ```
 */
export interface MeasureOptions {
  /** Timed steps (at least; rounded up to whole blocks). */
  readonly steps: number;
  /** Steps per block (default: chosen so the readback is ≤ 5% of a block, at least 3 blocks). */
  readonly block?: number;
  /** Untimed steps after the first (default 2). */
  readonly warmup?: number;
  /** Passed to {@link prepareStep}. */
  readonly prepare?: PrepareStepOptions;
  /** Recorded in the report (see `--cold`). */
  readonly shaderCache?: "default" | "disabled";
}

/**
 * Prepares a step, warms it up, picks k and times blocks of k steps.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { measureStep } from "./bench.ts";
 * const report = await measureStep({
 *   method: "vera", layers: 1, dModel: 16, heads: 2, seq: 8, batch: 2, vocab: 16, r: 8,
 *   targets: ["q_proj", "v_proj"],
 * }, { steps: 3 });
 * ok(report.step_ms > 0);
 * strictEqual(report.buffers_created_after_first, 0);
 * ```
 */
export async function measureStep(
  config: StepBenchConfig,
  options: MeasureOptions,
): Promise<StepReport> {
  const prepared = await prepareStep(config, options.prepare);
  try {
    const { exe } = prepared;
    const createdAfterFirst = exe.stats.buffersCreated;
    const warmup = options.warmup ?? 2;
    const w0 = performance.now();
    if (warmup > 0) await prepared.run(warmup);
    const estimate = warmup > 0 ? (performance.now() - w0) / warmup : prepared.firstStepMs;
    const readbackMs = await prepared.readbackMs();
    const k = options.block ??
      Math.max(
        1,
        Math.min(Math.floor(options.steps / 3), Math.ceil((20 * readbackMs) / estimate)),
      );
    const blocks = Math.max(1, Math.ceil(options.steps / k));
    const perStep: number[] = [], submitPerStep: number[] = [];
    let lossLast = NaN;
    for (let b = 0; b < blocks; b++) {
      const t0 = performance.now();
      lossLast = await prepared.run(k);
      perStep.push((performance.now() - t0) / k);
      submitPerStep.push(prepared.lastSubmitMs / k);
    }
    const stepMs = median(perStep);
    const stats = exe.stats;
    const r = config.method === "full" ? null : config.r ?? (config.method === "vera" ? 256 : 8);
    return {
      method: config.method,
      backend: config.backend ?? "webgpu",
      adapter: prepared.adapter,
      config: {
        layers: config.layers,
        d_model: config.dModel,
        heads: config.heads,
        seq: config.seq,
        batch: config.batch,
        vocab: config.vocab,
        r,
        targets: config.method === "full" ? [] : [...config.targets],
      },
      first_step_ms: round(prepared.firstStepMs),
      compile_ms: round(prepared.compileMs),
      step_ms: round(stepMs),
      steps_per_readback: k,
      blocks,
      warmup_steps: warmup,
      tokens_per_s: round((config.batch * config.seq * 1000) / stepMs),
      host_submit_ms: round(median(submitPerStep)),
      trainable_params: prepared.trainableParams,
      total_params: prepared.totalParams,
      kernels_per_step: stats.kernelsPerRun,
      gpu_bytes: stats.gpuBytes,
      buffers_created_after_first: stats.buffersCreated - createdAfterFirst,
      readback_ms: round(readbackMs),
      readback_overhead_pct: round((100 * readbackMs) / (readbackMs + LOG_EVERY * stepMs)),
      log_every: LOG_EVERY,
      loss_first: prepared.firstLoss,
      loss_last: lossLast,
      shader_cache: options.shaderCache ?? "default",
    };
  } finally {
    prepared.dispose();
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Human-readable lines of a report.
 *
 * @example
 * ```ts
 * import { formatReport, measureStep } from "./bench.ts";
 * const report = await measureStep({
 *   method: "full", layers: 1, dModel: 8, heads: 2, seq: 4, batch: 1, vocab: 8, targets: [],
 * }, { steps: 3 });
 * console.log(formatReport(report).join("\n"));
 * ```
 */
export function formatReport(report: StepReport): string[] {
  const c = report.config;
  const n = (x: number) => x.toLocaleString("en-US");
  const method = report.method === "full"
    ? "full fine-tuning"
    : `${report.method} r=${c.r} on ${c.targets.join(",")}`;
  return [
    `bench step: ${method}; GPT ${c.layers} layers, d_model ${c.d_model}, ${c.heads} heads, ` +
    `seq ${c.seq}, batch ${c.batch}, vocab ${c.vocab}; AdamW`,
    `adapter: ${report.adapter} (${report.backend}; shader cache ${report.shader_cache})`,
    `first step: ${report.first_step_ms.toFixed(1)} ms (compile ${
      report.compile_ms.toFixed(1)
    } ms, the rest is upload, the first run and the driver's shader compilation)`,
    `step: ${
      report.step_ms.toFixed(2)
    } ms (median of ${report.blocks} blocks of ${report.steps_per_readback} ` +
    `steps, one readback each, after ${report.warmup_steps} warm-up steps); ${
      n(Math.round(report.tokens_per_s))
    } tokens/s; the host submits a step in ${report.host_submit_ms.toFixed(2)} ms`,
    `params: ${n(report.trainable_params)} trainable of ${n(report.total_params)}; ` +
    `${report.kernels_per_step} kernels per step; GPU memory ${n(report.gpu_bytes)} bytes; ` +
    `buffers created after the first step: ${report.buffers_created_after_first}`,
    `readback: ${report.readback_ms.toFixed(2)} ms = ${
      report.readback_overhead_pct.toFixed(2)
    }% of training time when logging every ${report.log_every} steps`,
    `loss: ${report.loss_first.toFixed(4)} (first step) → ${report.loss_last.toFixed(4)}`,
  ];
}

/**
 * The flags of `bench step`.
 *
 * @example
 * ```ts
 * import { flagHelp } from "./_args.ts";
 * import { BENCH_FLAGS } from "./bench.ts";
 * console.log(flagHelp(BENCH_FLAGS));
 * ```
 */
export const BENCH_FLAGS: Record<string, FlagSpec> = {
  method: { type: "string", help: "vera | lora | full" },
  layers: { type: "string", help: "transformer blocks", default: "2" },
  "d-model": { type: "string", help: "model width", default: "64" },
  heads: { type: "string", help: "attention heads", default: "4" },
  seq: { type: "string", help: "sequence length", default: "32" },
  batch: { type: "string", help: "batch size", default: "8" },
  vocab: { type: "string", help: "vocabulary size", default: "96" },
  r: { type: "string", help: "rank (default 256 for vera, 8 for lora)" },
  targets: { type: "string", help: "adapted modules, comma-separated", default: "q_proj,v_proj" },
  steps: { type: "string", help: "timed steps (after the first and the warm-up)", default: "20" },
  warmup: { type: "string", help: "untimed steps after the first", default: "2" },
  block: { type: "string", help: "steps per readback (default: readback ≤ 5% of a block)" },
  seed: { type: "string", help: "seed of weights, projections and tokens", default: "0" },
  backend: { type: "string", help: "webgpu | wasm | cpu", default: "webgpu" },
  cold: {
    type: "boolean",
    help:
      "disable the driver's on-disk shader cache (Mesa, NVIDIA) so the first step compiles every shader",
  },
  json: { type: "boolean", help: "print only a JSON summary on stdout (the rest goes to stderr)" },
};

/** Env vars that turn off the on-disk shader caches of Mesa (llvmpipe) and NVIDIA's driver. */
const SHADER_CACHE_OFF = { MESA_SHADER_CACHE_DISABLE: "true", __GL_SHADER_DISK_CACHE: "0" };

function int(values: Record<string, unknown>, name: string, min = 1): number {
  return intFlag(values, name, min)!;
}

/**
 * `bench step`: measure one training step and print a report (and with
 * `--json`, one JSON object as the last line).
 *
 * @example
 * ```ts
 * import { benchCommand } from "./bench.ts";
 * await benchCommand(["step", "--method", "lora", "--layers", "1", "--d-model", "16", "--heads", "2",
 *   "--seq", "8", "--batch", "2", "--vocab", "16", "--steps", "3", "--json"]);
 * ```
 */
export async function benchCommand(args: readonly string[]): Promise<void> {
  const { values, positionals } = parseFlags("bench", args, BENCH_FLAGS);
  if (positionals.length !== 1 || positionals[0] !== "step") {
    throw new UsageError(
      `bench: expected the subcommand "step", got ${
        positionals.length ? `"${positionals.join(" ")}"` : "none"
      } (usage: bench step --method vera|lora|full)`,
    );
  }
  const method = required(values, "method", "bench step");
  if (method !== "vera" && method !== "lora" && method !== "full") {
    throw new UsageError(`bench step: --method must be vera, lora or full, got "${method}"`);
  }
  const backend = await resolveBackend(backendFlag(String(values.backend)));
  const targets = String(values.targets).split(",").map((t) => t.trim()).filter((t) => t);
  if (method !== "full" && targets.length === 0) {
    throw new UsageError(`bench step: --targets names no module`);
  }
  const config: StepBenchConfig = {
    method,
    backend,
    layers: int(values, "layers"),
    dModel: int(values, "d-model"),
    heads: int(values, "heads"),
    seq: int(values, "seq"),
    batch: int(values, "batch"),
    vocab: int(values, "vocab", 2),
    r: intFlag(values, "r"),
    targets,
    seed: int(values, "seed", 0),
  };
  if (config.dModel % config.heads !== 0) {
    throw new UsageError(
      `bench step: --heads ${config.heads} does not divide --d-model ${config.dModel}`,
    );
  }
  const steps = int(values, "steps");
  const warmup = int(values, "warmup", 0);
  const block = intFlag(values, "block");
  if (values.cold) { for (const [k, v] of Object.entries(SHADER_CACHE_OFF)) Deno.env.set(k, v); }
  try {
    stepGraphs(config); // a bad target or shape is the user's input, reported before any GPU work
  } catch (e) {
    throw new UsageError(`bench step: ${(e as Error).message}`);
  }
  const report = await measureStep(config, {
    steps,
    warmup,
    block,
    shaderCache: values.cold ? "disabled" : "default",
  });
  for (const line of formatReport(report)) humanOutput(values)(line);
  if (values.json) console.log(JSON.stringify(report));
}
