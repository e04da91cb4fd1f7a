/**
 * Small deterministic randomness for data order: a seeded PRNG, seed
 * derivation, and Fisher–Yates shuffles.
 *
 * @module
 */
import { fmix32 } from "./split.ts";

/**
 * Mulberry32: a tiny, fast, deterministic 32-bit PRNG. Returns a function
 * producing floats in `[0, 1)`.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { mulberry32 } from "./batches.ts";
 * const rng = mulberry32(42);
 * const x = rng();
 * strictEqual(x, mulberry32(42)()); // same value on every run for seed 42
 * ok(x >= 0 && x < 1);
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives an independent 32-bit seed from a base seed and integer parts
 * (e.g. an epoch number), by repeated murmur3 mixing.
 *
 * @example
 * ```ts
 * import { notStrictEqual, ok, strictEqual } from "node:assert/strict";
 * import { deriveSeed } from "./batches.ts";
 * const epochSeed = deriveSeed(1234, 3); // seed used for epoch 3
 * strictEqual(epochSeed, deriveSeed(1234, 3));
 * notStrictEqual(epochSeed, deriveSeed(1234, 4));
 * ok(Number.isInteger(epochSeed) && epochSeed >= 0 && epochSeed < 2 ** 32);
 * ```
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = fmix32((seed + 0x9e3779b9) >>> 0);
  for (const p of parts) h = fmix32((h ^ fmix32((p + 0x7f4a7c15) >>> 0)) + 0x6b43a9b5 >>> 0);
  return h;
}

/**
 * Fisher–Yates shuffle of `array` in place using `rng` (values in `[0, 1)`).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { mulberry32, shuffleInPlace } from "./batches.ts";
 * const array = [1, 2, 3, 4];
 * const xs = shuffleInPlace(array, mulberry32(7));
 * strictEqual(xs, array); // in place
 * deepStrictEqual([...xs].sort(), [1, 2, 3, 4]);
 * ```
 */
export function shuffleInPlace<A extends { length: number; [i: number]: any }>(
  array: A,
  rng: () => number,
): A {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/**
 * A seeded random permutation of `0..n-1`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { permutation } from "./batches.ts";
 * deepStrictEqual(permutation(5, 1), new Int32Array([4, 2, 1, 0, 3]));
 * deepStrictEqual(permutation(5, 1), permutation(5, 1)); // identical for every call with seed 1
 * ```
 */
export function permutation(n: number, seed: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, mulberry32(seed));
}
