/**
 * `compile`: runs the backend-neutral passes of `compiler/` with the chosen
 * backend's capabilities, then hands the result to that backend. It lives
 * above both: `compiler/` knows no backend, and a backend knows no other.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { compile } from "./compile.ts";
 * import { param, trace } from "../compiler/trace.ts";
 * const g = trace((x) => x.matmul(param("w", [3, 2])).sum(), [{ name: "x", shape: [4, 3] }]);
 * const exe = await compile(g, { backend: "webgpu" });
 * exe.setParams({ w: new Float32Array(6).fill(1) });
 * const run = await exe.run({ x: new Float32Array(12).fill(1) }, { read: ["out"] });
 * deepStrictEqual(await run.read("out"), new Float32Array([24]));
 * ```
 *
 * @module
 */
import { DEFAULT_PIPELINE, runPipeline } from "../compiler/compile.ts";
import type { RandomProjections } from "../compiler/fusion/fuse.ts";
import type { Graph } from "../compiler/ir.ts";
import type { Backend, BackendName } from "./backend.ts";
import { cpuBackend } from "./cpu/backend.ts";
import type { Executable } from "./executable.ts";
import { webgpuBackend } from "./webgpu/backend.ts";
import { type GpuContext, requestGpu } from "./webgpu/device.ts";
import type { Kernel } from "./webgpu/wgsl/kernel.ts";
import { wasmBackend } from "./wasm/backend.ts";
import { wasmAvailable } from "./wasm/mod.ts";

/** A backend by name, or `auto`: WebGPU on a hardware adapter, else wasm, else cpu. */
export type BackendChoice = BackendName | "auto";

/**
 * Every `--backend` value, in the order the help lists them.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { BACKEND_CHOICES } from "./compile.ts";
 * strictEqual(BACKEND_CHOICES.join("|"), "auto|webgpu|wasm|cpu");
 * ```
 */
export const BACKEND_CHOICES: readonly BackendChoice[] = Object.freeze([
  "auto",
  "webgpu",
  "wasm",
  "cpu",
]);

/**
 * Checks a backend name given by a user; the error names `where` (a flag)
 * and the valid choices.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseBackend } from "./compile.ts";
 * strictEqual(parseBackend("wasm", "--backend"), "wasm");
 * ```
 */
export function parseBackend(value: unknown, where: string): BackendChoice {
  if (typeof value === "string" && (BACKEND_CHOICES as readonly string[]).includes(value)) {
    return value as BackendChoice;
  }
  throw new Error(`${where} must be ${BACKEND_CHOICES.join(", ")}; got ${JSON.stringify(value)}`);
}

let detected: Promise<BackendName> | undefined;

async function detectBackend(): Promise<BackendName> {
  // A software adapter (llvmpipe, SwiftShader, WARP) runs WebGPU on the CPU,
  // slower than the wasm backend on the same cores (BENCHMARKS.md).
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  const info = adapter?.info as { isFallbackAdapter?: boolean } | undefined;
  if (adapter && !(info?.isFallbackAdapter ?? false)) return "webgpu";
  return wasmAvailable() ? "wasm" : "cpu";
}

/**
 * The backend a choice runs on: `auto` is WebGPU when a hardware adapter
 * exists, wasm when the only adapter is a software one or there is none, and
 * the cpu reference where this engine cannot run wasm threads.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { resolveBackend } from "./compile.ts";
 * strictEqual(["webgpu", "wasm", "cpu"].includes(await resolveBackend("auto")), true);
 * ```
 */
export function resolveBackend(choice: BackendChoice = "auto"): Promise<BackendName> {
  if (choice !== "auto") return Promise.resolve(choice);
  detected ??= detectBackend();
  return detected;
}

/**
 * Options of {@link compile}.
 *
 * @example Dump the graph after every pass
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { compile, type CompileOptions } from "./compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const g = trace((x) => x.exp(), [{ name: "x", shape: [2] }]);
 * const options: CompileOptions = { backend: "webgpu", debug: true };
 * await compile(g, options); // prints each dump
 * const stages: string[] = [];
 * await compile(g, { backend: "webgpu", debug: (stage) => stages.push(stage) }); // receives them
 * deepStrictEqual(stages, ["simplify", "constantFold", "cse", "dce", "fuse", "schedule"]);
 * ```
 */
