/**
 * What a training loop drives: a {@link StepRunner} holds a graph's params
 * (model weights and optimizer state) where the graph runs, runs it on fed
 * inputs, writes `meta.updates` back after every run and reads back only
 * what it is asked for. The loop never sees where that is: {@link cpuRunner}
 * runs the reference interpreter; a GPU runner keeps everything in device
 * buffers, queues runs and maps buffers only when `read` names outputs.
 *
 * The same interface serves an eval graph (a model graph with no
 * `meta.updates`): runs change nothing, and `read` picks the outputs.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { adamw, hyperparameterFeeds, initOptimizerState, trainStep } from "./optim.ts";
 * import { cpuRunner } from "./runner.ts";
 * const model = trace((x) => ({ loss: x.sub(param("w", [2])).square().sum() }), [
 *   { name: "x", shape: [2] },
 * ]);
 * const step = trainStep(model, { optimizer: adamw({ weightDecay: 0 }) });
 * const runner = cpuRunner(step);
 * await runner.setParams({ w: new Float32Array(2), ...initOptimizerState(step) });
 * for (let t = 1; t <= 3; t++) {
 *   const feeds = hyperparameterFeeds(step, { step: t, lr: 0.1 });
 *   await runner.run({ x: [1, -1], ...feeds }, { read: [] });
 * }
 * const [w0, w1] = (await runner.readParams(["w"])).w;
 * ok(Math.abs(w0 - 0.298) < 1e-3 && Math.abs(w1 + 0.298) < 1e-3, `w ${w0}, ${w1}`);
 * runner.dispose();
 * ```
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { evaluate, type TensorData } from "../backends/cpu/interpreter.ts";
import { applyUpdates } from "./optim.ts";

/**
 * A typed array a runner accepts as an input feed.
 *
 * @example
 * ```ts
 * import type { TypedArray } from "./runner.ts";
 * const tokens: TypedArray = new Int32Array([72, 105]);
 * ```
 */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array;

/**
 * One input's value: a typed array or a plain array of numbers.
 *
 * @example
 * ```ts
 * import type { Feed } from "./runner.ts";
 * const feeds: Record<string, Feed> = { tokens: new Int32Array(8), lr: [1e-3] };
 * ```
 */
export type Feed = TypedArray | readonly number[];

/**
 * Options of {@link StepRunner.run}.
 *
 * @example
 * ```ts
 * import type { RunOptions } from "./runner.ts";
 * const queueOnly: RunOptions = { read: [] };
 * const withLoss: RunOptions = { read: ["loss", "grad_norm"] };
 * ```
 */
export interface RunOptions {
  /**
   * Outputs to read back (by output name). `[]` reads nothing, so a GPU
   * runner can queue the run without waiting for it. Default: every output
   * that is not an `update:` output.
   */
  readonly read?: readonly string[];
}

/**
 * A graph, its resident params, and the means to run it. Every method is
 * async so a device-backed implementation can queue work and map buffers.
 *
 * @example
 * ```ts
 * import type { StepRunner } from "./runner.ts";
 * async function lossAt(runner: StepRunner, tokens: Int32Array, targets: Int32Array) {
 *   const { loss } = await runner.run({ tokens, targets }, { read: ["loss"] });
 *   return loss[0];
 * }
 * ```
 */
export interface StepRunner {
  /** The graph this runner runs. */
  readonly graph: Graph;
  /** Sets (some of) the graph's params; names the graph does not read are an error. */
  setParams(values: Readonly<Record<string, Float32Array>>): Promise<void>;
  /**
   * Runs the graph once on `inputs`, then replaces every param that
   * `meta.updates` names with its update output. Resolves to the outputs in
   * `options.read` only, as f32 (floats) or i32 (integers).
   */
  run(
    inputs: Readonly<Record<string, Feed>>,
    options?: RunOptions,
  ): Promise<Record<string, Float32Array | Int32Array>>;
  /** Reads params back (default: every param the runner holds). */
  readParams(names?: readonly string[]): Promise<Record<string, Float32Array>>;
  /** Releases what the runner holds; the runner is unusable afterwards. */
  dispose(): void;
  /** GPU kernels compiled for the graph (absent where nothing is compiled, e.g. on the CPU). */
  readonly kernels?: number;
}

/**
 * Builds a runner for a graph: the training loop calls it for the step graph
 * and for the eval graph, so one factory decides where both run.
 *
 * @example
 * ```ts
 * import { cpuRunner, type RunnerFactory } from "./runner.ts";
 * const cpu64: RunnerFactory = (graph) => cpuRunner(graph, { precision: "f64" });
 * ```
 */
export type RunnerFactory = (
  graph: Graph,
  hooks?: RunnerHooks,
) => StepRunner | Promise<StepRunner>;

