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
import { type Graph, trainableParams } from "../compiler/ir.ts";
import { deriveSeed } from "../data/batches.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { type Checkpoint, type Json, saveCheckpoint } from "./checkpoint.ts";
import { hyperparameterFeeds } from "./optim.ts";
import { cpuRunner, type RunnerFactory, type StepRunner, updatedParams } from "./runner.ts";
import type { Schedule } from "./schedule.ts";
import { type BatchSource, type EvalBatch, type EvalMetrics, evaluateModel } from "./evaluation.ts";
import { MetricsLog, type MetricsRecord } from "./metrics.ts";
import { lossPlotSvg } from "./_plot.ts";
import { createProgress, type ProgressMode } from "./progress.ts";
import { checkResumable, finishedResult, startingParams } from "./_resume.ts";
import { NONFINITE_STEP, watchNonFinite } from "./_nonfinite.ts";

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

function lrsAt(lr: TrainOptions["lr"], step: number): Record<string, number> {
  if (typeof lr === "function") return { default: lr(step) };
  return Object.fromEntries(Object.entries(lr).map(([group, s]) => [group, s(step)]));
}

async function writePlot(outDir: string | undefined, records: readonly MetricsRecord[]) {
  if (outDir === undefined || records.length === 0) return;
  await writeFileAtomic(`${outDir}/loss.svg`, await lossPlotSvg(records));
}