export interface CompileOptions {
  /**
   * `webgpu` (default), `wasm`, the `cpu` reference interpreter (f32
   * precision), `auto` (see {@link resolveBackend}), or a {@link Backend} object.
   */
  readonly backend?: BackendChoice | Backend;
  /** wasm: threads, the caller's included (default: one per logical core). */
  readonly threads?: number;
  /** The GPU context for `webgpu` (default: the shared `requestGpu()` one). */
  readonly device?: GpuContext;
  /** Pass names (default `DEFAULT_PIPELINE`); a backend that does not fuse stops before `fuse`. */
  readonly passes?: readonly string[];
  /** `true` prints each pass's dump; a function receives it instead. */
  readonly debug?: boolean | ((pass: string, dump: string) => void);
  /** webgpu: rewrites each kernel after lowering (instrumentation; tests use it to break one). */
  readonly mapKernel?: (kernel: Kernel) => Kernel;
  /** webgpu: how VeRA's projections are computed (see `WebGpuBackendOptions`). */
  readonly randomProjections?: RandomProjections;
  /** Told the number of kernels once they are known, before they are compiled (progress). */
  readonly onKernels?: (count: number) => void;
}

async function chooseBackend(options: CompileOptions): Promise<Backend> {
  const choice = options.backend ?? "webgpu";
  if (typeof choice === "object") return choice;
  const backend = await resolveBackend(parseBackend(choice, "compile: backend"));
  if (backend === "cpu") return cpuBackend;
  if (backend === "wasm") return wasmBackend({ threads: options.threads });
  const { mapKernel, randomProjections } = options;
  return webgpuBackend(options.device ?? await requestGpu(), { mapKernel, randomProjections });
}

/**
 * Compiles a graph for a backend and returns its Executable.
 *
 * @example A training step whose new weights replace the old ones on the device
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { compile } from "./compile.ts";
 * import { makeGraph } from "../compiler/ir.ts";
 * import { param, trace } from "../compiler/trace.ts";
 * import { valueAndGrad } from "../compiler/autodiff.ts";
 * import { scale, sub } from "../ops/build.ts";
 * const g = valueAndGrad(trace((x) => ({ loss: x.mul(param("w", [2])).square().sum() }), [
 *   { name: "x", shape: [2] },
 * ]));
 * const w = g.params[0];
 * const step = makeGraph({
 *   inputs: g.inputs,
 *   outputs: { loss: g.outputs.loss, w: sub(w, scale(g.outputs["grad:w"], 0.1)) },
 *   meta: { updates: { w: "w" } },
 * });
 * const exe = await compile(step, { backend: "webgpu" });
 * exe.setParams({ w: [1, 1] });
 * const losses: number[] = [];
 * for (let i = 1; i <= 20; i++) {
 *   // Queue steps without waiting; read the loss every 10th.
 *   const run = await exe.run({ x: [1, 2] }, { read: i % 10 === 0 ? ["loss"] : [] });
 *   if (i % 10 === 0) losses.push((await run.read("loss"))[0]);
 * }
 * // Each step scales w by [0.8, 0.2]: before step i the loss is 0.8^(2(i-1)) + 4 * 0.2^(2(i-1)).
 * ok(Math.abs(losses[0] - 0.8 ** 18) < 1e-6);
 * ok(Math.abs(losses[1] - 0.8 ** 38) < 1e-6);
 * ```
 */
export async function compile(graph: Graph, options: CompileOptions = {}): Promise<Executable> {
  const debug = options.debug === true
    ? (pass: string, dump: string) => console.log(`--- after ${pass} ---\n${dump}`)
    : options.debug || undefined;
  const backend = await chooseBackend(options);
  let passes = options.passes ?? DEFAULT_PIPELINE;
  if (!backend.capabilities.fuses && passes.includes("fuse")) {
    passes = passes.slice(0, passes.indexOf("fuse"));
  }
  const state = runPipeline(graph, passes, { context: backend.capabilities.fusion, debug });
  return await backend.compile(state, { debug, onKernels: options.onKernels });
}
