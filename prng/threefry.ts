/**
 * Threefry-2x32 (20 rounds), the counter-based generator JAX uses, as a
 * TypeScript reference that the kernel IR in `prng/threefry_kernel.ts` matches
 * bit for bit (docs/ARCHITECTURE.md §6).
 *
 * Element `i` of stream `stream` under `seed` is a pure function of
 * `(seed, stream, i)`: the key is `[stream, seed]` and the counter is the
 * 64-bit index split into `(hi32(i), lo32(i))`; the 32-bit word is `x0 ^ x1`
 * of the hash output. This is the JAX ≥ 0.5 default partitionable layout
 * (`jax_threefry_partitionable=True`; `_threefry_random_bits_partitionable`
 * and `iota_2x32_shape` in `jax/_src/prng.py`) for 32-bit `jax.random.bits`,
 * so (checked against that source and against the
 * `jax.random.split(PRNGKey(0), 3)` words of JAX ≥ 0.5 as quoted in downstream
 * test suites, see the tests; not run against a JAX install here)
 *
 * ```python
 * key = jax.random.wrap_key_data(jnp.array([stream, seed], dtype=jnp.uint32))
 * jax.random.bits(key, (n,))  # == randomBits(seed, stream, 0, n)
 * ```
 *
 * and for stream 0, `jax.random.PRNGKey(seed)` gives the key `[0, seed]`
 * (JAX's `threefry_seed` puts the high 32 bits of the seed first). That holds
 * for `0 <= seed < 2^31` in either `jax_enable_x64` mode; for larger seeds,
 * how JAX converts a Python int depends on that mode, so use `wrap_key_data`.
 * Only the words match JAX: the floats below are this project's own mapping,
 * not `jax.random.uniform`'s.
 *
 * Only u32 add, rotate and xor are used, so every backend computes the same
 * words; the floats are built from exact steps plus one correctly rounded f32
 * multiply, so every backend rounds them identically too.
 *
 * @module
 */

const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24] as const;
const KEY_SCHEDULE_PARITY = 0x1bd11bda;
const TWO_POW_32 = 2 ** 32;
const TWO_POW_MINUS_24 = 2 ** -24;

// The core writes its two output words here, so bulk generation allocates
// nothing per element.
const scratch = new Uint32Array(2);

function hashInto(k0: number, k1: number, c0: number, c1: number): void {
  const k2 = k0 ^ k1 ^ KEY_SCHEDULE_PARITY;
  let x0 = (c0 + k0) | 0;
  let x1 = (c1 + k1) | 0;
  for (let injection = 1; injection <= 5; injection++) {
    const rotationBase = (injection - 1) % 2 === 0 ? 0 : 4;
    for (let round = 0; round < 4; round++) {
      const r = ROTATIONS[rotationBase + round];
      x0 = (x0 + x1) | 0;
      x1 = ((x1 << r) | (x1 >>> (32 - r))) ^ x0;
    }
    const s = injection % 3;
    x0 = (x0 + (s === 0 ? k0 : s === 1 ? k1 : k2)) | 0;
    x1 = (x1 + (s === 0 ? k1 : s === 1 ? k2 : k0) + injection) | 0;
  }
  scratch[0] = x0;
  scratch[1] = x1;
}

/** The 32-bit word for 64-bit counter `index` (< 2^53) under key `[k0, k1]`. */
function wordAt(k0: number, k1: number, index: number): number {
  hashInto(k0, k1, Math.floor(index / TWO_POW_32), index % TWO_POW_32);
  return (scratch[0] ^ scratch[1]) >>> 0;
}

/** `u = (w >>> 8) · 2^-24`: exact in f32 and f64, in [0, 1 - 2^-24]. */
function unitFromWord(word: number): number {
  return (word >>> 8) * TWO_POW_MINUS_24;
}

function checkU32(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value >= TWO_POW_32) {
    throw new RangeError(
      `threefry: ${name} must be an integer in [0, 2^32), got ${String(value)}`,
    );
  }
  return value;
}

function checkIndex(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `threefry: ${name} must be a non-negative safe integer, got ${String(value)}`,
    );
  }
  return value;
}

