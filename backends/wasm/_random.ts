/**
 * Threefry-2x32-20 on i32x4 lanes (four counters at once), bit-identical to
 * `prng/threefry.ts`: only u32 add, rotate and xor, and the same exact
 * float mapping, so `random` and `dropout` agree with the reference exactly.
 *
 * @module
 */
import { type Fn, I32, V128 } from "./_encoder.ts";
import { S } from "./_math.ts";

const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24];
const PARITY = 0x1bd11bda;

/**
 * Pushes the 32-bit words `x0 ^ x1` for counters `counter` (a v128 local of
 * four u32 indices) under key `[k0, k1]` (i32 locals splatted here).
 */
function emitWords(f: Fn, k0: number, k1: number, counter: number): void {
  const [x0, x1, K0, K1, K2] = f.localsOf(V128, 5);
  f.get(k0).simd(S.i32splat).set(K0);
  f.get(k1).simd(S.i32splat).set(K1);
  f.get(K0).get(K1).simd(S.xor).v128i(PARITY).simd(S.xor).set(K2);
  const keys = [K0, K1, K2];
  f.get(K0).set(x0); // high counter word is 0 below 2^32
  f.get(counter).get(K1).simd(S.iadd).set(x1);
  for (let injection = 1; injection <= 5; injection++) {
    const base = (injection - 1) % 2 === 0 ? 0 : 4;
    for (let round = 0; round < 4; round++) {
      const r = ROTATIONS[base + round];
      f.get(x0).get(x1).simd(S.iadd).set(x0);
      f.get(x1).i32(r).simd(S.ishl).get(x1).i32(32 - r).simd(S.ishru).simd(S.or);
      f.get(x0).simd(S.xor).set(x1);
    }
    const s = injection % 3;
    f.get(x0).get(keys[s]).simd(S.iadd).set(x0);
    f.get(x1).get(keys[(s + 1) % 3]).simd(S.iadd).v128i(injection).simd(S.iadd).set(x1);
  }
  f.get(x0).get(x1).simd(S.xor);
}

/** Pushes u = (w >>> 8)·2^-24 as f32x4 for the words on the stack. */
function emitUnit(f: Fn): void {
  f.i32(8).simd(S.ishru).simd(S.converts).v128f(2 ** -24).simd(S.fmul);
}

/** Splits `count` elements over the threads in multiples of four; sets lo and hi. */
function split4(f: Fn, count: number, lo: number, hi: number): void {
  const v = Math.ceil(count / 4);
  f.get(0).i32(v).mul().get(1).op(0x6d).i32(4).mul().set(lo);
  f.get(0).i32(1).add().i32(v).mul().get(1).op(0x6d).i32(4).mul().set(hi);
}

/**
 * `random` (uniformSymmetric): out[i] = (2u − 1)·bound, rounded once to f32.
 * Writes whole vectors: the output buffer is padded to 16 bytes.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn, I32 } from "./_encoder.ts";
 * import { emitRandom } from "./_random.ts";
 * const f = new Fn([I32, I32]);
 * emitRandom(f, { out: 0, count: 8, seed: 1, stream: 0, bound: 1 });
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitRandom(
  f: Fn,
  p: { out: number; count: number; seed: number; stream: number; bound: number },
): void {
  const [i, lo, hi, k0, k1] = f.localsOf(I32, 5);
  const c = f.local(V128);
  f.i32(p.stream).set(k0).i32(p.seed).set(k1);
  split4(f, p.count, lo, hi);
  f.for(i, () => f.get(lo), () => f.get(hi), 4, () => {
    f.get(i).simd(S.i32splat).v128i(0, 1, 2, 3).simd(S.iadd).set(c);
    f.get(i).i32(4).mul().i32(p.out).add();
    emitWords(f, k0, k1, c);
    emitUnit(f);
    f.v128f(2).simd(S.fmul).v128f(1).simd(S.fsub).v128f(Math.fround(p.bound)).simd(S.fmul);
    f.vmem(S.store, 2);
  });
}

/**
 * `dropout`: keep x·scale where u ≥ threshold, else 0; the seed is read from memory.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn, I32 } from "./_encoder.ts";
 * import { emitDropout } from "./_random.ts";
 * const f = new Fn([I32, I32]);
 * emitDropout(f, { out: 0, x: 64, seed: 128, count: 8, stream: 0, threshold: 0.5, scale: 2 });
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitDropout(
  f: Fn,
  p: {
    out: number;
    x: number;
    seed: number;
    count: number;
    stream: number;
    threshold: number;
    scale: number;
  },
): void {
  const [i, lo, hi, k0, k1] = f.localsOf(I32, 5);
  const c = f.local(V128);
  f.i32(p.stream).set(k0).i32(p.seed).mem(0x28, 2).set(k1);
  split4(f, p.count, lo, hi);
  f.for(i, () => f.get(lo), () => f.get(hi), 4, () => {
    f.get(i).simd(S.i32splat).v128i(0, 1, 2, 3).simd(S.iadd).set(c);
    f.get(i).i32(4).mul().i32(p.out).add();
    f.get(i).i32(4).mul().i32(p.x).add().vmem(S.load, 2).v128f(p.scale).simd(S.fmul);
    emitWords(f, k0, k1, c);
    emitUnit(f);
    f.v128f(p.threshold).simd(S.fge).simd(S.and);
    f.vmem(S.store, 2);
  });
}
