/**
 * The backend interface. `compile` (compile.ts) runs the backend-neutral
 * passes of `compiler/` with what the backend says it can do, and hands the
 * resulting {@link PassState} (the graph, and its fusion plan when the
 * backend fuses) to the backend, which turns it into an {@link Executable}.
 *
 * A backend lives in its own folder (`backends/webgpu/`, `backends/cpu/`)
 * and imports `compiler/` and `ops/`; nothing in `compiler/` or `ops/`
 * imports a backend.
 *
 * @module
 */
import type { PassContext, PassState } from "../compiler/compile.ts";
import type { BackendName, Executable } from "./executable.ts";

export type { BackendName } from "./executable.ts";

/**
 * What a backend tells the passes: whether it runs fused kernels, and the
 * limits fusion must respect.
 *
 * @example
 * ```ts
 * import type { BackendCapabilities } from "./backend.ts";
 * const caps: BackendCapabilities = { fuses: true, fusion: { maxBindings: 8, randomProjections: "fused" } };
 * ```
 */
export interface BackendCapabilities {
  /** `false`: the backend runs the graph op by op, and the pipeline stops before `fuse`. */
  readonly fuses: boolean;
  /** Limits for `fuse` (binding count, whether random operands are recomputed where read). */
  readonly fusion?: PassContext;
}

/**
 * What a backend gets besides the pipeline's result.
 *
 * @example
 * ```ts
 * import { match, strictEqual } from "node:assert/strict";
 * import type { BackendCompileOptions } from "./backend.ts";
 * import { compile } from "./compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const dumps = new Map<string, string>();
 * let kernels = 0;
 * const options: BackendCompileOptions = {
 *   debug: (stage, dump) => dumps.set(stage, dump),
 *   onKernels: (count) => kernels = count,
 * };
 * await compile(trace((x) => x.exp().sum(), [{ name: "x", shape: [8] }]), { backend: "webgpu", ...options });
 * strictEqual(kernels, 1);
 * match(dumps.get("schedule")!, /^program: 1 kernels, 2 tensors/); // the WebGPU program, after the passes
 * ```
 */
export interface BackendCompileOptions {
  /** Receives the backend's own dumps (the WebGPU program after scheduling). */
  readonly debug?: (stage: string, dump: string) => void;
  /** Told how many kernels there are once they are known, before they are compiled (progress). */
  readonly onKernels?: (count: number) => void;
}

/**
 * A backend: its capabilities, and how it turns the pipeline's result into
 * an executable.
 *
 * @example A backend that wraps the cpu one and counts compilations
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import type { Backend } from "./backend.ts";
 * import { cpuBackend } from "./cpu/backend.ts";
 * import { compile } from "./compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * let compiled = 0;
 * const counting: Backend = {
 *   ...cpuBackend,
 *   compile: (state, options) => (compiled++, cpuBackend.compile(state, options)),
 * };
 * const exe = await compile(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), { backend: counting });
 * strictEqual(exe.backend, "cpu");
 * strictEqual(compiled, 1);
 * ```
 */
export interface Backend {
  /** Its name (what `Executable.backend` reports). */
  readonly name: BackendName;
  /** What the passes may assume. */
  readonly capabilities: BackendCapabilities;
  /** Turns the pipeline's result into an executable (compiling every kernel now). */
  compile(state: PassState, options: BackendCompileOptions): Promise<Executable>;
}
