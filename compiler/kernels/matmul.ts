/**
 * Tiled, batched f32 matmul kernels: `C[b] = epilogue(op(A[b]) · op(B[b]))`,
 * built in the kernel IR (`compiler/kernel_ir`); a backend renders them
 * (WebGPU: `backends/webgpu/wgsl/render.ts`).
 *
 * - `op` is an optional transpose, folded into the indexing (never
 *   materialised). Leading dimensions, batch strides (0 broadcasts) and
 *   element offsets let a kernel read slices such as `A[:, :k]` of a larger
 *   matrix in place.
 * - An operand that is a `random` node (VeRA's projections) can instead be
 *   generated in its loads (`randomA` / `randomB`), with no buffer at all.
 * - Each invocation computes a `threadM × threadN` block of C in registers.
 *   With `staging: "workgroup"` (the GPU default) the workgroup first copies
 *   `tileM × tileK` and `tileK × tileN` tiles into workgroup memory; with
 *   `"registers"` each invocation reads its operands straight from the
 *   storage buffers. The second wins on CPU adapters (llvmpipe), where
 *   workgroup memory is no faster than storage and its mandatory zero
 *   initialisation, emitted element by element, costs seconds of shader
 *   compilation; see {@linkcode matmulTilesFor} and BENCHMARKS.md.
 * - Shapes, strides and offsets are baked into the kernel as constants rather
 *   than read from a uniform: graphs have static shapes, so each matmul gets
 *   its own pipeline anyway, and constants let the shader compiler fold the
 *   index arithmetic, drop the loop bounds checks and fully unroll the edges.
 * - C is written contiguously as `[batch, M, N]`; rows and columns past the
 *   edge of C are computed on clamped (valid) addresses and never stored, and
 *   k past K contributes zero, so no size need be a multiple of a tile.
 *
 * @module
 */

import type { KernelProgram } from "../kernel_ir/mod.ts";
import { MAX_WORKGROUPS_PER_DIMENSION } from "../kernel_ir/dispatch.ts";
import { emitMatmulProgram } from "./_matmul_codegen.ts";
import { planMatmul } from "./_matmul_plan.ts";
import type { MatmulOptions, MatmulTiles } from "./_matmul_types.ts";

export type {
  MatmulEpilogue,
  MatmulEpilogueArgs,
  MatmulEpilogueBinding,
  MatmulOptions,
  MatmulTiles,
  RandomOperand,
} from "./_matmul_types.ts";

/**
 * Tiles for discrete and integrated GPUs: 64×64 workgroup tiles staged
 * through workgroup memory, 16×16 invocations of 4×4 outputs each.
 *
 * @example
 * ```ts
 * import { MATMUL_TILES_GPU, matmulProgram } from "./matmul.ts";
 * const k = matmulProgram({ M: 256, N: 256, K: 256, tiles: MATMUL_TILES_GPU });
 * ```
 */
export const MATMUL_TILES_GPU: Readonly<MatmulTiles> = Object.freeze({
  staging: "workgroup",
  tileM: 64,
  tileN: 64,
  tileK: 16,
  threadM: 4,
  threadN: 4,
});

/**
 * Tiles for CPU adapters (Mesa llvmpipe, SwiftShader): no workgroup memory,
 * and 16×16 outputs per invocation so each load — scalarised per SIMD lane
 * by llvmpipe, the dominant cost — feeds 16 FMAs. Chosen by measurement, see
 * BENCHMARKS.md. Such a kernel takes about 0.8 s to compile on llvmpipe.
 *
 * @example
 * ```ts
 * import { MATMUL_TILES_CPU, matmulProgram } from "./matmul.ts";
 * const k = matmulProgram({ M: 512, N: 512, K: 512, tiles: MATMUL_TILES_CPU });
 * ```
 */
export const MATMUL_TILES_CPU: Readonly<MatmulTiles> = Object.freeze({
  staging: "registers",
  tileM: 128,
  tileN: 128,
  tileK: 4,
  threadM: 16,
  threadN: 16,
});

/**
 * Tiles for small matmuls on CPU adapters: 8×8 outputs per invocation run
 * up to a third slower than {@linkcode MATMUL_TILES_CPU} but compile about
 * four times faster, which is what matters when the whole product takes
 * milliseconds.
 *
 * @example
 * ```ts
 * import { MATMUL_TILES_CPU_SMALL, matmulProgram } from "./matmul.ts";
 * const k = matmulProgram({ M: 64, N: 192, K: 64, tiles: MATMUL_TILES_CPU_SMALL });
 * ```
 */
export const MATMUL_TILES_CPU_SMALL: Readonly<MatmulTiles> = Object.freeze({
  staging: "registers",
  tileM: 64,
  tileN: 64,
  tileK: 4,
  threadM: 8,
  threadN: 8,
});

