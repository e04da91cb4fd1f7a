/**
 * The training loop. One run of the step graph (forward, backward,
 * optimizer: see `trainStep`) per batch, through a {@link StepRunner}, so
 * params and optimizer state stay wherever the runner keeps them. The loss
 * is read back only on logged steps; every other step runs with `read: []`
 * and can be queued. Around the loop: learning-rate schedules fed as the `lr`
 * inputs, evaluation, progress on stderr, `metrics.jsonl` and `loss.svg`,
 * atomic checkpoints, exact resume, and a guard that stops on a non-finite
 * loss or gradient norm.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { lmBatches } from "../data/batches.ts";
 * import { adamw, trainStep } from "./optim.ts";
 * import { constant } from "./schedule.ts";
 * import { sourceOf, train } from "./trainer.ts";
 * const model = gptGraph(
 *   { vocabSize: 260, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1, head: "lm" },
 *   { batch: 2, seqLen: 8 },
 * );
 * const result = await train({
 *   step: trainStep(model, { optimizer: adamw() }),
 *   params: initParams(model, { seed: 0 }),
 *   data: () => sourceOf(lmBatches(["anna", "bob", "carla", "dave", "eve"], { batchSize: 2, seqLen: 8 })),
 *   steps: 3,
 *   lr: constant(1e-2),
 *   progress: "none",
 * });
 * strictEqual(result.step, 3);
 * // Below ln 260 ≈ 5.56, the loss of a uniform guess, after three steps:
 * ok(Math.abs(result.loss - 5.3) < 0.1, `loss ${result.loss}`);
 * ```
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { hyperparameterFeeds } from "./optim.ts";
import { cpuRunner, updatedParams } from "./runner.ts";
import { MetricsLog, type MetricsRecord } from "./metrics.ts";
import { createProgress } from "./progress.ts";
import { checkResumable, finishedResult, startingParams } from "./_resume.ts";
import { NONFINITE_STEP, watchNonFinite } from "./_nonfinite.ts";
import type { TrainOptions, TrainResult } from "./train_types.ts";
import { lrsAt, TrainLoop, writePlot } from "./_train_loop.ts";

export {
  classifierEvalBatches,
  evaluateModel,
  feedsOf,
  lmEvalBatches,
  sourceOf,
} from "./evaluation.ts";
export type { BatchSource, EvalBatch, EvalMetrics } from "./evaluation.ts";
export type { MetricsRecord } from "./metrics.ts";
export type { ProgressMode } from "./progress.ts";

export type { TrainOptions, TrainResult } from "./train_types.ts";
export { NonFiniteError, TrainInterrupted } from "./train_types.ts";

/** Listens for Ctrl-C while a run goes: the first asks it to stop, a second exits at once. */
function interruptWatch(
  enabled: boolean,
  say: (line: string) => void,
): { readonly requested: () => boolean; readonly close: () => void } {
  if (!enabled) return { requested: () => false, close() {} };
  let requested = false;
  const onSignal = () => {
    if (requested) Deno.exit(130);
    requested = true;
    // Unlogged steps are queued without waiting, so the signal is seen at the next logged step.
    say(
      "interrupted: saving a checkpoint at the next logged step (Ctrl-C again to quit without it)",
    );
  };
  Deno.addSignalListener("SIGINT", onSignal);
  return {
    requested: () => requested,
    close: () => Deno.removeSignalListener("SIGINT", onSignal),
  };
}

function checkSteps(value: number | undefined, what: string): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
    throw new Error(`train: ${what} must be an integer ≥ 1, got ${value}`);
  }
}

