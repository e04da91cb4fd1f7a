/**
 * Learning-rate schedules: plain functions from the 1-based optimizer step to
 * the learning rate, fed to a step graph's `lr` input each step.
 *
 * The warm-up and decay formulas are Hugging Face's
 * `get_cosine_schedule_with_warmup` (with `num_cycles = 0.5`, and
 * `get_cosine_with_min_lr_schedule_with_warmup` when `minLr` is set) and
 * `get_linear_schedule_with_warmup`, evaluated at `step`:
 *
 * - warm-up, `step < warmupSteps`: `peak · step / warmupSteps`;
 * - then, with `progress = (step − warmupSteps) / max(1, totalSteps − warmupSteps)`:
 *   - cosine: `minLr + (peak − minLr) · ½ (1 + cos(π · min(1, progress)))`,
 *   - linear: `minLr + (peak − minLr) · max(0, (totalSteps − step) / max(1, totalSteps − warmupSteps))`
 *     (that is `1 − progress`, clamped at 0).
 *
 * So step 1 trains at `peak / warmupSteps`, step `warmupSteps` at `peak`, and
 * step `totalSteps` at `minLr`. Hugging Face's `Trainer` applies `λ(s − 1)` to
 * its `s`-th update (the scheduler is stepped after the optimizer, so its
 * first update has rate 0 when there is a warm-up): to replay such a run
 * exactly, feed `schedule(step - 1)` (step 0 is accepted for this). Past
 * `totalSteps` the rate stays at `minLr` (Hugging Face's cosine would rise
 * again).
 *
 * @module
 */

/** A learning-rate schedule: the rate for a 1-based step (0 is accepted, see the module doc). */
export type Schedule = (step: number) => number;

/** Options of {@link warmupCosine} and {@link warmupLinear}. */
export interface WarmupOptions {
  /** The rate reached at the end of warm-up. */
  readonly peak: number;
  /** Steps of linear warm-up from 0 (0: start at `peak`). */
  readonly warmupSteps: number;
  /** The step at which the decay reaches `minLr`. */
  readonly totalSteps: number;
  /** The floor of the decay (default 0, as in Hugging Face). */
  readonly minLr?: number;
}

function checkRate(value: number, what: string, where: string): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new Error(`${where}: ${what} must be a finite number ≥ 0, got ${value}`);
  }
}

function checkCount(value: number, what: string, where: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`${where}: ${what} must be an integer ≥ ${min}, got ${value}`);
  }
}

function checkStep(step: number, where: string): void {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new Error(
      `${where}: step must be an integer ≥ 0 (1-based; 0 for replaying Hugging Face), got ${step}`,
    );
  }
}

function checkWarmup(options: WarmupOptions, where: string): Required<WarmupOptions> {
  const { peak, warmupSteps, totalSteps, minLr = 0 } = options;
  checkRate(peak, "peak", where);
  checkRate(minLr, "minLr", where);
  checkCount(warmupSteps, "warmupSteps", where, 0);
  checkCount(totalSteps, "totalSteps", where, 1);
  if (warmupSteps > totalSteps) {
    throw new Error(`${where}: warmupSteps (${warmupSteps}) exceeds totalSteps (${totalSteps})`);
  }
  if (minLr > peak) throw new Error(`${where}: minLr (${minLr}) exceeds peak (${peak})`);
  return { peak, warmupSteps, totalSteps, minLr };
}

/**
 * A schedule that warms up linearly, then follows `minLr + (peak − minLr) · decay(step)`,
 * where `decay` falls from 1 (at `warmupSteps`) to 0 (at `totalSteps`) and is clamped to [0, 1].
 */
function warmupThen(
  options: WarmupOptions,
  where: string,
  decay: (step: number, warmupSteps: number, totalSteps: number) => number,
): Schedule {
  const { peak, warmupSteps, totalSteps, minLr } = checkWarmup(options, where);
  return (step: number): number => {
    checkStep(step, where);
    if (step < warmupSteps) return (peak * step) / warmupSteps;
    const factor = Math.min(1, Math.max(0, decay(step, warmupSteps, totalSteps)));
    return minLr + (peak - minLr) * factor;
  };
}

/**
 * The same rate at every step.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { constant } from "./schedule.ts";
 * strictEqual(constant(3e-4)(10), 0.0003);
 * ```
 */
export function constant(lr: number): Schedule {
  checkRate(lr, "lr", "constant");
  return (step: number): number => {
    checkStep(step, "constant");
    return lr;
  };
}

/**
 * Linear warm-up to `peak`, then half a cosine down to `minLr` at `totalSteps`
 * (Hugging Face's `get_cosine_schedule_with_warmup`; see the module doc for
 * the formula and the step convention).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { warmupCosine } from "./schedule.ts";
 * const lr = warmupCosine({ peak: 1e-3, warmupSteps: 10, totalSteps: 110 });
 * deepStrictEqual([lr(5), lr(10), lr(60), lr(110)], [0.0005, 0.001, 0.0005, 0]);
 * ```
 */
export function warmupCosine(options: WarmupOptions): Schedule {
  return warmupThen(options, "warmupCosine", (step, warmup, total) => {
    const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    return 0.5 * (1 + Math.cos(Math.PI * progress));
  });
}

/**
 * Linear warm-up to `peak`, then a linear decay to `minLr` at `totalSteps`
 * (Hugging Face's `get_linear_schedule_with_warmup`; see the module doc for
 * the formula and the step convention).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { warmupLinear } from "./schedule.ts";
 * const lr = warmupLinear({ peak: 1e-3, warmupSteps: 10, totalSteps: 110 });
 * deepStrictEqual([lr(5), lr(10), lr(60), lr(110)], [0.0005, 0.001, 0.0005, 0]);
 * ```
 */
export function warmupLinear(options: WarmupOptions): Schedule {
  return warmupThen(
    options,
    "warmupLinear",
    (step, warmup, total) => (total - step) / Math.max(1, total - warmup),
  );
}
