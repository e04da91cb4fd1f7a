/**
 * The cpu backend of `compile`: the reference interpreter behind the same
 * {@link Executable} interface as the WebGPU backend, so callers switch
 * backends with one flag.
 *
 * @module
 */
import type { Graph } from "../../compiler/ir.ts";
import { graphUpdates } from "../../compiler/graph_updates.ts";
import { evaluate, type TensorData } from "./interpreter.ts";
import type { Executable } from "../executable.ts";
import { checkNames } from "../index_checks.ts";
import { type HostArray, toHost, toStorage } from "../host_data.ts";

/**
 * The cpu backend: `evaluate` in f32 precision behind the {@link Executable} interface.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { createCpuExecutable } from "./executable.ts";
 * import { trace } from "../../compiler/trace.ts";
 * const exe = createCpuExecutable(trace((x) => x.mul(2), [{ name: "x", shape: [2] }]));
 * const result = await exe.run({ x: [1, 2] });
 * deepStrictEqual(await result.read("out"), new Float32Array([2, 4]));
 * ```
 */
export function createCpuExecutable(
  graph: Graph,
  options: { kernelsPerRun?: number } = {},
): Executable {
  const updates = graphUpdates(graph);
  const params = new Map(graph.params.map((n) => [n.name!, n]));
  const values: Record<string, TensorData> = {};
  let last: Record<string, HostArray> | undefined;
  let runs = 0;
  const get = (from: Record<string, HostArray> | undefined, name: string) => {
    if (graph.outputs[name] === undefined) {
      return Promise.reject(
        new Error(`unknown output "${name}" (outputs: ${Object.keys(graph.outputs).join(", ")})`),
      );
    }
    if (from === undefined) {
      return Promise.reject(new Error(`output "${name}" cannot be read before the first run`));
    }
    return Promise.resolve(from[name]);
  };
  return {
    backend: "cpu",
    graph,
    get stats() {
      const kernelsPerRun = options.kernelsPerRun ?? 0;
      return { kernelsPerRun, gpuBytes: 0, buffersCreated: 0, pipelinesCreated: 0, runs };
    },
    setParams(given) {
      checkNames("param", Object.keys(given), new Set(params.keys()));
      for (const [name, value] of Object.entries(given)) {
        values[name] = toStorage(params.get(name)!, value, "param");
      }
    },
    getParam(name) {
      const node = params.get(name);
      if (node === undefined) return Promise.reject(new Error(`unknown param "${name}"`));
      const value = values[name];
      if (value === undefined) return Promise.reject(new Error(`param "${name}" was never set`));
      const data = Float64Array.from(value as ArrayLike<number>);
      return Promise.resolve(toHost({ shape: node.shape, dtype: node.dtype, data }));
    },
    run(feeds = {}) {
      try {
        const out = evaluate(graph, { inputs: feeds, params: values }, { precision: "f32" });
        const result = Object.fromEntries(Object.entries(out).map(([k, t]) => [k, toHost(t)]));
        for (const [output, param] of Object.entries(updates)) values[param] = result[output];
        last = result;
        const run = ++runs;
        return Promise.resolve({ run, read: (name: string) => get(result, name) });
      } catch (e) {
        return Promise.reject(e);
      }
    },
    read: (name) => get(last, name),
    destroy() {},
  };
}
