// The smallest buffers a matmul kernel reads and writes, from its plan: the
// tests allocate exactly these, so a kernel that reads past them fails.
import { planMatmul } from "../../../compiler/kernels/_matmul_plan.ts";
import { MATMUL_TILES_GPU, type MatmulOptions } from "../../../compiler/kernels/matmul.ts";

/**
 * Elements each buffer of a matmul must hold (at least 1, since WebGPU cannot bind empty buffers).
 *
 * @example
 * ```ts
 * import { matmulSizes, type MatmulSizes } from "./_matmul_sizes.ts";
 * const sizes: MatmulSizes = matmulSizes({ M: 2, N: 3, K: 4 }); // { a: 8, b: 12, c: 6 }
 * ```
 */
export interface MatmulSizes {
  /** Elements of the A buffer that the kernel may read. */
  a: number;
  /** Elements of the B buffer that the kernel may read. */
  b: number;
  /** Elements of C (`batch·M·N`). */
  c: number;
}

/**
 * The smallest buffers (in f32 elements) a matmul reads and writes, so a
 * caller can allocate or check them before dispatch.
 *
 * @example
 * ```ts
 * import { matmulSizes } from "./_matmul_sizes.ts";
 * import { deepEqual } from "node:assert/strict";
 * // x[4, 8] · A[:, :8]ᵀ with A: [2, 16]
 * deepEqual(matmulSizes({ M: 4, N: 2, K: 8, transB: true, ldb: 16 }), { a: 32, b: 24, c: 8 });
 * ```
 */
export function matmulSizes(options: MatmulOptions): MatmulSizes {
  const plan = planMatmul(options, MATMUL_TILES_GPU);
  return {
    a: Math.max(1, plan.a.extent),
    b: Math.max(1, plan.b.extent),
    c: Math.max(1, plan.batch * plan.M * plan.N),
  };
}