/**
 * Runs training (see the module doc) and returns the final metrics and params.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { adamw, trainStep } from "./optim.ts";
 * import { constant } from "./schedule.ts";
 * import { train } from "./trainer.ts";
 * const model = trace((x) => ({ loss: x.sub(param("w", [2])).square().sum() }), [{ name: "x", shape: [2] }]);
 * const result = await train({
 *   step: trainStep(model, { optimizer: adamw({ weightDecay: 0 }) }),
 *   params: { w: new Float32Array(2) },
 *   data: () => ({ next: () => ({ x: [1, -1] }), state: null }),
 *   steps: 100,
 *   lr: constant(0.05),
 *   progress: "none",
 * });
 * const [w0, w1] = result.params.w;
 * ok(Math.abs(w0 - 1) < 0.01 && Math.abs(w1 + 1) < 0.01, `w ${result.params.w}`);
 * ```
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { steps, resume } = options;
  // The guard: the first non-finite step is recorded on the device every step.
  const stepGraph = watchNonFinite(options.step);
  checkSteps(steps, "steps");
  checkSteps(options.logEvery, "logEvery");
  checkSteps(options.evalEvery, "evalEvery");
  checkSteps(options.checkpoint?.every, "checkpoint.every");
  const start = resume?.step ?? 0;
  const seed = resume?.rng !== undefined && resume.rng !== null
    ? Number((resume.rng as { seed: number }).seed)
    : options.seed ?? 0;
  const initial = startingParams(options);
  if (NONFINITE_STEP in stepGraph.outputs) initial[NONFINITE_STEP] = new Float32Array(1);
  if (start > steps) {
    throw new Error(`resume: the checkpoint is at step ${start}, past the last step ${steps}`);
  }
  const factory = options.runner ?? ((g: Graph) => cpuRunner(g));
  const updated = updatedParams(options.step);
  hyperparameterFeeds(stepGraph, { step: start + 1, lr: lrsAt(options.lr, start + 1) }); // fail early

  const source = options.data(resume?.data ?? undefined);
  if (resume !== undefined) checkResumable(resume, source, options.checkpoint?.path);

  if (options.outDir !== undefined) await Deno.mkdir(options.outDir, { recursive: true });
  const metrics = options.outDir === undefined
    ? undefined
    : await MetricsLog.open(`${options.outDir}/metrics.jsonl`, { keepUpTo: resume?.step });
  const records: MetricsRecord[] = [...(metrics?.records ?? [])];
  if (resume !== undefined && start === steps) {
    // Interrupted after its last checkpoint: nothing to run, only the outputs to finish.
    metrics?.close();
    await writePlot(options.outDir, records);
    return finishedResult(resume, records, updated);
  }
  if (options.stopOnInterrupt && options.checkpoint === undefined) {
    throw new Error("train: stopOnInterrupt needs checkpoint (where the run is saved)");
  }
  const progress = createProgress({
    total: steps,
    start,
    mode: options.progress,
    write: options.log,
  });
  if (resume !== undefined) {
    progress.message(
      `resuming from step ${start} of ${steps}` +
        (options.checkpoint ? ` (${options.checkpoint.path})` : ""),
    );
  }
  // Compiling is a phase of its own: minutes for a large graph on a software
  // GPU, and no part of the time per step. Drivers finish compiling shaders
  // at their first dispatch, so the first step counts as compiling too: it is
  // read back, and kept out of the speed and the ETA when more steps follow.
  const compileStart = performance.now();
  progress.message("compiling the training step…", { pause: true });
  const runner = await factory(stepGraph, {
    onKernels: (n) => progress.message(`compiling ${n} kernels…`, { pause: true }),
  });
  const compileMs = performance.now() - compileStart;
  const setup = { options, stepGraph, runner, factory, progress, source, metrics, records };
  const loop = new TrainLoop({ ...setup, initial, start, seed, compileMs }, updated);
  const interrupt = interruptWatch(!!options.stopOnInterrupt, (l) => progress.message(l));
  try {
    await runner.setParams(initial);
    await loop.evaluateAtStart();
    loop.startClock(); // the step-0 evaluation is no part of the first step's time
    progress.resume();
    for (let s = start + 1; s <= steps; s++) {
      if (interrupt.requested() && s > start + 1) await loop.interrupt(s - 1);
      await loop.step(s);
    }
    return await loop.result();
  } catch (e) {
    // Keep what the run got to: the curve up to the failure (best effort; the error matters more).
    await writePlot(options.outDir, records).catch(() => {});
    throw e;
  } finally {
    interrupt.close();
    progress.stop();
    metrics?.close();
    runner.dispose();
    loop.dispose();
  }
}