/**
 * What a runner factory may report while it builds a runner.
 *
 * @example
 * ```ts
 * import type { RunnerHooks } from "./runner.ts";
 * const hooks: RunnerHooks = { onKernels: (n) => console.log(`compiling ${n} kernels…`) };
 * ```
 */
export interface RunnerHooks {
  /** The number of kernels, once known and before they are compiled. */
  readonly onKernels?: (count: number) => void;
}

/**
 * Options of {@link cpuRunner}.
 *
 * @example
 * ```ts
 * import type { CpuRunnerOptions } from "./runner.ts";
 * const exact: CpuRunnerOptions = { precision: "f64" };
 * ```
 */
export interface CpuRunnerOptions {
  /**
   * `"f32"` (default): every float is rounded to f32 as a GPU would, so
   * params read back losslessly and resumed runs are bit-identical.
   * `"f64"`: the exact reference.
   */
  readonly precision?: "f32" | "f64";
}

function updatesOf(graph: Graph): Record<string, string> {
  const updates = graph.meta.updates;
  return updates !== null && typeof updates === "object" ? updates as Record<string, string> : {};
}

function readOutput(
  graph: Graph,
  name: string,
  data: ArrayLike<number>,
): Float32Array | Int32Array {
  const node = graph.outputs[name];
  return node.dtype === "f32" ? Float32Array.from(data) : Int32Array.from(data);
}

/** Runs `fn` now; its result or its throw becomes the promise's. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

function checkRead(graph: Graph, read: readonly string[]): void {
  for (const name of read) {
    if (!(name in graph.outputs)) {
      throw new Error(
        `runner: no output "${name}" to read (outputs: ${
          Object.keys(graph.outputs).filter((k) => !k.startsWith("update:")).join(", ")
        })`,
      );
    }
  }
}

/**
 * A {@link StepRunner} on the reference interpreter (`backends/cpu/interpreter.ts`).
 * Params live in host memory; each run evaluates the whole graph and applies
 * `meta.updates` (see `applyUpdates`).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { trace, param } from "../compiler/trace.ts";
 * import { cpuRunner } from "./runner.ts";
 * const g = trace((x) => ({ y: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const runner = cpuRunner(g);
 * await runner.setParams({ w: new Float32Array([2, 3]) });
 * deepStrictEqual((await runner.run({ x: [1, 1] }, { read: ["y"] })).y, new Float32Array([5]));
 * ```
 */
export function cpuRunner(graph: Graph, options: CpuRunnerOptions = {}): StepRunner {
  const precision = options.precision ?? "f32";
  const updates = updatesOf(graph);
  const known = new Map(graph.params.map((p) => [p.name!, p]));
  let params: Record<string, TensorData> = {};
  let disposed = false;
  const alive = (what: string) => {
    if (disposed) throw new Error(`runner: ${what} after dispose()`);
  };
  return {
    graph,
    setParams: (values) =>
      settle(() => {
        alive("setParams");
        const next = { ...params };
        for (const [name, value] of Object.entries(values)) {
          const node = known.get(name);
          if (node === undefined) throw new Error(`runner: the graph has no param "${name}"`);
          const size = node.shape.reduce((a, b) => a * b, 1);
          if (value.length !== size) {
            throw new Error(
              `runner: param "${name}" has ${size} elements [${node.shape}], got ${value.length}`,
            );
          }
          next[name] = value.slice();
        }
        params = next;
      }),
    run: (inputs, runOptions = {}) =>
      settle(() => {
        alive("run");
        const read = runOptions.read ??
          Object.keys(graph.outputs).filter((k) => !k.startsWith("update:"));
        checkRead(graph, read);
        const out = evaluate(graph, { inputs, params }, { precision });
        params = applyUpdates(params, out, updates);
        return Object.fromEntries(read.map((k) => [k, readOutput(graph, k, out[k].data)]));
      }),
    readParams: (names) =>
      settle(() => {
        alive("readParams");
        const result: Record<string, Float32Array> = {};
        for (const name of names ?? Object.keys(params)) {
          const value = params[name];
          if (value === undefined) throw new Error(`runner: param "${name}" was never set`);
          result[name] = Float32Array.from(value as ArrayLike<number>);
        }
        return result;
      }),
    dispose() {
      disposed = true;
      params = {};
    },
  };
}

/**
 * The names of the params a step graph changes: every target of
 * `meta.updates` (trainable params and optimizer state), sorted. These are
 * what a checkpoint must save; everything else is fixed input.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { sgd, trainStep } from "./optim.ts";
 * import { updatedParams } from "./runner.ts";
 * const m = trace((x) => ({ loss: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * deepStrictEqual(updatedParams(trainStep(m, { optimizer: sgd() })), ["w"]);
 * ```
 */
export function updatedParams(graph: Graph): string[] {
  return [...new Set(Object.values(updatesOf(graph)))].sort();
}
