/**
 * Threefry-2x32 in WGSL: a function library that kernels include, and a
 * kernel that fills a buffer with Kaiming-uniform values. Both compute the
 * same bits as the TypeScript reference in `prng/threefry.ts`
 * (docs/ARCHITECTURE.md §6).
 *
 * @module
 */

import type { Kernel, KernelBinding } from "./kernel.ts";
import { threefryKey } from "../../../prng/threefry.ts";
import { wgslF32 } from "./kernel.ts";

/**
 * WGSL functions for Threefry-2x32 (20 rounds) and the values built on it.
 * Include the string in a shader module; every function is prefixed
 * `threefry_` or named below, and there are no bindings.
 *
 * - `threefry2x32(key: vec2<u32>, ctr: vec2<u32>) -> vec2<u32>`: the hash.
 * - `random_word(key: vec2<u32>, index: u32) -> u32`: element `index`'s word,
 *   `x0 ^ x1` of counter `(0, index)`, as `randomBits` in TypeScript.
 * - `random_unit(key: vec2<u32>, index: u32) -> f32`: `u = (w >> 8) · 2^-24`,
 *   exact, in [0, 1).
 * - `uniform_symmetric(key: vec2<u32>, index: u32, bound: f32) -> f32`:
 *   `(2u − 1) · bound` in [-bound, bound). `2u − 1` is exact however it is
 *   evaluated (even as an FMA), and the product is one correctly rounded
 *   multiply. Pass `bound` in at run time (a uniform), computed on the host:
 *   WGSL's `sqrt` is not correctly rounded.
 * - `dropout_keep(key: vec2<u32>, index: u32, p: f32) -> bool`: `u >= p`, as
 *   `dropoutKeep` in TypeScript.
 *
 * The key of `(seed, stream)` is `vec2<u32>(stream, seed)` (see
 * `threefryKey`). WGSL has no rotate builtin, so rotations are two shifts.
 *
 * @example A kernel that writes the raw words
 * ```ts
 * import { THREEFRY_WGSL } from "./threefry.ts";
 * const wgsl = `${THREEFRY_WGSL}
 * @group(0) @binding(0) var<storage, read_write> words: array<u32>;
 * @compute @workgroup_size(64)
 * fn main(@builtin(global_invocation_id) id: vec3<u32>) {
 *   if (id.x < arrayLength(&words)) { words[id.x] = random_word(vec2<u32>(0u, 42u), id.x); }
 * }`;
 * console.log(wgsl.includes("fn random_word")); // true
 * ```
 */
export const THREEFRY_WGSL: string = /* wgsl */ `
fn threefry_rotl(x: u32, r: u32) -> u32 {
  return (x << r) | (x >> (32u - r));
}

fn threefry_mix(x: vec2<u32>, r: u32) -> vec2<u32> {
  let sum = x.x + x.y;
  return vec2<u32>(sum, threefry_rotl(x.y, r) ^ sum);
}

fn threefry_rounds_a(x: vec2<u32>) -> vec2<u32> {
  return threefry_mix(threefry_mix(threefry_mix(threefry_mix(x, 13u), 15u), 26u), 6u);
}

fn threefry_rounds_b(x: vec2<u32>) -> vec2<u32> {
  return threefry_mix(threefry_mix(threefry_mix(threefry_mix(x, 17u), 29u), 16u), 24u);
}

fn threefry2x32(key: vec2<u32>, ctr: vec2<u32>) -> vec2<u32> {
  let k0 = key.x;
  let k1 = key.y;
  let k2 = k0 ^ k1 ^ 0x1BD11BDAu;
  var x = ctr + key;
  x = threefry_rounds_a(x) + vec2<u32>(k1, k2 + 1u);
  x = threefry_rounds_b(x) + vec2<u32>(k2, k0 + 2u);
  x = threefry_rounds_a(x) + vec2<u32>(k0, k1 + 3u);
  x = threefry_rounds_b(x) + vec2<u32>(k1, k2 + 4u);
  x = threefry_rounds_a(x) + vec2<u32>(k2, k0 + 5u);
  return x;
}

fn random_word(key: vec2<u32>, index: u32) -> u32 {
  let x = threefry2x32(key, vec2<u32>(0u, index));
  return x.x ^ x.y;
}

fn random_unit(key: vec2<u32>, index: u32) -> f32 {
  return f32(random_word(key, index) >> 8u) * 0x1p-24f;
}

fn uniform_symmetric(key: vec2<u32>, index: u32, bound: f32) -> f32 {
  let symmetric = 2.0 * random_unit(key, index) - 1.0;
  return symmetric * bound;
}

fn dropout_keep(key: vec2<u32>, index: u32, p: f32) -> bool {
  return random_unit(key, index) >= p;
}
`;

