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
import { vera } from "../adapters/vera.ts";
import { lora } from "../adapters/lora.ts";
import { initParams } from "../nn/init.ts";
import { adamw, initOptimizerState, trainStep } from "./optim.ts";
import { constant, type Schedule } from "./schedule.ts";
import { train } from "./trainer.ts";
import { cpuRunner, type RunnerFactory } from "./runner.ts";
import { runnerFactoryFor } from "./executable_runner.ts";
import { parseBackend } from "../backends/compile.ts";
import type { TargetConfig } from "../adapters/targets.ts";
import { prepareFit, sourceOfData, stepsOf } from "./_fit_data.ts";
import type { FitAdapter, FitAdapterConfig, FitOptions, FitResult, FitStep } from "./fit_types.ts";

export type { FitExamples } from "./_fit_model.ts";
export type {
  FitAdapter,
  FitAdapterConfig,
  FitBatch,
  FitCallbacks,
  FitData,
  FitOptions,
  FitResult,
  FitStep,
} from "./fit_types.ts";

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
 * The seeded init of `graph`'s params with the given ones in their place. Given params the graph
 * lacks are skipped (a pretrained checkpoint keeps a head the fine-tuned model replaces), but some
 * must match, and every match must fit.
 */
function initialParams(
  graph: Graph,
  givenParams: Readonly<Record<string, Float32Array>> | undefined,
  seed: number,
): Record<string, Float32Array> {
  const initial = initParams(graph, { seed });
  const given = Object.entries(givenParams ?? {});
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
  return initial;
}

/** The backend's runner factory, wrapped to report steps when there is an `onStep` callback. */
function runnerOf(
  options: FitOptions,
  lr: Schedule | Readonly<Record<string, Schedule>>,
): RunnerFactory | undefined {
  const defaultLr: Schedule = typeof lr === "function" ? lr : (lr.default ?? (() => NaN));
  const base = runnerFactory(options.backend);
  const onStep = options.callbacks?.onStep;
  return onStep === undefined ? base : watchSteps(
    base ?? ((g: Graph) => cpuRunner(g)),
    (g) => "grad_norm" in g.outputs,
    defaultLr,
    onStep,
  );
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
  const run = prepareFit(options);
  const steps = stepsOf(options, run.batchesPerEpoch);
  const { graph, adapter } = adapt(run.graph, options.adapter, run.defaults);
  if (!("loss" in graph.outputs)) throw new Error("fit: the model has no `loss` output");
  const step = trainStep(graph, { ...options.step, optimizer: options.optimizer ?? adamw() });
  const initial = initialParams(graph, run.params, options.seed ?? 0);
  const s = options.schedule ?? 1e-3;
  const lr = typeof s === "number" ? constant(s) : s;
  const runner = runnerOf(options, lr);
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
