/**
 * The options and results of {@link fit}, on their own so that fit's data handling
 * (_fit_data.ts) can name them; import them from fit.ts.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { Adapter } from "../adapters/merge.ts";
import type { VeraConfig } from "../adapters/vera.ts";
import type { LoraConfig } from "../adapters/lora.ts";
import type { TrainStepOptions } from "./optim.ts";
import type { Schedule } from "./schedule.ts";
import type { TrainResult } from "./train_types.ts";
import type { Feed, RunnerFactory } from "./runner.ts";
import type { BackendChoice } from "../backends/compile.ts";
import type { Optimizer } from "./update_rules.ts";
import type { EvalBatch, EvalMetrics } from "./evaluation.ts";
import type { MetricsRecord } from "./metrics.ts";
import type { ProgressMode } from "./progress.ts";
import type { ClassificationBatch, LmBatch } from "../data/batches.ts";
import type { LoadedModel } from "../nn/families.ts";
import type { TargetConfig } from "../adapters/targets.ts";
import type { FitExamples } from "./_fit_model.ts";

/**
 * One batch: named feeds, or a batch from `data/` (`classificationBatches`, `lmBatches`).
 *
 * @example
 * ```ts
 * import type { FitBatch } from "./fit.ts";
 * const batch: FitBatch = { x: new Float32Array([1, 2]) };
 * ```
 */
export type FitBatch = Readonly<Record<string, Feed>> | ClassificationBatch | LmBatch;

/**
 * Training data: an array (cycled through as epochs), a function returning a
 * fresh iterable (called again whenever one runs out), or one iterable (a
 * single pass; running out before `steps` is an error).
 *
 * @example
 * ```ts
 * import type { FitData } from "./fit.ts";
 * const data: FitData = [{ x: [1, 2] }, { x: [3, 4] }];
 * ```
 */
export type FitData = readonly FitBatch[] | (() => Iterable<FitBatch>) | Iterable<FitBatch>;

/**
 * The adapter to train: VeRA or LoRA by config, or a rewrite of your own
 * returning the adapted graph (and its adapter, to export or merge later).
 *
 * @example
 * ```ts
 * import type { FitAdapter } from "./fit.ts";
 * const adapter: FitAdapter = { vera: { r: 16, targetModules: ["q_proj", "v_proj"] } };
 * ```
 */
export type FitAdapter =
  | { readonly vera: FitAdapterConfig<VeraConfig> }
  | { readonly lora: FitAdapterConfig<LoraConfig> }
  | ((model: Graph) => { graph: Graph; adapter?: Adapter });

/**
 * An adapter config for {@link fit}: on a loaded model, `targetModules` defaults to the family's
 * PEFT defaults and a classifier's head is kept trainable (`modulesToSave`) unless given.
 *
 * @example
 * ```ts
 * import type { FitAdapterConfig } from "./fit.ts";
 * import type { VeraConfig } from "../adapters/vera.ts";
 * const config: FitAdapterConfig<VeraConfig> = { r: 256 };
 * ```
 */
export type FitAdapterConfig<C extends TargetConfig> =
  & Omit<C, "targetModules">
  & { readonly targetModules?: C["targetModules"] };

/**
 * What a callback hears after each step.
 *
 * @example
 * ```ts
 * import type { FitStep } from "./fit.ts";
 * const s: FitStep = { step: 3, lr: 1e-3, loss: 0.7, gradNorm: 1.2 };
 * ```
 */
export interface FitStep {
  /** The step just run (1-based). */
  readonly step: number;
  /** Its learning rate (default group). */
  readonly lr: number;
  /** Its loss, on logged steps only (reading it back costs a device sync). */
  readonly loss?: number;
  /** Its gradient norm, on logged steps only. */
  readonly gradNorm?: number;
}

/**
 * Hooks into a run.
 *
 * @example
 * ```ts
 * import type { FitCallbacks } from "./fit.ts";
 * const losses: number[] = [];
 * const callbacks: FitCallbacks = { onStep: (s) => void (s.loss !== undefined && losses.push(s.loss)) };
 * ```
 */
export interface FitCallbacks {
  /** After every step (its loss on logged steps), before that step's evaluation. */
  onStep?(step: FitStep): void;
  /** Each logged record (the `history` entry), after its evaluation: step 0 too. */
  onLog?(record: MetricsRecord): void;
  /** After each evaluation, with its metrics and step (0: before training). */
  onEvaluate?(metrics: { loss: number; accuracy?: number }, step: number): void;
  /** Once the run has finished. */
  onEnd?(result: FitResult): void;
}

