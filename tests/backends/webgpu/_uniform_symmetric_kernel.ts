// A standalone kernel that fills a buffer with Kaiming-uniform values from
// Threefry-2x32: the tests compare it bit for bit with the TypeScript
// reference (prng/threefry.ts). It is built in the kernel IR from the same
// Threefry functions the library's kernels call inline
// (prng/threefry_kernel.ts) and rendered by the one WGSL renderer, so this
// kernel is test code.
import {
  add,
  binary,
  bitcast,
  Body,
  invocation,
  type KernelProgram,
  linearWorkgroup,
  load,
  mul,
  u32,
  vector,
} from "../../../compiler/kernel_ir/mod.ts";
import type { Kernel } from "../../../backends/webgpu/wgsl/kernel.ts";
import { toKernel } from "../../../backends/webgpu/wgsl/render.ts";
import { uniformSymmetricAtExpr } from "../../../prng/threefry_kernel.ts";
import { threefryKey } from "../../../prng/threefry.ts";

/** Invocations per workgroup of {@link uniformSymmetricKernel}. */
const WORKGROUP_SIZE = 64;
/** WebGPU's default `maxComputeWorkgroupsPerDimension`. */
const DEFAULT_MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * Bytes of the `params` buffer of {@link uniformSymmetricKernel}: u32 words
 * `[key.x, key.y, start, count]`, then f32 `bound`, then three zero words.
 */
export const UNIFORM_SYMMETRIC_PARAMS_BYTES = 32;

/** Parameters of one run of {@link uniformSymmetricKernel}. */
export interface UniformSymmetricParams {
  /** An integer in [0, 2^32). */
  seed: number;
  /** An integer in [0, 2^32). */
  stream: number;
  /** The half-width, finite and > 0; stored as f32. */
  bound: number;
  /** The first element index; `start + count` must be at most 2^32. */
  start: number;
  /** How many elements to write, at most the `count` the kernel was built for. */
  count: number;
}

/**
 * Packs the `params` buffer of {@link uniformSymmetricKernel}, so one
 * pipeline serves every seed, stream, bound and range.
 *
 * @param params The seed, stream, bound, start and count of the run.
 * @returns {@link UNIFORM_SYMMETRIC_PARAMS_BYTES} bytes, as 8 words.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { uniformSymmetricParams } from "./_uniform_symmetric_kernel.ts";
 * const words = uniformSymmetricParams({ seed: 42, stream: 1, bound: 0.5, start: 0, count: 8 });
 * deepStrictEqual([...words.slice(0, 4)], [1, 42, 0, 8]);
 * ```
 */
export function uniformSymmetricParams(params: UniformSymmetricParams): Uint32Array<ArrayBuffer> {
  const { seed, stream, bound, start, count } = params;
  const [k0, k1] = threefryKey(seed, stream);
  for (const [name, value] of [["start", start], ["count", count]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(
        `uniformSymmetric kernel: ${name} must be an integer >= 0, got ${value}`,
      );
    }
  }
  if (start + count > 2 ** 32) {
    throw new RangeError(
      `uniformSymmetric kernel: start + count must be at most 2^32 (WGSL indices are u32), ` +
        `got ${start} + ${count}`,
    );
  }
  if (typeof bound !== "number" || !Number.isFinite(bound) || !(bound > 0)) {
    throw new RangeError(`uniformSymmetric kernel: bound must be finite and > 0, got ${bound}`);
  }
  const words = new Uint32Array(UNIFORM_SYMMETRIC_PARAMS_BYTES / 4);
  words.set([k0, k1, start, count]);
  new Float32Array(words.buffer)[4] = bound;
  return words;
}

/** Options of {@link uniformSymmetricKernel}. */
export interface UniformSymmetricKernelOptions {
  /** Elements the dispatch covers; each run writes `params.count` of them. */
  count: number;
  /** Seed for the initial `params` (default 0). */
  seed?: number;
  /** Stream for the initial `params` (default 0). */
  stream?: number;
  /** Bound for the initial `params` (default 1). */
  bound?: number;
  /** Start index for the initial `params` (default 0). */
  start?: number;
  /** The device's `maxComputeWorkgroupsPerDimension` (default 65535). */
  maxWorkgroupsPerDimension?: number;
}

