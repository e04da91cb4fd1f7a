// The trainer's step loop: what one step does (feeds, run, what is read back
// and logged), evaluations, checkpoints, the non-finite guard, and the
// timing the progress line and the result report. `train` (trainer.ts) sets
// a run up and drives this loop.
import { type Graph, trainableParams } from "../compiler/ir.ts";
import { deriveSeed } from "../data/batches.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { type Json, saveCheckpoint } from "./checkpoint.ts";
import { hyperparameterFeeds } from "./optim.ts";
import type { RunnerFactory, StepRunner } from "./runner.ts";
import { type BatchSource, type EvalMetrics, evaluateModel } from "./evaluation.ts";
import type { MetricsLog, MetricsRecord } from "./metrics.ts";
import { lossPlotSvg } from "./_plot.ts";
import type { Progress } from "./progress.ts";
import { NONFINITE_STEP } from "./_nonfinite.ts";
import {
  NonFiniteError,
  TrainInterrupted,
  type TrainOptions,
  type TrainResult,
} from "./train_types.ts";

/** The learning rate of every param group at a step. */
export function lrsAt(lr: TrainOptions["lr"], step: number): Record<string, number> {
  if (typeof lr === "function") return { default: lr(step) };
  return Object.fromEntries(Object.entries(lr).map(([group, s]) => [group, s(step)]));
}