/**
 * Options of {@link fit}.
 *
 * @example
 * ```ts
 * import type { FitOptions } from "./fit.ts";
 * const common: Partial<FitOptions> = { steps: 100, schedule: 1e-3, backend: "cpu" };
 * ```
 */
export interface FitOptions {
  /**
   * The model: a traced graph with a scalar `loss` output, or a loaded model (`loadModel`: a
   * Hugging Face directory or a wgrad base file) trained on examples as a classifier or a language
   * model.
   */
  readonly model: Graph | LoadedModel;
  /** The adapter; without one every trainable param of the model trains. */
  readonly adapter?: FitAdapter;
  /** Training batches of a graph, or examples of a loaded model. */
  readonly data: FitData | FitExamples;
  /** A loaded model's batch size (default 8). */
  readonly batch?: number;
  /** A loaded model's tokens per example (default its `maxSeqLen`). */
  readonly seqLen?: number;
  /** A loaded model's classes (default: the largest label + 1). */
  readonly numClasses?: number;
  /** How many steps to run; give this or `epochs`. */
  readonly steps?: number;
  /**
   * How many passes over the data to run instead of `steps` (one step per batch); needs `data` to
   * be an array or a function returning a fresh iterable, so that a pass can be counted.
   */
  readonly epochs?: number;
  /**
   * Initial values (e.g. pretrained weights); params missing here are initialized from `seed`,
   * names the model lacks are skipped (at least one must be the model's).
   */
  readonly params?: Readonly<Record<string, Float32Array>>;
  /** The update rule (default {@link adamw} with its defaults). */
  readonly optimizer?: Optimizer;
  /** Learning rate: a number, a schedule, or one schedule per param group (default 1e-3). */
  readonly schedule?: number | Schedule | Readonly<Record<string, Schedule>>;
  /** Param groups and gradient clipping, as {@link trainStep} takes them. */
  readonly step?: Omit<TrainStepOptions, "optimizer">;
  /**
   * Evaluate the adapted model on these batches every `every` steps (default: after the last),
   * and before the first step unless `atStart` is false (a step-0 record in the history).
   */
  readonly eval?: {
    /** Eval batches of a graph. */
    readonly batches?: readonly EvalBatch[] | (() => Iterable<EvalBatch>);
    /** Examples, for a loaded model. */
    readonly examples?: FitExamples;
    readonly every?: number;
    readonly atStart?: boolean;
  };
  /** Called as the run goes. */
  readonly callbacks?: FitCallbacks;
  /** Run directory: `metrics.jsonl`, `loss.svg` and `checkpoint.safetensors` go here. */
  readonly outDir?: string;
  /** Write a checkpoint every this many steps (default: at the last step); needs `outDir`. */
  readonly checkpointEvery?: number;
  /** `cpu` (default; the float64 reference), `webgpu`, or a runner factory of your own. */
  readonly backend?: BackendChoice | RunnerFactory;
  /** Read back and log the loss every this many steps (default 25, and the first and last). */
  readonly logEvery?: number;
  /** Progress on stderr (default `none`, as a library should be quiet; `auto` for a bar). */
  readonly progress?: ProgressMode;
  /** Seed of fresh params (default 0). */
  readonly seed?: number;
  /**
   * On Ctrl-C, save the checkpoint and reject with `TrainInterrupted` (default false: a library
   * leaves signals alone); needs `outDir`.
   */
  readonly stopOnInterrupt?: boolean;
}

/**
 * What {@link fit} returns.
 *
 * @example
 * ```ts
 * import type { FitResult } from "./fit.ts";
 * const last = (r: FitResult) => r.history.at(-1)?.loss;
 * ```
 */
export interface FitResult {
  /** Every logged step's record (`step`, `loss`, `lr`, `grad_norm`, `eval_loss`, ...). */
  readonly history: readonly MetricsRecord[];
  /** Every param of the trained graph after training (frozen ones as given). */
  readonly params: Record<string, Float32Array>;
  /** The graph that was trained (the model, rewritten by the adapter if any). */
  readonly graph: Graph;
  /** The adapter, to export (`exportPeft`) or merge. */
  readonly adapter?: Adapter;
  /** The last evaluation, if any. */
  readonly eval?: EvalMetrics;
  /** Everything {@link train} returned. */
  readonly result: TrainResult;
}