/**
 * The WGSL expression for element `index` (a u32 expression) of a `random`
 * node's values: `uniform_symmetric` of {@link THREEFRY_WGSL} with the key
 * of `(seed, stream)` and the f32 bound baked in as literals.
 *
 * @example
 * ```ts
 * import { wgslUniformSymmetric } from "./threefry.ts";
 * console.log(wgslUniformSymmetric({ seed: 7, stream: 1, bound: 0.5 }, "i"));
 * // uniform_symmetric(vec2<u32>(1u, 7u), i, 0.5)
 * ```
 */
export function wgslUniformSymmetric(
  random: { readonly seed: number; readonly stream: number; readonly bound: number },
  index: string,
): string {
  const key = `vec2<u32>(${random.stream >>> 0}u, ${random.seed >>> 0}u)`;
  return `uniform_symmetric(${key}, ${index}, ${wgslF32(random.bound)})`;
}

/** Invocations per workgroup of {@link uniformSymmetricKernel}. */
const WORKGROUP_SIZE = 64;
/** WebGPU's default `maxComputeWorkgroupsPerDimension`. */
const DEFAULT_MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * Bytes of the `params` uniform of {@link uniformSymmetricKernel}: u32 words
 * `[key.x, key.y, start, count]`, then f32 `bound`, then three zero words.
 */
export const UNIFORM_SYMMETRIC_PARAMS_BYTES = 32;

/** The shared kernel-as-data type (backends/webgpu/wgsl/kernel.ts), under the name this module used first. */
export type WgslKernel = Kernel;
export type { KernelBinding };

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
 * Packs the `params` uniform of {@link uniformSymmetricKernel}, so one
 * pipeline serves every seed, stream, bound and range.
 *
 * @param params The seed, stream, bound, start and count of the run.
 * @returns {@link UNIFORM_SYMMETRIC_PARAMS_BYTES} bytes, as 8 words.
 *
 * @example
 * ```ts
 * import { uniformSymmetricParams } from "./threefry.ts";
 * const words = uniformSymmetricParams({ seed: 42, stream: 1, bound: 0.5, start: 0, count: 8 });
 * console.log(words.slice(0, 4)); // Uint32Array [1, 42, 0, 8]
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

/** {@link WgslKernel} plus the initial contents of its `params` uniform. */
export interface UniformSymmetricKernel extends WgslKernel {
  /** Initial `params` contents, as packed by {@link uniformSymmetricParams}. */
  params: Uint32Array<ArrayBuffer>;
}

const UNIFORM_SYMMETRIC_WGSL = /* wgsl */ `${THREEFRY_WGSL}
struct Params {
  key: vec2<u32>,
  start: u32,
  count: u32,
  bound: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  // Rows of workgroups in y when one dimension cannot hold them all.
  let i = (group.y * groups.x + group.x) * ${WORKGROUP_SIZE}u + lane;
  if (i >= params.count) {
    return;
  }
  out[i] = uniform_symmetric(params.key, params.start + i, params.bound);
}
`;

/**
 * A kernel writing `out[i] = uniform_symmetric(key, start + i, bound)` for
 * `i < params.count`, matching TypeScript's
 * `uniformSymmetric(seed, stream, count, bound, start)` bit for bit. Key,
 * bound, start and count are read from the `params` uniform, so the WGSL
 * (and `key`, the pipeline cache key) is the same for every seed and size;
 * only `dispatch` depends on `count`. Counts needing more than
 * `maxWorkgroupsPerDimension` workgroups use a 2-D dispatch.
 *
 * Bindings: `params` (uniform, {@link UNIFORM_SYMMETRIC_PARAMS_BYTES} bytes)
 * and `out` (storage, at least `4 · count` bytes).
 *
 * @param options The element count, initial params, and the device limit.
 * @returns The kernel as data, with its initial `params` words.
 *
 * @example Kaiming-uniform `A: [r, fanIn]` on the GPU
 * ```ts
 * import { uniformSymmetricKernel } from "./threefry.ts";
 * import { kaimingUniformBound } from "../../../prng/threefry.ts";
 * const kernel = uniformSymmetricKernel({ count: 4 * 768, seed: 7, bound: kaimingUniformBound(768) });
 * console.log(kernel.dispatch, kernel.bindings.map((b) => b.name)); // [48, 1, 1] ["params", "out"]
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
  return {
    key: `threefry.uniform_symmetric.wg${WORKGROUP_SIZE}`,
    wgsl: UNIFORM_SYMMETRIC_WGSL,
    bindings: [{ name: "params", type: "uniform" }, { name: "out", type: "storage" }],
    workgroupSize: [WORKGROUP_SIZE, 1, 1],
    dispatch: [Math.ceil(groups / rows), rows, 1],
    params,
  };
}
