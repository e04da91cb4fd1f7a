/**
 * `fit`: the short way to train. It takes a traced model (a graph with a
 * `loss` output), optionally rewrites it with an adapter (VeRA, LoRA or your
 * own rewrite), builds the train step, and runs {@link train} — so a run gets
 * the same metrics log, plot, checkpoints and NaN guard as the CLI's.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { Adapter } from "../adapters/merge.ts";
import { vera, type VeraConfig } from "../adapters/vera.ts";
import { lora, type LoraConfig } from "../adapters/lora.ts";
import { initParams } from "../nn/init.ts";
import { adamw, initOptimizerState, trainStep, type TrainStepOptions } from "./optim.ts";
import { constant, type Schedule } from "./schedule.ts";
import { train, type TrainResult } from "./trainer.ts";
import { cpuRunner, type Feed, type RunnerFactory } from "./runner.ts";
import { runnerFactoryFor } from "./executable_runner.ts";
import { type BackendChoice, parseBackend } from "../backends/compile.ts";
import type { Optimizer } from "./update_rules.ts";
import { type BatchSource, type EvalBatch, type EvalMetrics, feedsOf } from "./evaluation.ts";
import type { MetricsRecord } from "./metrics.ts";
import type { ProgressMode } from "./progress.ts";
import type { ClassificationBatch, LmBatch } from "../data/batches.ts";
import type { LoadedModel } from "../nn/families.ts";
import type { TargetConfig } from "../adapters/targets.ts";
import { type FitExamples, isExamples, isLoadedModel, prepareModel } from "./_fit_model.ts";

export type { FitExamples } from "./_fit_model.ts";

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

function adapt(
  model: Graph,
  adapter: FitAdapter | undefined,
  defaults: { targets?: readonly string[]; head?: string },
): { graph: Graph; adapter?: Adapter } {
  if (adapter === undefined) return { graph: model };
  if (typeof adapter === "function") return adapter(model);
  const config = <C extends FitAdapterConfig<TargetConfig>>(c: C) => {
    const targetModules = c.targetModules ?? defaults.targets;
    if (targetModules === undefined) {
      throw new Error('fit: the adapter config needs targetModules (e.g. ["q_proj", "v_proj"])');
    }
    const modulesToSave = c.modulesToSave ?? (defaults.head ? [defaults.head] : undefined);
    return { ...c, targetModules, ...(modulesToSave ? { modulesToSave } : {}) };
  };
  if ("vera" in adapter) return vera(model, config(adapter.vera));
  if ("lora" in adapter) return lora(model, config(adapter.lora));
  throw new Error("fit: adapter must be { vera: config }, { lora: config } or a function");
}

/** The graph, data, params and eval batches of a run: a loaded model's prepared from examples. */
function prepare(options: FitOptions) {
  const seed = options.seed ?? 0;
  if (!isLoadedModel(options.model)) {
    if (isExamples(options.data) || options.eval?.examples) {
      throw new Error(
        "fit: examples train a loaded model (loadModel); a graph takes batches of feeds",
      );
    }
    return {
      graph: options.model,
      data: options.data as FitData,
      params: options.params,
      evalBatches: options.eval?.batches,
      defaults: {},
    };
  }
  const model = options.model;
  if (!isExamples(options.data)) {
    throw new Error(
      "fit: a loaded model trains on examples: [{ text, label }], [{ prompt, completion }] or texts",
    );
  }
  const prepared = prepareModel(model, options.data, {
    batch: options.batch ?? 8,
    ...(options.seqLen === undefined ? {} : { seqLen: options.seqLen }),
    seed,
    ...(options.numClasses === undefined ? {} : { numClasses: options.numClasses }),
    ...(options.eval?.examples ? { evalExamples: options.eval.examples } : {}),
  });
  return {
    graph: prepared.graph,
    data: prepared.data as FitData,
    params: { ...prepared.params, ...options.params },
    evalBatches: options.eval?.batches ?? prepared.evalBatches,
    batchesPerEpoch: prepared.batchesPerEpoch,
    defaults: { targets: model.family.defaultTargets, head: prepared.head },
  };
}