/** {@link Kernel} plus the initial contents of its `params` buffer. */
export interface UniformSymmetricKernel extends Kernel {
  /** Initial `params` contents, as packed by {@link uniformSymmetricParams}. */
  params: Uint32Array<ArrayBuffer>;
}

/**
 * The kernel's program. Key, start, count and bound are words of the
 * read-only `params` buffer (the kernel IR binds storage buffers only), so
 * the rendered WGSL is the same for every run; `dispatch` is filled in per
 * count.
 */
function uniformSymmetricProgram(dispatch: readonly [number, number, number]): KernelProgram {
  const body = new Body();
  const param = (k: number) => load("params", u32(k), "u32");
  // Rows of workgroups in y when one dimension cannot hold them all.
  const i = body.letNamed(
    "i",
    add(mul(linearWorkgroup(), u32(WORKGROUP_SIZE)), invocation({ of: "localIndex" })),
  );
  body.when(binary(">=", i, param(3)), (exit) => exit.return());
  const key = body.letNamed("key", vector("vec2u", param(0), param(1)));
  const bound = body.letNamed("bound", bitcast("f32", param(4)));
  body.store("out", i, uniformSymmetricAtExpr(key, add(param(2), i), bound));
  return {
    family: "threefry.uniform_symmetric",
    label: "uniformSymmetricKernel",
    buffers: [
      { name: "params", access: "read", element: "u32" },
      { name: "out", access: "read_write", element: "f32" },
    ],
    shared: [],
    workgroupSize: [WORKGROUP_SIZE, 1, 1],
    dispatch,
    body: body.stmts,
  };
}

/**
 * A kernel writing `out[i] = uniform_symmetric(key, start + i, bound)` for
 * `i < params.count`, matching TypeScript's
 * `uniformSymmetric(seed, stream, count, bound, start)` bit for bit. Key,
 * bound, start and count are read from the `params` buffer, so the WGSL
 * (and `key`, the pipeline cache key) is the same for every seed and size;
 * only `dispatch` depends on `count`. Counts needing more than
 * `maxWorkgroupsPerDimension` workgroups use a 2-D dispatch.
 *
 * Bindings: `params` (read-only storage, {@link UNIFORM_SYMMETRIC_PARAMS_BYTES}
 * bytes) and `out` (storage, at least `4 · count` bytes).
 *
 * @param options The element count, initial params, and the device limit.
 * @returns The kernel as data, with its initial `params` words.
 *
 * @example Kaiming-uniform `A: [r, fanIn]` on the GPU
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { uniformSymmetricKernel } from "./_uniform_symmetric_kernel.ts";
 * import { kaimingUniformBound } from "../../../prng/threefry.ts";
 * const kernel = uniformSymmetricKernel({ count: 4 * 768, seed: 7, bound: kaimingUniformBound(768) });
 * deepStrictEqual(kernel.dispatch, [48, 1, 1]);
 * deepStrictEqual(kernel.bindings.map((b) => b.name), ["params", "out"]);
 * ```
 */
export function uniformSymmetricKernel(
  options: UniformSymmetricKernelOptions,
): UniformSymmetricKernel {
  const { count, seed = 0, stream = 0, bound = 1, start = 0 } = options;
  const maxPerDimension = options.maxWorkgroupsPerDimension ?? DEFAULT_MAX_WORKGROUPS_PER_DIMENSION;
  if (!Number.isSafeInteger(maxPerDimension) || maxPerDimension < 1) {
    throw new RangeError(
      `uniformSymmetricKernel: maxWorkgroupsPerDimension must be a positive integer, ` +
        `got ${maxPerDimension}`,
    );
  }
  const params = uniformSymmetricParams({ seed, stream, bound, start, count });
  const groups = Math.ceil(count / WORKGROUP_SIZE);
  const rows = Math.max(1, Math.ceil(groups / maxPerDimension));
  if (rows > maxPerDimension) {
    throw new RangeError(
      `uniformSymmetricKernel: count ${count} needs ${groups} workgroups, more than ` +
        `${maxPerDimension}² fit in a 2-D dispatch`,
    );
  }
  return { ...toKernel(uniformSymmetricProgram([Math.ceil(groups / rows), rows, 1])), params };
}
