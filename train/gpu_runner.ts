/**
 * The WebGPU {@link StepRunner}: the step graph compiled once, params and
 * optimizer state resident on the device and updated in place, outputs read
 * back only when the trainer asks — other steps are queued without waiting.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { compile } from "../compiler/compile.ts";
import type { HostArray } from "../runtime/executable.ts";
import type { RunnerFactory, StepRunner } from "./runner.ts";

function toHost(value: HostArray): Float32Array | Int32Array {
  if (value instanceof Float32Array || value instanceof Int32Array) return value;
  return Int32Array.from(value);
}

/**
 * Compiles `graph` for WebGPU and wraps it as a StepRunner.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { webgpuRunner } from "./gpu_runner.ts";
 * const g = trace((x) => ({ y: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const runner = await webgpuRunner(g);
 * await runner.setParams({ w: new Float32Array([2, 3]) });
 * deepStrictEqual((await runner.run({ x: [1, 1] }, { read: ["y"] })).y, new Float32Array([5]));
 * runner.dispose();
 * ```
 */
export async function webgpuRunner(graph: Graph): Promise<StepRunner> {
  const exe = await compile(graph, { backend: "webgpu" });
  const defaultRead = Object.keys(graph.outputs).filter((k) => !k.startsWith("update:"));
  return {
    graph,
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
export const webgpuRunnerFactory: RunnerFactory = (graph): Promise<StepRunner> =>
  webgpuRunner(graph);
