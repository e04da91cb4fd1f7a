/**
 * A {@link StepRunner} on a compiled backend (WebGPU or wasm): the step graph
 * compiled once, params and optimizer state resident in the backend's memory
 * and updated in place, outputs read back only when the trainer asks — on
 * WebGPU other steps are queued without waiting.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { type BackendChoice, compile, resolveBackend } from "../backends/compile.ts";
import type { BackendName, HostArray } from "../backends/executable.ts";
import { cpuRunner, type RunnerFactory, type RunnerHooks, type StepRunner } from "./runner.ts";

function toHost(value: HostArray): Float32Array | Int32Array {
  if (value instanceof Float32Array || value instanceof Int32Array) return value;
  return Int32Array.from(value);
}

/**
 * Compiles `graph` for WebGPU and wraps it as a StepRunner (see {@link backendRunner}).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { webgpuRunner } from "./executable_runner.ts";
 * const g = trace((x) => ({ y: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const runner = await webgpuRunner(g);
 * await runner.setParams({ w: new Float32Array([2, 3]) });
 * deepStrictEqual((await runner.run({ x: [1, 1] }, { read: ["y"] })).y, new Float32Array([5]));
 * runner.dispose();
 * ```
 */
export function webgpuRunner(graph: Graph, hooks: RunnerHooks = {}): Promise<StepRunner> {
  return backendRunner(graph, "webgpu", hooks);
}

/**
 * Compiles `graph` for a backend and wraps its executable as a StepRunner.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { backendRunner } from "./executable_runner.ts";
 * const g = trace((x) => ({ y: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const runner = await backendRunner(g, "wasm");
 * await runner.setParams({ w: new Float32Array([2, 3]) });
 * deepStrictEqual((await runner.run({ x: [1, 1] }, { read: ["y"] })).y, new Float32Array([5]));
 * runner.dispose();
 * ```
 */
export async function backendRunner(
  graph: Graph,
  backend: BackendName,
  hooks: RunnerHooks = {},
): Promise<StepRunner> {
  const exe = await compile(graph, { backend, onKernels: hooks.onKernels });
  const defaultRead = Object.keys(graph.outputs).filter((k) => !k.startsWith("update:"));
  return {
    graph,
    kernels: exe.program?.steps.length ?? exe.stats.kernelsPerRun,
    setParams: (values) => {
      try {
        exe.setParams(values);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e);
      }
    },
    async run(inputs, options = {}) {
      const read = options.read ?? defaultRead;
      for (const name of read) {
        if (!(name in graph.outputs)) throw new Error(`runner: no output "${name}" to read`);
      }
      const result = await exe.run(inputs, { read });
      const out: Record<string, Float32Array | Int32Array> = {};
      for (const name of read) out[name] = toHost(await result.read(name));
      return out;
    },
    async readParams(names) {
      const list = names ?? graph.params.map((p) => p.name!);
      const out: Record<string, Float32Array> = {};
      for (const name of list) out[name] = Float32Array.from(await exe.getParam(name));
      return out;
    },
    dispose: () => exe.destroy(),
  };
}

/** A {@link RunnerFactory} for the WebGPU backend. */
export const webgpuRunnerFactory: RunnerFactory = (graph, hooks): Promise<StepRunner> =>
  webgpuRunner(graph, hooks);

/**
 * The runner factory of a backend choice: the float64-reference `cpuRunner`
 * (rounding to f32) for `cpu`, {@link backendRunner} for `webgpu` and `wasm`;
 * `auto` is resolved when the first runner is made.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { runnerFactoryFor } from "./executable_runner.ts";
 * import { param, trace } from "../compiler/trace.ts";
 * const g = trace((x) => ({ y: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const runner = await runnerFactoryFor("cpu")(g);
 * await runner.setParams({ w: new Float32Array([2, 3]) });
 * deepStrictEqual((await runner.run({ x: [1, 1] }, { read: ["y"] })).y, new Float32Array([5]));
 * ```
 */
export function runnerFactoryFor(choice: BackendChoice): RunnerFactory {
  return async (graph, hooks) => {
    const backend = await resolveBackend(choice);
    return backend === "cpu" ? cpuRunner(graph) : await backendRunner(graph, backend, hooks);
  };
}
