/**
 * The trainer's options and results, and the errors a run ends with: what
 * `train` (trainer.ts) takes and gives, on their own so the step loop
 * (_train_loop.ts) can name them.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { Checkpoint, Json } from "./checkpoint.ts";
import type { RunnerFactory } from "./runner.ts";
import type { Schedule } from "./schedule.ts";
import type { BatchSource, EvalBatch, EvalMetrics } from "./evaluation.ts";
import type { MetricsRecord } from "./metrics.ts";
import type { ProgressMode } from "./progress.ts";

/**
 * Options of {@link train}.
 *
 * @example
 * ```ts
 * import type { TrainOptions } from "./trainer.ts";
 * const logging: Partial<TrainOptions> = { logEvery: 10, evalEvery: 100, progress: "lines" };
 * ```
 */
export interface TrainOptions {
  /** The step graph (`trainStep(model, ...)`). */
  readonly step: Graph;
  /** Initial values of the params the step reads; optimizer state defaults to zeros. */
  readonly params: Readonly<Record<string, Float32Array>>;
  /** Training batches; `state` is the saved position when resuming, else undefined. */
  readonly data: (state: unknown) => BatchSource;
  /** The last step to run (steps are 1-based). */
  readonly steps: number;
  /** Learning rate per step: one schedule, or one per group (`default` for `lr`). */
  readonly lr: Schedule | Readonly<Record<string, Schedule>>;
  /** Read back and log the loss every this many steps (default 25, so readbacks stay under 1% of training; also step 1 and the last). */
  readonly logEvery?: number;
  /** The eval graph (a model graph, same param names) and its batches, made afresh per eval. */
  readonly eval?: { readonly graph: Graph; readonly batches: () => Iterable<EvalBatch> };
  /** Evaluate every this many steps (default: only after the last step). */
  readonly evalEvery?: number;
  /**
   * Also evaluate before the first step (default false): logged as a step-0 record with only the
   * `eval_*` fields, so the plot starts from the untrained model.
   */
  readonly evalAtStart?: boolean;
  /** Where `metrics.jsonl` and `loss.svg` go (created if missing); none when absent. */
  readonly outDir?: string;
  /** Write a checkpoint to `path` every `every` steps (default: only the last) with `config`. */
  readonly checkpoint?: { readonly path: string; readonly every?: number; readonly config?: Json };
  /**
   * Continue from this checkpoint (its config must equal `checkpoint.config`; it must hold the data
   * position and RNG state the run saves). A checkpoint at step `steps` runs nothing and returns
   * its params, so an interrupted run can still be finished.
   */
  readonly resume?: Checkpoint;
  /** Fields added to the first record logged after resuming (e.g. a changed total of steps). */
  readonly resumeNote?: Readonly<Record<string, number>>;
  /** Base seed of the per-step `dropoutSeed` input, if the step has one (default 0). */
  readonly seed?: number;
  /** Where graphs run (default: {@link cpuRunner}). */
  readonly runner?: RunnerFactory;
  /** Progress display on stderr (default `auto`). */
  readonly progress?: ProgressMode;
  /** Where plain progress lines go (default `console.error`). */
  readonly log?: (line: string) => void;
  /**
   * On Ctrl-C (SIGINT), finish the current step, write the checkpoint and throw
   * {@link TrainInterrupted} (default false: a library leaves signals alone). Needs `checkpoint`;
   * a second Ctrl-C exits at once.
   */
  readonly stopOnInterrupt?: boolean;
  /** Called with each record as it is logged (after its evaluation, if any). */
  readonly onRecord?: (record: MetricsRecord) => void;
}

/**
 * What {@link train} returns.
 *
 * @example
 * ```ts
 * import type { TrainResult } from "./trainer.ts";
 * const report = (r: TrainResult) => `${r.step} steps, loss ${r.loss}, ${r.stepMs.toFixed(1)} ms/step`;
 * ```
 */
