/**
 * The wasm backend behind the {@link Backend} interface: it takes the graph
 * after the graph passes (it plans its own kernels, fusing elementwise chains
 * into matmul, reduction and row kernels) and runs it on WebAssembly SIMD
 * across worker threads.
 *
 * @module
 */
import type { Backend } from "../backend.ts";
import { createWasmExecutable, type WasmOptions } from "./executable.ts";

/**
 * The wasm backend, with a thread count (default: one per logical core).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { wasmBackend } from "./backend.ts";
 * import { compile } from "../compile.ts";
 * import { trace } from "../../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.exp().sum(), [{ name: "x", shape: [3] }]), {
 *   backend: wasmBackend({ threads: 1 }),
 * });
 * strictEqual(exe.backend, "wasm");
 * deepStrictEqual(await (await exe.run({ x: [0, 0, 0] })).read("out"), new Float32Array([3]));
 * exe.destroy();
 * ```
 */
export function wasmBackend(options: WasmOptions = {}): Backend {
  return {
    name: "wasm",
    capabilities: { fuses: false },
    compile: (state) => createWasmExecutable(state.graph, options),
  };
}