function toFeeds(batch: FitBatch): Readonly<Record<string, Feed>> {
  // Batches from data/ carry their size and text alongside the tensors; feedsOf keeps the tensors.
  const b = batch as Record<string, unknown>;
  return typeof b.batchSize === "number" && b.tokens instanceof Int32Array
    ? feedsOf(batch as ClassificationBatch | LmBatch)
    : batch as Readonly<Record<string, Feed>>;
}

/** The data as the trainer's batch source; its state counts the batches taken. */
function sourceOfData(data: FitData): BatchSource {
  const fresh: () => Iterable<FitBatch> = typeof data === "function"
    ? data
    : Array.isArray(data)
    ? () => data
    : (() => {
      let used = false;
      return () => {
        if (used) return [];
        used = true;
        return data as Iterable<FitBatch>;
      };
    })();
  const cycles = typeof data === "function" || Array.isArray(data);
  let iterator = fresh()[Symbol.iterator]();
  let taken = 0;
  return {
    next() {
      let r = iterator.next();
      if (r.done && cycles) {
        iterator = fresh()[Symbol.iterator]();
        r = iterator.next();
      }
      if (r.done) return undefined;
      taken++;
      return toFeeds(r.value);
    },
    get state() {
      return { batches: taken };
    },
  };
}

/** `steps`, or `epochs` passes over the data counted in batches. */
function stepsOf(options: FitOptions, batchesPerEpoch?: number): number {
  const { steps, epochs, data } = options;
  if ((steps === undefined) === (epochs === undefined)) {
    throw new Error("fit: give either steps or epochs");
  }
  if (steps !== undefined) return steps;
  if (!(Number.isSafeInteger(epochs) && epochs! >= 1)) {
    throw new Error(`fit: epochs must be an integer ≥ 1, got ${epochs}`);
  }
  let perEpoch: number;
  if (batchesPerEpoch !== undefined) perEpoch = batchesPerEpoch;
  else if (Array.isArray(data)) perEpoch = data.length;
  else if (typeof data === "function") {
    perEpoch = 0;
    for (const _ of (data as () => Iterable<FitBatch>)()) perEpoch++;
  } else {
    throw new Error("fit: epochs needs data as an array or a function returning a fresh iterable");
  }
  if (perEpoch === 0) throw new Error("fit: the data has no batches");
  return epochs! * perEpoch;
}

function runnerFactory(backend: FitOptions["backend"]): RunnerFactory | undefined {
  if (backend === undefined || backend === "cpu") return undefined;
  if (typeof backend === "function") return backend;
  return runnerFactoryFor(parseBackend(backend, "fit: backend"));
}

/**
 * Wraps the factory so that the step graph's runs report each step to `onStep`. The trainer makes
 * the step runner before any eval runner and runs it once per step, so its runs count the steps.
 */
function watchSteps(
  factory: RunnerFactory,
  stepGraph: (g: Graph) => boolean,
  lr: (step: number) => number,
  onStep: (s: FitStep) => void,
): RunnerFactory {
  return async (graph) => {
    const runner = await factory(graph);
    if (!stepGraph(graph)) return runner;
    let step = 0;
    return {
      graph: runner.graph,
      ...(runner.kernels === undefined ? {} : { kernels: runner.kernels }),
      setParams: (values) => runner.setParams(values),
      readParams: (names) => runner.readParams(names),
      dispose: () => runner.dispose(),
      async run(inputs, options) {
        const out = await runner.run(inputs, options);
        step++;
        const loss = out.loss?.[0], gradNorm = out.grad_norm?.[0];
        onStep({
          step,
          lr: lr(step),
          ...(loss === undefined ? {} : { loss }),
          ...(gradNorm === undefined ? {} : { gradNorm }),
        });
        return out;
      },
    };
  };
}

/**
 * Trains `model` (through `adapter`, if given) on `data` for `steps` steps
 * and returns the logged history and the trained params.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { fit } from "./fit.ts";
 * // Learn w so that x · w ≈ y: the answer is w = [1, 2, 3].
 * const model = trace(
 *   (x, y) => ({ loss: x.matmul(param("w", [3, 1])).sub(y).square().mean() }),
 *   [{ name: "x", shape: [4, 3] }, { name: "y", shape: [4, 1] }],
 * );
 * const batch = { x: [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], y: [1, 2, 3, 6] };
 * const { history, params } = await fit({ model, data: [batch], steps: 300, schedule: 0.05 });
 * assert.ok(history.at(-1)!.loss! < 1e-3);
 * assert.deepEqual(Array.from(params.w, Math.round), [1, 2, 3]);
 * ```
 */
