/**
 * What every backend's compile returns: an {@link Executable}, which holds
 * params on its device, takes fed inputs, runs, and reads outputs back.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { HostArray, TensorData } from "./host_data.ts";
import type { Program } from "../compiler/schedule.ts";

export type { HostArray } from "./host_data.ts";

/** The backends `compile` knows: WebGPU, multi-threaded Wasm SIMD, and the float64 reference. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/**
 * Options of {@link Executable.run}.
 *
 * @example
 * ```ts
 * import type { RunOptions } from "./executable.ts";
 * const everyTenthStep: RunOptions = { read: ["loss"] };
 * ```
 */
export interface RunOptions {
  /** Outputs to copy out of this run (queued with it, so later runs cannot overwrite them). */
  readonly read?: readonly string[];
}

/**
 * What {@link Executable.run} returns once the run is submitted.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { compile } from "./compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.neg(), [{ name: "x", shape: [1] }]), { backend: "cpu" });
 * const result = await exe.run({ x: [2] });
 * strictEqual(result.run, 1);
 * deepStrictEqual(await result.read("out"), new Float32Array([-2]));
 * ```
 */
export interface RunResult {
  /** 1 for the first run, then 2, 3, ... */
  readonly run: number;
  /** This run's value of an output: one listed in `read`, or any output while no later run was submitted. */
  read(name: string): Promise<HostArray>;
}

/**
 * Counters of an executable.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { compile } from "./compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.exp().sum(), [{ name: "x", shape: [8] }]), { backend: "webgpu" });
 * strictEqual(exe.stats.kernelsPerRun, 1);
 * ```
 */
export interface ExecutableStats {
  /** Dispatches per run (the cpu backend: the non-leaf, non-shape ops it evaluates). */
  readonly kernelsPerRun: number;
  /** Bytes of GPU buffers held (params, inputs, outputs, temporaries). */
  readonly gpuBytes: number;
  /** GPU buffers created on this executable's behalf (allocation, readback staging). */
  readonly buffersCreated: number;
  /** Pipelines compiled for it (0 when every kernel was already cached). */
  readonly pipelinesCreated: number;
  /** Runs submitted so far. */
  readonly runs: number;
}

/**
 * A compiled graph; see {@link createWebGpuExecutable} and `createCpuExecutable` (cpu_executable.ts).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { compile } from "./compile.ts";
 * import { param, trace } from "../compiler/trace.ts";
 * const g = trace((x) => x.mul(param("w", [2])).sum(), [{ name: "x", shape: [2] }]);
 * const exe = await compile(g, { backend: Deno.args.includes("--cpu") ? "cpu" : "webgpu" });
 * exe.setParams({ w: [3, 4] });
 * deepStrictEqual(await (await exe.run({ x: [1, 2] }, { read: ["out"] })).read("out"), new Float32Array([11]));
 * ```
 */
export interface Executable {
  /** Which backend runs it. */
  readonly backend: BackendName;
  /** The graph after the graph passes. */
  readonly graph: Graph;
  /** The scheduled kernels (webgpu only). */
  readonly program?: Program;
  /** Counters (kernels per run, bytes and buffers held, pipelines compiled). */
  readonly stats: ExecutableStats;
  /** Uploads param values (by module path); unknown names are an error. */
  setParams(values: Readonly<Record<string, TensorData>>): void;
  /** The current value of a param (after any updates). */
  getParam(name: string): Promise<HostArray>;
  /** Feeds inputs and submits one run; resolves once submitted, not when the device finishes. */
  run(inputs?: Readonly<Record<string, TensorData>>, options?: RunOptions): Promise<RunResult>;
  /** The latest run's value of an output. */
  read(name: string): Promise<HostArray>;
  /** Returns the buffers to the pool; the executable is unusable afterwards. */
  destroy(): void;
}