/**
 * Tiles for products of at most 4 rows (M ≤ 4) on software adapters, e.g. the one-token decode
 * step of generation (`[1, D] · Wᵀ`): the 64- and 128-row tiles above compute mostly padding rows
 * there, so one tile row of 4 keeps every thread's work real. A GPT-2-small-sized decode step on
 * llvmpipe went from about 2.6 s to 0.28 s with it (bench/generate_bench.ts).
 *
 * @example
 * ```ts
 * import { MATMUL_TILES_CPU_ROWS, matmulProgram } from "./matmul.ts";
 * const k = matmulProgram({ M: 1, N: 768, K: 768, transB: true, tiles: MATMUL_TILES_CPU_ROWS });
 * ```
 */
export const MATMUL_TILES_CPU_ROWS: Readonly<MatmulTiles> = Object.freeze({
  staging: "registers",
  tileM: 4,
  tileN: 64,
  tileK: 4,
  threadM: 4,
  threadN: 4,
});

/** Multiply-adds below which a CPU adapter gets {@linkcode MATMUL_TILES_CPU_SMALL}: 256³. */
const SMALL_MATMUL = 256 ** 3;

/**
 * Picks tiles for an adapter and, optionally, a problem size:
 * {@linkcode MATMUL_TILES_GPU} on GPUs; on fallback (software) adapters such
 * as llvmpipe, {@linkcode MATMUL_TILES_CPU}, or
 * {@linkcode MATMUL_TILES_CPU_SMALL} for products under 256³ multiply-adds, or
 * {@linkcode MATMUL_TILES_CPU_ROWS} for at most 4 rows.
 *
 * @example
 * ```ts
 * import {
 *   MATMUL_TILES_CPU,
 *   MATMUL_TILES_CPU_ROWS,
 *   MATMUL_TILES_CPU_SMALL,
 *   matmulTilesFor,
 * } from "./matmul.ts";
 * import { deepEqual } from "node:assert/strict";
 * const llvmpipe = { isFallbackAdapter: true, description: "llvmpipe (LLVM 15.0.6, 256 bits)" };
 * deepEqual(matmulTilesFor(llvmpipe), MATMUL_TILES_CPU);
 * deepEqual(matmulTilesFor(llvmpipe, { M: 256, N: 192, K: 64 }), MATMUL_TILES_CPU_SMALL);
 * deepEqual(matmulTilesFor(llvmpipe, { M: 1, N: 768, K: 768 }), MATMUL_TILES_CPU_ROWS);
 * ```
 */
export function matmulTilesFor(
  adapter: { isFallbackAdapter?: boolean; description?: string },
  shape?: { batch?: number; M: number; N: number; K: number },
): Readonly<MatmulTiles> {
  const software = /llvmpipe|lavapipe|softpipe|swiftshader|\bwarp\b/i;
  if (!adapter.isFallbackAdapter && !software.test(adapter.description ?? "")) {
    return MATMUL_TILES_GPU;
  }
  if (shape !== undefined && shape.M <= 4) return MATMUL_TILES_CPU_ROWS;
  const multiplyAdds = shape ? (shape.batch ?? 1) * shape.M * shape.N * shape.K : Infinity;
  return multiplyAdds < SMALL_MATMUL ? MATMUL_TILES_CPU_SMALL : MATMUL_TILES_CPU;
}

/**
 * The kernel program of a matmul: buffers `lhs` (A), `rhs` (B), `dst` (C), then each epilogue binding
 * in order; a generated operand ({@linkcode RandomOperand}) has no buffer,
 * and the rest move up. Dispatch: `[ceil(N / tileN), ceil(M / tileM), batch]`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { MATMUL_TILES_GPU, matmulProgram } from "./matmul.ts";
 * const program = matmulProgram({ M: 100, N: 64, K: 32, tiles: MATMUL_TILES_GPU });
 * deepStrictEqual(program.buffers.map((b) => b.name), ["lhs", "rhs", "dst"]);
 * deepStrictEqual(program.shared.map((s) => s.name), ["a_tile", "b_tile"]);
 * deepStrictEqual(program.dispatch, [1, 2, 1]);
 * strictEqual(program.family, "matmul");
 * ```
 */
export function matmulProgram(options: MatmulOptions): KernelProgram {
  const plan = planMatmul(options, MATMUL_TILES_GPU);
  const { tiles } = plan;
  const dispatch = [
    Math.ceil(plan.N / tiles.tileN),
    Math.ceil(plan.M / tiles.tileM),
    plan.batch,
  ] as const;
  if (dispatch.some((d) => d > MAX_WORKGROUPS_PER_DIMENSION)) {
    throw new Error(
      `matmul${options.label === undefined ? "" : ` (${options.label})`}: dispatch ${
        dispatch.join("×")
      } exceeds 65535 workgroups per dimension`,
    );
  }
  return emitMatmulProgram(plan, {
    label: options.label ?? "matmul",
    dispatch: plan.batch * plan.M * plan.N === 0 ? [0, 0, 0] : dispatch,
  });
}

export {
  activation,
  addBias,
  addResidual,
  scaleBy,
  scaleColumns,
  scaleRows,
} from "./matmul_epilogues.ts";
