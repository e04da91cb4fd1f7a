/**
 * The WebAssembly backend: kernels rendered to Wasm with 128-bit SIMD,
 * split across workers over one shared memory.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { createWasmExecutable, wasmAvailable } from "./mod.ts";
 * import { trace } from "../../compiler/trace.ts";
 * if (wasmAvailable()) {
 *   const exe = await createWasmExecutable(trace((x) => x.exp(), [{ name: "x", shape: [1] }]));
 *   deepStrictEqual(await (await exe.run({ x: [0] })).read("out"), new Float32Array([1]));
 *   exe.destroy();
 * }
 * ```
 *
 * @module
 */
export {
  createWasmExecutable,
  defaultThreads,
  relaxedSimdAvailable,
  type WasmOptions,
} from "./executable.ts";
import { SIMD_CODE, validates } from "./_probe.ts";

/**
 * Whether this engine runs the backend: WebAssembly SIMD, shared memory
 * (SharedArrayBuffer) and workers.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { wasmAvailable } from "./mod.ts";
 * strictEqual(wasmAvailable(), true);
 * ```
 */
export function wasmAvailable(): boolean {
  try {
    if (typeof SharedArrayBuffer !== "function" || typeof Worker !== "function") return false;
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return validates(SIMD_CODE);
  } catch {
    return false;
  }
}
