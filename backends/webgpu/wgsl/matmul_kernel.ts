/**
 * A standalone matmul kernel for the WebGPU runtime: the matmul family's
 * program (`compiler/kernels/matmul.ts`) rendered to WGSL. Benchmarks and
 * runtime tests dispatch these directly.
 *
 * @module
 */
import { type MatmulOptions, matmulProgram } from "../../../compiler/kernels/matmul.ts";
import type { Kernel } from "./kernel.ts";
import { toKernel } from "./render.ts";

/**
 * The rendered kernel of {@linkcode matmulProgram}; it has a label only
 * when the options give one.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { addBias, MATMUL_TILES_CPU } from "../../../compiler/kernels/matmul.ts";
 * import { matmulKernel } from "./matmul_kernel.ts";
 * // y = x Wᵀ + b with x: [32, 64], W: [128, 64]
 * const k = matmulKernel({ M: 32, N: 128, K: 64, transB: true, epilogue: addBias("bias"), tiles: MATMUL_TILES_CPU });
 * deepEqual(k.bindings.map((b) => b.name), ["lhs", "rhs", "dst", "bias"]);
 * deepEqual(k.dispatch, [1, 1, 1]);
 * ```
 */
export function matmulKernel(options: MatmulOptions): Kernel {
  const { label, ...kernel } = toKernel(matmulProgram(options));
  return options.label === undefined ? kernel : { ...kernel, label };
}