function checkRange(start: unknown, count: unknown): void {
  checkIndex("start", start);
  checkIndex("count", count);
  if ((count as number) > 2 ** 53 - (start as number)) {
    throw new RangeError(
      `threefry: start + count must be at most 2^53, got ${String(start)} + ${String(count)}`,
    );
  }
}

function checkPair(name: string, pair: unknown): [number, number] {
  if (!Array.isArray(pair) || pair.length !== 2) {
    throw new TypeError(`threefry: ${name} must be a pair [u32, u32], got ${String(pair)}`);
  }
  return [checkU32(`${name}[0]`, pair[0]), checkU32(`${name}[1]`, pair[1])];
}

/**
 * The Threefry-2x32 hash with 20 rounds (Random123's `threefry2x32`, JAX's
 * `threefry2x32_p`): rotations `[13, 15, 26, 6, 17, 29, 16, 24]`, key schedule
 * `[k0, k1, k0 ^ k1 ^ 0x1BD11BDA]`, keys injected before round 0 and after
 * every fourth round.
 *
 * @param key The two key words, each an integer in [0, 2^32).
 * @param counter The two counter words, each an integer in [0, 2^32).
 * @returns The two output words.
 *
 * @example Random123 known-answer vector
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { threefry2x32 } from "./threefry.ts";
 * const [x0, x1] = threefry2x32([0x13198a2e, 0x03707344], [0x243f6a88, 0x85a308d3]);
 * deepStrictEqual([x0, x1], [0xc4923a9c, 0x483df7a0]);
 * ```
 */
export function threefry2x32(
  key: readonly [number, number],
  counter: readonly [number, number],
): [number, number] {
  const [k0, k1] = checkPair("key", key);
  const [c0, c1] = checkPair("counter", counter);
  hashInto(k0, k1, c0, c1);
  return [scratch[0], scratch[1]];
}

/**
 * The Threefry key of `(seed, stream)`: `[stream, seed]`, so stream 0 is
 * `jax.random.PRNGKey(seed)` for `seed < 2^31`.
 *
 * @param seed An integer in [0, 2^32).
 * @param stream An integer in [0, 2^32); different streams are independent.
 * @returns The key words `[stream, seed]`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { threefryKey } from "./threefry.ts";
 * deepStrictEqual(threefryKey(42, 1), [1, 42]);
 * ```
 */
export function threefryKey(seed: number, stream: number): [number, number] {
  return [checkU32("stream", stream), checkU32("seed", seed)];
}

/**
 * The 32-bit words of elements `start .. start + count - 1` of stream
 * `stream` under `seed`. Element `i` hashes counter `(hi32(i), lo32(i))`
 * under key `[stream, seed]` and returns `x0 ^ x1`, JAX ≥ 0.5 default
 * partitionable layout, so `randomBits(seed, stream, 0, n)` equals
 * `jax.random.bits(jax.random.wrap_key_data(jnp.array([stream, seed],
 * dtype=jnp.uint32)), (n,))`.
 *
 * @param seed An integer in [0, 2^32).
 * @param stream An integer in [0, 2^32).
 * @param start The first element index (a safe integer ≥ 0).
 * @param count How many words to produce.
 * @returns `count` words.
 *
 * @example `jax.random.bits(jax.random.PRNGKey(0), (1,))`
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { randomBits } from "./threefry.ts";
 * // key [0, 0], counter (0, 0) → 6b200159 ^ 99ba4efe
 * strictEqual(randomBits(0, 0, 0, 1)[0], (0x6b200159 ^ 0x99ba4efe) >>> 0);
 * ```
 */
export function randomBits(
  seed: number,
  stream: number,
  start: number,
  count: number,
): Uint32Array {
  const [k0, k1] = threefryKey(seed, stream);
  checkRange(start, count);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = wordAt(k0, k1, start + i);
  return out;
}

