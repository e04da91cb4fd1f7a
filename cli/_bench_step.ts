/**
 * What a `bench step` measures, ready to run: the GPT's training step for a
 * method, random frozen weights and token batches, compiled on a backend.
 * The bench scripts and peers share it.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { compile } from "../backends/compile.ts";
import type { BackendName, Executable, RunResult } from "../backends/executable.ts";
import { defaultThreads } from "../backends/wasm/mod.ts";
import { type GpuContext, requestGpu } from "../backends/webgpu/device.ts";
import { gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { vera } from "../adapters/vera.ts";
import { lora } from "../adapters/lora.ts";
import { adamw, hyperparameterFeeds, initOptimizerState, trainStep } from "../train/optim.ts";

/**
 * Fine-tuning methods `bench step` measures.
 *
 * @example
 * ```ts
 * import type { BenchMethod } from "./bench.ts";
 * const methods: BenchMethod[] = ["vera", "lora", "full"];
 * ```
 */
export type BenchMethod = "vera" | "lora" | "full";

/**
 * What to build: the reference GPT (docs/ARCHITECTURE.md §9) with an LM head, and the method.
 *
 * @example
 * ```ts
 * import type { StepBenchConfig } from "./bench.ts";
 * const config: StepBenchConfig = {
 *   method: "vera", layers: 2, dModel: 64, heads: 4, seq: 32, batch: 8, vocab: 96,
 *   r: 256, targets: ["q_proj", "v_proj"],
 * };
 * ```
 */
export interface StepBenchConfig {
  /** `vera`, `lora` or `full` (every weight trains). */
  readonly method: BenchMethod;
  /** Transformer blocks. */
  readonly layers: number;
  /** Model width. */
  readonly dModel: number;
  /** Attention heads. */
  readonly heads: number;
  /** Sequence length (also the model's maxSeqLen). */
  readonly seq: number;
  /** Batch size. */
  readonly batch: number;
  /** Vocabulary size. */
  readonly vocab: number;
  /** Adapter rank (default 256 for vera, 8 for lora; ignored by full). */
  readonly r?: number;
  /** Adapted modules (PEFT's `target_modules`). */
  readonly targets: readonly string[];
  /** `webgpu` (default) or the `cpu` reference interpreter. */
  readonly backend?: BackendName;
  /** Seed of the weights, the projections and the tokens (default 0). */
  readonly seed?: number;
}

/** Learning rates of the methods, shared with the peers; they do not change the timing. */
const LEARNING_RATE: Record<BenchMethod, number> = { vera: 1e-2, lora: 3e-3, full: 1e-3 };

/**
 * One batch of the LM head's inputs.
 *
 * @example
 * ```ts
 * import type { TokenBatch } from "./bench.ts";
 * const batch: TokenBatch = { tokens: new Int32Array(8), targets: new Int32Array(8) };
 * ```
 */
export interface TokenBatch {
  /** `[batch, seq]` token ids. */
  readonly tokens: Int32Array;
  /** `[batch, seq]` next-token targets. */
  readonly targets: Int32Array;
}

/**
 * `count` batches of uniformly random tokens and targets in `[0, vocab)`,
 * from a fixed LCG so every peer sees the same data.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { randomBatches } from "./bench.ts";
 * const [b] = randomBatches({ batch: 2, seq: 4, vocab: 10 }, { count: 1, seed: 0 });
 * strictEqual(b.tokens.length, 8);
 * ok(b.tokens.every((t) => t >= 0 && t < 10));
 * ```
 */
export function randomBatches(
  shape: { readonly batch: number; readonly seq: number; readonly vocab: number },
  options: { readonly count: number; readonly seed?: number },
): TokenBatch[] {
  let state = (0x9e3779b9 ^ (options.seed ?? 0)) >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 2 ** 32) * shape.vocab);
  };
  const n = shape.batch * shape.seq;
  return Array.from({ length: options.count }, () => ({
    tokens: Int32Array.from({ length: n }, next),
    targets: Int32Array.from({ length: n }, next),
  }));
}

/**
 * The graphs of a configuration: the GPT, the adapted model and its training step.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { stepGraphs } from "./bench.ts";
 * const { step } = stepGraphs({
 *   method: "lora", layers: 1, dModel: 8, heads: 2, seq: 4, batch: 1, vocab: 8, r: 2,
 *   targets: ["q_proj"],
 * });
 * deepStrictEqual(step.inputs.map((n) => n.name), ["tokens", "targets", "lr", "step"]);
 * ```
 */
export function stepGraphs(config: StepBenchConfig): { model: Graph; step: Graph } {
  const base = gptGraph(
    {
      vocabSize: config.vocab,
      maxSeqLen: config.seq,
      dModel: config.dModel,
      heads: config.heads,
      layers: config.layers,
      head: "lm",
    },
    { batch: config.batch, seqLen: config.seq },
  );
  const targetModules = [...config.targets];
  const model = config.method === "vera"
    ? vera(base, { r: config.r ?? 256, targetModules, projectionPrngKey: config.seed ?? 0 }).graph
    : config.method === "lora"
    ? lora(base, { r: config.r ?? 8, alpha: config.r ?? 8, targetModules }).graph
    : base;
  return { model, step: trainStep(model, { optimizer: adamw() }) };
}

/**
 * A compiled training step with resident params, ready to time.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { prepareStep } from "./bench.ts";
 * const prepared = await prepareStep({
 *   method: "vera", layers: 1, dModel: 16, heads: 2, seq: 8, batch: 2, vocab: 16, r: 8,
 *   targets: ["q_proj", "v_proj"],
 * });
 * // Random weights and tokens: a loss of about ln 16 per token, on the first step and later ones.
 * ok(Math.abs(prepared.firstLoss - Math.log(16)) < 0.1);
 * ok(Math.abs(await prepared.run(3) - Math.log(16)) < 0.1);
 * prepared.dispose();
 * ```
 */