/** Writes `loss.svg` into the run's directory (nothing without one, or without records). */
export async function writePlot(
  outDir: string | undefined,
  records: readonly MetricsRecord[],
): Promise<void> {
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

/** What the loop needs of a run that `train` has set up. */
export interface LoopSetup {
  readonly options: TrainOptions;
  /** The step graph with the non-finite guard. */
  readonly stepGraph: Graph;
  readonly runner: StepRunner;
  readonly factory: RunnerFactory;
  readonly progress: Progress;
  readonly source: BatchSource;
  readonly metrics?: MetricsLog;
  /** Metrics already logged (a resumed run's). */
  readonly records: MetricsRecord[];
  /** The params the run starts from. */
  readonly initial: Record<string, Float32Array>;
  /** The first step is `start + 1`. */
  readonly start: number;
  /** The dropout seed. */
  readonly seed: number;
  /** Time spent compiling so far, in ms. */
  readonly compileMs: number;
}

/** The step loop of one run; see the module comment. */
export class TrainLoop {
  readonly #s: LoopSetup;
  readonly #updated: string[];
  readonly #trainable: string[];
  readonly #shapes: Record<string, number[]>;
  readonly #watching: boolean;
  readonly #hasDropout: boolean;
  readonly #logEvery: number;
  #evalRunner: StepRunner | undefined;
  #note: Readonly<Record<string, number>>;
  #lastCheckpoint: { step: number; path: string } | undefined;
  #last: { loss?: number; gradNorm?: number; tokensPerS?: number } = {};
  #lastEval: EvalMetrics | undefined;
  #compileMs: number;
  #trainMs = 0;
  #tokens = 0;
  #windowTokens = 0;
  #windowStart = performance.now();

  constructor(setup: LoopSetup, updated: string[]) {
    const { options, stepGraph } = setup;
    this.#s = setup;
    this.#updated = updated;
    this.#trainable = trainableParams(stepGraph).map((p) => p.name!);
    this.#shapes = Object.fromEntries(stepGraph.params.map((p) => [p.name!, [...p.shape]]));
    this.#watching = NONFINITE_STEP in stepGraph.outputs;
    this.#hasDropout = stepGraph.inputs.some((n) => n.name === "dropoutSeed");
    this.#logEvery = options.logEvery ?? 25;
    this.#note = options.resumeNote ?? {};
    this.#compileMs = setup.compileMs;
    this.#lastCheckpoint = options.resume && options.checkpoint
      ? { step: options.resume.step, path: options.checkpoint.path }
      : undefined;
  }

  /** Evaluates the untrained model as step 0 (when asked, and not when resuming). */
  async evaluateAtStart(): Promise<void> {
    const { options, progress, start } = this.#s;
    if (!options.evalAtStart || options.eval === undefined || start !== 0) return;
    progress.message("evaluating the untrained model…", { pause: true });
    const m = await this.#evaluate();
    await this.#log({
      step: 0,
      eval_loss: m.loss,
      ...(m.accuracy === undefined ? {} : { eval_accuracy: m.accuracy }),
    });
    progress.message(`step 0: ${evalText(m)}`);
  }

  /** Starts the clock of the first step (what ran before it is not part of its time). */
  startClock(): void {
    this.#windowStart = performance.now();
  }

  /** Saves a checkpoint at the last step run and ends the run with `TrainInterrupted`. */
  async interrupt(lastStep: number): Promise<never> {
    // The data position saved is the next batch's: resuming runs step lastStep + 1 next.
    this.#s.progress.message(`saving the checkpoint at step ${lastStep}…`, { pause: true });
    await this.#saveAt(lastStep);
    await writePlot(this.#s.options.outDir, this.#s.records);
    throw new TrainInterrupted(lastStep, this.#s.options.checkpoint!.path);
  }

  /** Runs step `s`; reads back, checks, logs, evaluates and checkpoints when `s` calls for it. */
  async step(s: number): Promise<void> {
    const { options, runner, progress, start } = this.#s;
    const steps = options.steps;
    const feeds = this.#s.source.next();
    if (feeds === undefined) throw new Error(`train: the data ran out before step ${s}`);
    const lrs = lrsAt(options.lr, s);
    const hyper: Record<string, Float32Array | Uint32Array> = hyperparameterFeeds(
      this.#s.stepGraph,
      { step: s, lr: lrs },
    );
    if (this.#hasDropout) hyper.dropoutSeed = Uint32Array.of(deriveSeed(this.#s.seed, s));
    const every = (n: number | undefined) => n !== undefined && s % n === 0;
    const isCheckpoint = options.checkpoint !== undefined &&
      (every(options.checkpoint.every) || s === steps);
    const isEval = options.eval !== undefined && (every(options.evalEvery) || s === steps);
    const first = s === start + 1;
    const logged = first || s === steps || every(this.#logEvery) || isCheckpoint || isEval;
    const batchTokens = (feeds.tokens as ArrayLike<number> | undefined)?.length ?? 0;
    this.#tokens += batchTokens;
    this.#windowTokens += batchTokens;
    const out = await runner.run({ ...feeds, ...hyper }, {
      read: logged ? ["loss", "grad_norm", ...(this.#watching ? [NONFINITE_STEP] : [])] : [],
    });
    const lr = lrs.default ?? NaN;
    if (!logged) {
      progress.update(s, { loss: this.#last.loss, lr, tokens: this.#tokens, logged });
      return;
    }
    const ms = performance.now() - this.#windowStart;
    this.#trainMs += ms;
    if (first && s < steps) this.#firstStepCompiled(ms, batchTokens);
    const { record, bad } = this.#record(s, out, lrs, ms);
    if (bad !== undefined) {
      await this.#log(record as MetricsRecord); // the metrics show the bad step
      throw bad;
    }
    let evalNote: string | undefined;
    if (isEval) {
      if (s === steps) progress.message("running the final evaluation…", { pause: true });
      else progress.pause();
      this.#lastEval = await this.#evaluate();
      record.eval_loss = this.#lastEval.loss;
      if (this.#lastEval.accuracy !== undefined) record.eval_accuracy = this.#lastEval.accuracy;
      evalNote = evalText(this.#lastEval);
    }
    await this.#log(record as MetricsRecord);
    if (isCheckpoint) {
      progress.pause();
      await this.#saveAt(s);
    }
    progress.resume();
    progress.update(s, { loss: this.#last.loss, lr, tokens: this.#tokens, logged, note: evalNote });
    this.#windowStart = performance.now();
  }

  /** The run's result once every step ran; writes the plot. */
  async result(): Promise<TrainResult> {
    const { options, start, records, runner } = this.#s;
    const steps = options.steps;
    const ran = steps - start > 1 ? steps - start - 1 : 1; // the first step is compiling
    await writePlot(options.outDir, records);
    return {
      step: steps,
      loss: this.#last.loss!,
      gradNorm: this.#last.gradNorm!,
      ...(this.#lastEval ? { eval: this.#lastEval } : {}),
      stepMs: this.#trainMs / ran,
      tokensPerS: this.#tokens / Math.max(this.#trainMs / 1000, 1e-9),
      records,
      params: await runner.readParams(this.#updated),
    };
  }

  /** Frees the evaluation runner (the step runner is the caller's). */
  dispose(): void {
    this.#evalRunner?.dispose();
  }

  /** Drivers finish compiling at the first dispatch: the first step counts as compiling. */
  #firstStepCompiled(ms: number, batchTokens: number): void {
    this.#compileMs += ms;
    this.#trainMs -= ms;
    this.#tokens -= batchTokens;
    const kernels = this.#s.runner.kernels;
    if (kernels !== undefined) {
      this.#s.progress.message(
        `compiled ${kernels} kernels in ${(this.#compileMs / 1000).toFixed(1)} s ` +
          `(the first step included)`,
        { pause: true },
      );
    }
  }

  /** The logged record of step `s`, and the error that ends the run when the step was not finite. */
  #record(
    s: number,
    out: Record<string, Float32Array | Int32Array>,
    lrs: Record<string, number>,
    ms: number,
  ): { record: Record<string, number>; bad?: NonFiniteError } {
    const loss = out.loss[0], gradNorm = out.grad_norm[0];
    const tokensPerS = this.#windowTokens / Math.max(ms / 1000, 1e-9);
    this.#windowTokens = 0;
    this.#last = { loss, gradNorm, tokensPerS };
    const record: Record<string, number> = {
      step: s,
      loss,
      lr: lrs.default ?? 0,
      grad_norm: gradNorm,
      tokens_per_s: tokensPerS,
      ...this.#note,
    };
    this.#note = {};
    for (const [group, v] of Object.entries(lrs)) {
      if (group !== "default") record[`lr.${group}`] = v;
    }
    const firstBad = this.#watching ? out[NONFINITE_STEP][0] : 0;
    if (firstBad > 0 || !Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      const at = firstBad > 0 ? firstBad : s;
      return { record, bad: new NonFiniteError(at, { loss, gradNorm }, this.#lastCheckpoint, s) };
    }
    return { record };
  }

  async #evaluate(): Promise<EvalMetrics> {
    const { options, factory, initial, runner } = this.#s;
    this.#evalRunner ??= await freshEval(factory, options.eval!, initial);
    const evalNames = this.#trainable.filter((n) =>
      options.eval!.graph.params.some((p) => p.name === n)
    );
    await this.#evalRunner.setParams(await runner.readParams(evalNames));
    return await evaluateModel(this.#evalRunner, options.eval!.batches());
  }

  async #log(record: MetricsRecord): Promise<void> {
    this.#s.records.push(record);
    await this.#s.metrics?.append(record);
    this.#s.options.onRecord?.(record);
  }

  async #saveAt(step: number): Promise<void> {
    const { path, config } = this.#s.options.checkpoint!;
    await saveCheckpoint(path, {
      step,
      params: await this.#s.runner.readParams(this.#updated),
      shapes: this.#shapes,
      data: this.#s.source.state as Json,
      rng: { seed: this.#s.seed },
      config,
    });
    this.#lastCheckpoint = { step, path };
  }
}

function evalText(m: EvalMetrics): string {
  return `val loss ${m.loss.toFixed(4)}` +
    (m.accuracy === undefined ? "" : ` acc ${(100 * m.accuracy).toFixed(1)}%`);
}