/**
 * Uniform samples in `[-bound, bound)`, element `start + i` of stream
 * `stream` under `seed`: with `w` the word of {@link randomBits},
 * `u = (w >>> 8) · 2^-24` and `2u − 1` are exact in f32, and the value is
 * `f32(2u − 1) · f32(bound)` — one correctly rounded f32 multiply, which
 * WGSL's `uniform_symmetric` reproduces bit for bit. The result is never
 * `bound` itself: `(1 − 2^-23) · bound` rounds below it.
 *
 * @param seed An integer in [0, 2^32).
 * @param stream An integer in [0, 2^32).
 * @param count How many values to produce.
 * @param bound A finite, positive half-width; rounded to f32 first.
 * @param start The first element index (default 0).
 * @returns `count` f32 values.
 *
 * @example Kaiming-uniform projection `A: [r, fanIn]`
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { kaimingUniformBound, uniformSymmetric } from "./threefry.ts";
 * const r = 4, fanIn = 16;
 * const bound = kaimingUniformBound(fanIn);
 * const a = uniformSymmetric(7, 0, r * fanIn, bound);
 * strictEqual(a.length, r * fanIn);
 * ok(a.every((v) => v >= -bound && v < bound));
 * ```
 */
export function uniformSymmetric(
  seed: number,
  stream: number,
  count: number,
  bound: number,
  start = 0,
): Float32Array {
  const [k0, k1] = threefryKey(seed, stream);
  checkRange(start, count);
  if (typeof bound !== "number" || !Number.isFinite(bound) || !(bound > 0)) {
    throw new RangeError(`threefry: bound must be a finite number > 0, got ${String(bound)}`);
  }
  const bound32 = Math.fround(bound);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const symmetric = 2 * unitFromWord(wordAt(k0, k1, start + i)) - 1; // exact in f32
    out[i] = symmetric * bound32; // the store rounds the exact product once, to f32
  }
  return out;
}

/**
 * The Kaiming-uniform bound `sqrt(6 / fanIn)`, rounded to f32. It is
 * computed here on the host (in f64, then rounded) and handed to kernels as a
 * parameter, because WGSL's `sqrt` is not correctly rounded and GPUs would
 * disagree in the last bit.
 *
 * @param fanIn The fan-in, a positive integer.
 * @returns `Math.fround(Math.sqrt(6 / fanIn))`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { kaimingUniformBound } from "./threefry.ts";
 * strictEqual(kaimingUniformBound(6), 1);
 * strictEqual(kaimingUniformBound(16), Math.fround(Math.sqrt(6 / 16)));
 * ```
 */
export function kaimingUniformBound(fanIn: number): number {
  if (typeof fanIn !== "number" || !Number.isSafeInteger(fanIn) || fanIn < 1) {
    throw new RangeError(`threefry: fanIn must be a positive integer, got ${String(fanIn)}`);
  }
  return Math.fround(Math.sqrt(6 / fanIn));
}

/**
 * Whether seeded dropout keeps element `index` of stream `stream`: true when
 * `u >= p`, with `u = (w >>> 8) · 2^-24` from the element's word. `p` is
 * compared as an f32 (`Math.fround(p)`), as a WGSL kernel receiving `p` in an
 * f32 uniform does, so the mask is identical on every backend. `p = 0` keeps
 * everything, `p = 1` drops everything; the keep probability is
 * `1 - ceil(p · 2^24) / 2^24`. Scaling kept values by `1 / (1 - p)` is the
 * caller's business.
 *
 * @param seed An integer in [0, 2^32).
 * @param stream An integer in [0, 2^32); use a stream per dropout site and step.
 * @param index The element index (a safe integer ≥ 0).
 * @param p The drop probability, in [0, 1].
 * @returns `true` to keep the element.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { dropoutKeep } from "./threefry.ts";
 * const kept = Array.from({ length: 1000 }, (_, i) => dropoutKeep(1, 3, i, 0.25)).filter(Boolean).length;
 * ok(Math.abs(kept - 750) < 41); // about 1000 · (1 − 0.25), within 3 standard deviations
 * strictEqual(kept, 758); // and exactly this many on every run and backend
 * ```
 */
export function dropoutKeep(seed: number, stream: number, index: number, p: number): boolean {
  const [k0, k1] = threefryKey(seed, stream);
  checkIndex("index", index);
  if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
    throw new RangeError(`threefry: dropout probability p must be in [0, 1], got ${String(p)}`);
  }
  return unitFromWord(wordAt(k0, k1, index)) >= Math.fround(p);
}
