/**
 * Threefry-2x32 in WGSL: a function library that kernels include. It
 * computes the same bits as the TypeScript reference in `prng/threefry.ts`
 * (docs/ARCHITECTURE.md §6).
 *
 * @module
 */

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
 * import { strictEqual } from "node:assert/strict";
 * import { THREEFRY_WGSL } from "./threefry.ts";
 * const wgsl = `${THREEFRY_WGSL}
 * @group(0) @binding(0) var<storage, read_write> words: array<u32>;
 * @compute @workgroup_size(64)
 * fn main(@builtin(global_invocation_id) id: vec3<u32>) {
 *   if (id.x < arrayLength(&words)) { words[id.x] = random_word(vec2<u32>(0u, 42u), id.x); }
 * }`;
 * strictEqual(wgsl.includes("fn random_word"), true);
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
