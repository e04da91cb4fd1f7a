/**
 * How many workgroups a kernel may dispatch, and how a 1-D count is spread
 * over the grid: the execution model of the kernel IR is WebGPU's, so its
 * limits are WebGPU's defaults, which every adapter supports.
 *
 * @module
 */
import { add, invocation, mul } from "./build.ts";
import type { Expr } from "./ir.ts";

/**
 * WebGPU's default and minimum `maxComputeWorkgroupsPerDimension`.
 *
 * @example
 * ```ts
 * import { MAX_WORKGROUPS_PER_DIMENSION } from "./dispatch.ts";
 * const groups = Math.min(1000, MAX_WORKGROUPS_PER_DIMENSION);
 * ```
 */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * Spreads `workgroups` 1-D workgroups over x and y so that neither exceeds
 * `maxPerDimension`. The kernel recovers the linear index with
 * `linearWorkgroup()` and must skip indices `>= workgroups`
 * (the 2-D grid can hold a few more than asked for).
 *
 * @example
 * ```ts
 * import { splitDispatch } from "./dispatch.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(splitDispatch(10), [10, 1, 1]);
 * deepEqual(splitDispatch(100_000), [50_000, 2, 1]);
 * ```
 */
export function splitDispatch(
  workgroups: number,
  maxPerDimension = MAX_WORKGROUPS_PER_DIMENSION,
): [number, number, number] {
  if (!Number.isSafeInteger(workgroups) || workgroups < 0) {
    throw new Error(
      `splitDispatch: expected a non-negative integer workgroup count, got ${workgroups}`,
    );
  }
  if (workgroups <= maxPerDimension) return [workgroups, 1, 1];
  const y = Math.ceil(workgroups / maxPerDimension);
  if (y > maxPerDimension) {
    throw new Error(
      `splitDispatch: ${workgroups} workgroups exceed ${maxPerDimension}² (the x·y grid limit)`,
    );
  }
  // Balance x so the grid wastes fewer than y workgroups.
  return [Math.ceil(workgroups / y), y, 1];
}

/**
 * The linear index of the running workgroup in a grid laid out by
 * {@linkcode splitDispatch} (`y · numWorkgroups.x + x`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { linearWorkgroup } from "./dispatch.ts";
 * strictEqual(linearWorkgroup().type, "u32");
 * ```
 */
export function linearWorkgroup(): Expr {
  return add(
    mul(invocation({ of: "workgroup", axis: 1 }), invocation({ of: "numWorkgroups", axis: 0 })),
    invocation({ of: "workgroup", axis: 0 }),
  );
}