export async function fit(options: FitOptions): Promise<FitResult> {
  const run = prepare(options);
  const steps = stepsOf(options, run.batchesPerEpoch);
  const { graph, adapter } = adapt(run.graph, options.adapter, run.defaults);
  if (!("loss" in graph.outputs)) throw new Error("fit: the model has no `loss` output");
  const step = trainStep(graph, { ...options.step, optimizer: options.optimizer ?? adamw() });
  const initial = initParams(graph, { seed: options.seed ?? 0 });
  // Given params the graph lacks are skipped (a pretrained checkpoint keeps a head the
  // fine-tuned model replaces), but some must match, and every match must fit.
  const given = Object.entries(run.params ?? {});
  const used = given.filter(([name]) => name in initial);
  if (given.length > 0 && used.length === 0) {
    throw new Error(
      `fit: none of the given params is in the model (given ${
        given.slice(0, 3).map(([n]) => n).join(", ")
      }; the model has ${Object.keys(initial).slice(0, 3).join(", ")})`,
    );
  }
  for (const [name, value] of used) {
    if (value.length !== initial[name].length) {
      throw new Error(
        `fit: param ${name} has ${value.length} values, the model's has ${initial[name].length}`,
      );
    }
    initial[name] = value;
  }
  const s = options.schedule ?? 1e-3;
  const lr = typeof s === "number" ? constant(s) : s;
  const defaultLr: Schedule = typeof lr === "function" ? lr : (lr.default ?? (() => NaN));
  const base = runnerFactory(options.backend);
  const onStep = options.callbacks?.onStep;
  const runner = onStep === undefined ? base : watchSteps(
    base ?? ((g: Graph) => cpuRunner(g)),
    (g) => "grad_norm" in g.outputs,
    defaultLr,
    onStep,
  );
  if (options.checkpointEvery !== undefined && options.outDir === undefined) {
    throw new Error("fit: checkpointEvery needs outDir (where the checkpoint goes)");
  }
  const evalBatches = run.evalBatches;
  if (options.eval !== undefined && evalBatches === undefined) {
    throw new Error("fit: eval needs batches (a graph) or examples (a loaded model)");
  }
  const result = await train({
    step,
    params: { ...initial, ...initOptimizerState(step) },
    data: () => sourceOfData(run.data),
    steps,
    lr,
    ...(options.logEvery === undefined ? {} : { logEvery: options.logEvery }),
    ...(evalBatches === undefined ? {} : {
      eval: {
        graph,
        batches: typeof evalBatches === "function" ? evalBatches : () => evalBatches,
      },
      ...(options.eval?.every === undefined ? {} : { evalEvery: options.eval.every }),
      evalAtStart: options.eval?.atStart ?? true,
    }),
    ...(options.outDir === undefined ? {} : {
      outDir: options.outDir,
      checkpoint: {
        path: `${options.outDir}/checkpoint.safetensors`,
        ...(options.checkpointEvery === undefined ? {} : { every: options.checkpointEvery }),
      },
    }),
    ...(runner === undefined ? {} : { runner }),
    progress: options.progress ?? "none",
    ...(options.stopOnInterrupt ? { stopOnInterrupt: true } : {}),
    onRecord: (record) => {
      const { onLog, onEvaluate } = options.callbacks ?? {};
      onLog?.(record);
      if (onEvaluate && record.eval_loss !== undefined) {
        const { eval_loss: loss, eval_accuracy: accuracy } = record;
        onEvaluate({ loss, ...(accuracy === undefined ? {} : { accuracy }) }, record.step);
      }
    },
  });
  const params: Record<string, Float32Array> = {};
  for (const p of graph.params) params[p.name!] = result.params[p.name!] ?? initial[p.name!];
  const fitResult: FitResult = {
    history: result.records,
    params,
    graph,
    ...(adapter === undefined ? {} : { adapter }),
    ...(result.eval === undefined ? {} : { eval: result.eval }),
    result,
  };
  options.callbacks?.onEnd?.(fitResult);
  return fitResult;
}