async function freshEval(
  factory: RunnerFactory,
  spec: NonNullable<TrainOptions["eval"]>,
  initial: Record<string, Float32Array>,
): Promise<StepRunner> {
  const runner = await factory(spec.graph);
  const values: Record<string, Float32Array> = {};
  for (const p of spec.graph.params) {
    if (!(p.name! in initial)) throw new Error(`train: eval graph param "${p.name}" is unknown`);
    values[p.name!] = initial[p.name!];
  }
  await runner.setParams(values);
  return runner;
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
  const watching = NONFINITE_STEP in stepGraph.outputs;
  checkSteps(steps, "steps");
  checkSteps(options.logEvery, "logEvery");
  checkSteps(options.evalEvery, "evalEvery");
  checkSteps(options.checkpoint?.every, "checkpoint.every");
  const start = resume?.step ?? 0;
  const logEvery = options.logEvery ?? 25;
  const seed = resume?.rng !== undefined && resume.rng !== null
    ? Number((resume.rng as { seed: number }).seed)
    : options.seed ?? 0;
  const initial = startingParams(options);
  if (watching) initial[NONFINITE_STEP] = new Float32Array(1);
  if (start > steps) {
    throw new Error(`resume: the checkpoint is at step ${start}, past the last step ${steps}`);
  }
  const factory = options.runner ?? ((g: Graph) => cpuRunner(g));
  const updated = updatedParams(options.step);
  const trainable = trainableParams(stepGraph).map((p) => p.name!);
  const hasDropout = stepGraph.inputs.some((n) => n.name === "dropoutSeed");
  hyperparameterFeeds(stepGraph, { step: start + 1, lr: lrsAt(options.lr, start + 1) }); // fail early
  const shapes = Object.fromEntries(stepGraph.params.map((p) => [p.name!, [...p.shape]]));

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
  let compileMs = performance.now() - compileStart;
  const interrupt = interruptWatch(!!options.stopOnInterrupt, (l) => progress.message(l));
  let evalRunner: StepRunner | undefined;
  let note: Readonly<Record<string, number>> = options.resumeNote ?? {};
  let lastCheckpoint = resume && options.checkpoint
    ? { step: resume.step, path: options.checkpoint.path }
    : undefined;
  let last: { loss?: number; gradNorm?: number; tokensPerS?: number } = {};
  let lastEval: EvalMetrics | undefined;
  let trainMs = 0, tokens = 0, windowTokens = 0, windowStart = performance.now();
  const evaluate = async () => {
    evalRunner ??= await freshEval(factory, options.eval!, initial);
    const evalNames = trainable.filter((n) => options.eval!.graph.params.some((p) => p.name === n));
    await evalRunner.setParams(await runner.readParams(evalNames));
    return await evaluateModel(evalRunner, options.eval!.batches());
  };
  const evalText = (m: EvalMetrics) =>
    `val loss ${m.loss.toFixed(4)}` +
    (m.accuracy === undefined ? "" : ` acc ${(100 * m.accuracy).toFixed(1)}%`);
  const log = async (record: MetricsRecord) => {
    records.push(record);
    await metrics?.append(record);
    options.onRecord?.(record);
  };
  const saveAt = async (s: number) => {
    const { path, config } = options.checkpoint!;
    await saveCheckpoint(path, {
      step: s,
      params: await runner.readParams(updated),
      shapes,
      data: source.state as Json,
      rng: { seed },
      config,
    });
    lastCheckpoint = { step: s, path };
  };
  try {
    await runner.setParams(initial);
    if (options.evalAtStart && options.eval !== undefined && start === 0) {
      progress.message("evaluating the untrained model…", { pause: true });
      const m = await evaluate();
      const record: MetricsRecord = {
        step: 0,
        eval_loss: m.loss,
        ...(m.accuracy === undefined ? {} : { eval_accuracy: m.accuracy }),
      };
      await log(record);
      progress.message(`step 0: ${evalText(m)}`);
    }
    windowStart = performance.now(); // the step-0 evaluation is no part of the first step's time
    progress.resume();
    for (let s = start + 1; s <= steps; s++) {
      if (interrupt.requested() && s > start + 1) {
        // The data position saved is the next batch's: resuming runs step s next.
        progress.message(`saving the checkpoint at step ${s - 1}…`, { pause: true });
        await saveAt(s - 1);
        await writePlot(options.outDir, records);
        throw new TrainInterrupted(s - 1, options.checkpoint!.path);
      }
      const feeds = source.next();
      if (feeds === undefined) throw new Error(`train: the data ran out before step ${s}`);
      const lrs = lrsAt(options.lr, s);
      const hyper: Record<string, Float32Array | Uint32Array> = hyperparameterFeeds(stepGraph, {
        step: s,
        lr: lrs,
      });
      if (hasDropout) hyper.dropoutSeed = Uint32Array.of(deriveSeed(seed, s));
      const every = (n: number | undefined) => n !== undefined && s % n === 0;
      const isCheckpoint = options.checkpoint !== undefined &&
        (every(options.checkpoint.every) || s === steps);
      const isEval = options.eval !== undefined && (every(options.evalEvery) || s === steps);
      const first = s === start + 1;
      const logged = first || s === steps || every(logEvery) || isCheckpoint || isEval;
      const batchTokens = (feeds.tokens as ArrayLike<number> | undefined)?.length ?? 0;
      tokens += batchTokens;
      windowTokens += batchTokens;
      const out = await runner.run({ ...feeds, ...hyper }, {
        read: logged ? ["loss", "grad_norm", ...(watching ? [NONFINITE_STEP] : [])] : [],
      });
      if (!logged) {
        progress.update(s, { loss: last.loss, lr: lrs.default ?? NaN, tokens, logged });
        continue;
      }
      const ms = performance.now() - windowStart;
      trainMs += ms;
      if (first && s < steps) {
        compileMs += ms;
        trainMs -= ms;
        tokens -= batchTokens;
        if (runner.kernels !== undefined) {
          progress.message(
            `compiled ${runner.kernels} kernels in ${(compileMs / 1000).toFixed(1)} s ` +
              `(the first step included)`,
            { pause: true },
          );
        }
      }
      const loss = out.loss[0], gradNorm = out.grad_norm[0];
      const tokensPerS = windowTokens / Math.max(ms / 1000, 1e-9);
      windowTokens = 0;
      last = { loss, gradNorm, tokensPerS };
      const record: Record<string, number> = {
        step: s,
        loss,
        lr: lrs.default ?? 0,
        grad_norm: gradNorm,
        tokens_per_s: tokensPerS,
        ...note,
      };
      note = {};
      for (const [group, v] of Object.entries(lrs)) {
        if (group !== "default") record[`lr.${group}`] = v;
      }
      const firstBad = watching ? out[NONFINITE_STEP][0] : 0;
      if (firstBad > 0 || !Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        await log(record as MetricsRecord);
        throw new NonFiniteError(
          firstBad > 0 ? firstBad : s,
          { loss, gradNorm },
          lastCheckpoint,
          s,
        );
      }
      let evalNote: string | undefined;
      if (isEval) {
        if (s === steps) progress.message("running the final evaluation…", { pause: true });
        else progress.pause();
        lastEval = await evaluate();
        record.eval_loss = lastEval.loss;
        if (lastEval.accuracy !== undefined) record.eval_accuracy = lastEval.accuracy;
        evalNote = evalText(lastEval);
      }
      await log(record as MetricsRecord);
      if (isCheckpoint) {
        progress.pause();
        await saveAt(s);
      }
      progress.resume();
      progress.update(s, { loss, lr: lrs.default ?? NaN, tokens, logged, note: evalNote });
      windowStart = performance.now();
    }
    const ran = steps - start > 1 ? steps - start - 1 : 1; // the first step is compiling
    await writePlot(options.outDir, records);
    return {
      step: steps,
      loss: last.loss!,
      gradNorm: last.gradNorm!,
      ...(lastEval ? { eval: lastEval } : {}),
      stepMs: trainMs / ran,
      tokensPerS: tokens / Math.max(trainMs / 1000, 1e-9),
      records,
      params: await runner.readParams(updated),
    };
  } catch (e) {
    // Keep what the run got to: the curve up to the failure (best effort; the error matters more).
    await writePlot(options.outDir, records).catch(() => {});
    throw e;
  } finally {
    interrupt.close();
    progress.stop();
    metrics?.close();
    runner.dispose();
    evalRunner?.dispose();
  }
}
