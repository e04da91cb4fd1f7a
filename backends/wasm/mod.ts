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

const SIMD_PROBE = new Uint8Array([
  0,
  97,
  115,
  109,
  1,
  0,
  0,
  0,
  1,
  5,
  1,
  96,
  0,
  1,
  123,
  3,
  2,
  1,
  0,
  10,
  22,
  1,
  20,
  0,
  0xfd,
  12,
  ...new Array(16).fill(0),
  0x0b,
]);

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
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}