export interface TrainResult {
  /** The last step run. */
  readonly step: number;
  /** Its loss. */
  readonly loss: number;
  /** Its gradient norm. */
  readonly gradNorm: number;
  /** The last evaluation, if any. */
  readonly eval?: EvalMetrics;
  /** Mean wall time per step, evaluation and checkpoints excluded (ms). */
  readonly stepMs: number;
  /** Tokens fed per second over the run. */
  readonly tokensPerS: number;
  /** Every logged record of the run (a resumed run includes the earlier ones). */
  readonly records: readonly MetricsRecord[];
  /** The final values of every param training changed (weights and optimizer state). */
  readonly params: Record<string, Float32Array>;
}

/**
 * Thrown when a read-back loss or gradient norm is NaN or infinite; names
 * the step and the last checkpoint that is still good.
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { NonFiniteError } from "./trainer.ts";
 * const e = new NonFiniteError(7, { loss: NaN, gradNorm: 1 }, { step: 4, path: "ckpt.safetensors" });
 * match(e.message, /^step 7: loss is NaN.*last good checkpoint: step 4 \(ckpt\.safetensors\)/);
 * ```
 */
export class NonFiniteError extends Error {
  /** The first step whose loss or gradient norm was not finite. */
  readonly step: number;
  /** The values read back (at `step`, or at `readAt` when the device flagged an earlier step). */
  readonly values: { readonly loss: number; readonly gradNorm: number };
  /** The step at which the values were read back, when later than `step`. */
  readonly readAt?: number;
  /** The last checkpoint written before it (still good), if any. */
  readonly lastCheckpoint?: { readonly step: number; readonly path: string };

  /**
   * Builds the error for `step`, with what was read and the last good checkpoint.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { NonFiniteError } from "./trainer.ts";
   * strictEqual(new NonFiniteError(3, { loss: Infinity, gradNorm: NaN }).step, 3);
   * ```
   */
  constructor(
    step: number,
    values: { readonly loss: number; readonly gradNorm: number },
    lastCheckpoint?: { readonly step: number; readonly path: string },
    readAt?: number,
  ) {
    const where = lastCheckpoint
      ? `last good checkpoint: step ${lastCheckpoint.step} (${lastCheckpoint.path})`
      : "no checkpoint was written";
    const seen = readAt !== undefined && readAt !== step
      ? `loss or grad_norm first became NaN or infinite (read back at step ${readAt}: loss ${values.loss}, grad_norm ${values.gradNorm})`
      : `loss is ${values.loss}, grad_norm is ${values.gradNorm}`;
    super(`step ${step}: ${seen}; training diverged (${where})`);
    this.name = "NonFiniteError";
    this.step = step;
    if (readAt !== undefined && readAt !== step) this.readAt = readAt;
    this.values = values;
    this.lastCheckpoint = lastCheckpoint;
  }
}

/**
 * Thrown when a run stopped on Ctrl-C after saving its checkpoint; resuming from
 * `checkpoint` continues it exactly.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { TrainInterrupted } from "./trainer.ts";
 * const e = new TrainInterrupted(40, "runs/a/checkpoint.safetensors");
 * strictEqual(e.message, "interrupted at step 40; checkpoint saved to runs/a/checkpoint.safetensors");
 * ```
 */
export class TrainInterrupted extends Error {
  /** The last step run and saved. */
  readonly step: number;
  /** The checkpoint written. */
  readonly checkpoint: string;

  /**
   * Builds the error for a run saved at `step` to `checkpoint`.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { TrainInterrupted } from "./trainer.ts";
   * strictEqual(new TrainInterrupted(3, "ckpt.safetensors").step, 3);
   * ```
   */
  constructor(step: number, checkpoint: string) {
    super(`interrupted at step ${step}; checkpoint saved to ${checkpoint}`);
    this.name = "TrainInterrupted";
    this.step = step;
    this.checkpoint = checkpoint;
  }
}