export interface PreparedStep {
  /** The executable of the step graph. */
  readonly exe: Executable;
  /** The step graph (model, backward, AdamW). */
  readonly step: Graph;
  /** Graph building, compilation, upload, the first step and its loss readback, in ms (not the host's drawing of random weights). */
  readonly firstStepMs: number;
  /** Of which `compile()` (passes and pipeline creation), in ms. */
  readonly compileMs: number;
  /** The loss the first step computed (before its update). */
  readonly firstLoss: number;
  /** Elements of the trainable params. */
  readonly trainableParams: number;
  /** Elements of all model params (frozen and trainable, without optimizer state). */
  readonly totalParams: number;
  /** The adapter's description (`navigator.gpu`'s, or the cpu interpreter). */
  readonly adapter: string;
  /** Runs `k` more steps, reading back only the last loss; resolves with it once the GPU is done. */
  run(k: number): Promise<number>;
  /** Host time the last `run(k)` took to submit its k steps (before waiting for the loss), ms. */
  readonly lastSubmitMs: number;
  /** Median time of `times` loss readbacks with nothing queued, in ms. */
  readbackMs(times?: number): Promise<number>;
  /** Releases the executable's buffers. */
  dispose(): void;
}

/**
 * Options of {@link prepareStep}.
 *
 * @example
 * ```ts
 * import type { PrepareStepOptions } from "./bench.ts";
 * const options: PrepareStepOptions = { params: { "layers.0.attn.q_proj.vera_lambda_b": new Float32Array(16).fill(0.5) } };
 * ```
 */
export interface PrepareStepOptions {
  /** Values replacing the seeded init of some params (peers load the same ones). */
  readonly params?: Readonly<Record<string, Float32Array>>;
  /** The batches to cycle through (default: 4 from {@link randomBatches}). */
  readonly batches?: readonly TokenBatch[];
  /** The GPU context (default the shared `requestGpu()` one). */
  readonly device?: GpuContext;
}

const CPU_ADAPTER = "cpu (float64 reference interpreter, f32 rounding)";

/**
 * Builds, compiles and runs the first step of a configuration; the clock runs
 * from graph building to the first loss on the host, except while the host
 * draws the random weights.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { prepareStep } from "./bench.ts";
 * const prepared = await prepareStep({
 *   method: "lora", layers: 1, dModel: 16, heads: 2, seq: 8, batch: 2, vocab: 16, r: 4,
 *   targets: ["q_proj"], backend: "cpu",
 * });
 * ok(prepared.firstStepMs > 0);
 * ok(prepared.exe.stats.kernelsPerRun > 0);
 * ```
 */
export async function prepareStep(
  config: StepBenchConfig,
  options: PrepareStepOptions = {},
): Promise<PreparedStep> {
  const backend = config.backend ?? "webgpu";
  const gpu = backend === "webgpu" ? options.device ?? await requestGpu() : undefined;
  const batches = options.batches ?? randomBatches(config, { count: 4, seed: config.seed ?? 0 });
  const lr = LEARNING_RATE[config.method];
  const start = performance.now();
  const { model, step } = stepGraphs(config);
  const graphMs = performance.now() - start;
  // Drawing the random weights on the host is not part of the first step (peers get them ready-made).
  const init = { ...initParams(model, { seed: config.seed ?? 0 }), ...options.params };
  const values = { ...init, ...initOptimizerState(step) };
  const compileStart = performance.now();
  const exe = await compile(step, { backend, device: gpu });
  const compileMs = performance.now() - compileStart;
  exe.setParams(Object.fromEntries(step.params.map((p) => [p.name!, values[p.name!]])));
  let steps = 0;
  let submitMs = 0;
  const run = async (k: number) => {
    let last: RunResult | undefined;
    const t0 = performance.now();
    for (let i = 0; i < k; i++) {
      const b = batches[steps % batches.length];
      steps++;
      const feeds = { tokens: b.tokens, targets: b.targets };
      last = await exe.run({ ...feeds, ...hyperparameterFeeds(step, { step: steps, lr }) }, {
        read: i === k - 1 ? ["loss"] : [],
      });
    }
    submitMs = performance.now() - t0;
    return (await last!.read("loss"))[0];
  };
  const firstLoss = await run(1);
  const firstStepMs = graphMs + performance.now() - compileStart;
  const count = (names: (name: string) => boolean) =>
    model.params.filter((p) => names(p.name!)).reduce((n, p) => n + init[p.name!].length, 0);
  const trainable = new Set(
    model.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name!),
  );
  return {
    exe,
    step,
    firstStepMs,
    compileMs,
    firstLoss,
    trainableParams: count((name) => trainable.has(name)),
    totalParams: count(() => true),
    adapter: gpu?.description ??
      (backend === "wasm" ? `wasm SIMD, ${defaultThreads()} threads` : CPU_ADAPTER),
    run,
    get lastSubmitMs() {
      return submitMs;
    },
    async readbackMs(times = 5) {
      const ms: number[] = [];
      for (let i = 0; i < times; i++) {
        const t0 = performance.now();
        await exe.read("loss");
        ms.push(performance.now() - t0);
      }
      return median(ms);
    },
    dispose: () => exe.destroy(),
  };
}

/**
 * The median of a list of numbers (the upper one of an even count).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { median } from "./bench.ts";
 * strictEqual(median([3, 1, 2]), 2);
 * ```
 */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
