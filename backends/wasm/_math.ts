/**
 * f32x4 versions of exp, log and tanh (Cephes' single-precision polynomials,
 * about 1–2 ulp), since WebAssembly has no transcendental instructions. Each
 * is one helper function of a kernel module, `(v128) -> v128`.
 *
 * @module
 */
import { Fn, V128 } from "./_encoder.ts";

/** SIMD opcodes used here and by the expression emitter. */
export const S = {
  load: 0,
  splat32: 9,
  store: 11,
  i32splat: 17,
  f32splat: 19,
  i32extract: 27,
  i32replace: 28,
  f32extract: 31,
  f32replace: 32,
  ieq: 55,
  ine: 56,
  ilts: 57,
  iltu: 58,
  igts: 59,
  igtu: 60,
  iles: 61,
  ileu: 62,
  iges: 63,
  igeu: 64,
  feq: 65,
  fne: 66,
  flt: 67,
  fgt: 68,
  fle: 69,
  fge: 70,
  not: 77,
  and: 78,
  andnot: 79,
  or: 80,
  xor: 81,
  bitselect: 82,
  load32zero: 92,
  load32lane: 86,
  store32lane: 90,
  fceil: 103,
  ffloor: 104,
  ftrunc: 105,
  fnearest: 106,
  iabs: 160,
  ineg: 161,
  ishl: 171,
  ishrs: 172,
  ishru: 173,
  iadd: 174,
  isub: 177,
  imul: 181,
  imins: 182,
  iminu: 183,
  imaxs: 184,
  imaxu: 185,
  fabs: 224,
  fneg: 225,
  fsqrt: 227,
  fadd: 228,
  fsub: 229,
  fmul: 230,
  fdiv: 231,
  fmin: 232,
  fmax: 233,
  // f32x4.pmax: b > a ? b : a per lane (the reference's maximum, where NaN never wins).
  pmax: 235,
  truncs: 248,
  truncu: 249,
  converts: 250,
  convertu: 251,
  madd: 261,
} as const;

/** Pushes `a*x + b` for f32x4 `x` in local `x` and polynomial coefficients (highest first). */
function horner(f: Fn, x: number, coeffs: readonly number[]): void {
  f.v128f(coeffs[0]);
  for (const c of coeffs.slice(1)) f.get(x).simd(S.fmul).v128f(c).simd(S.fadd);
}

/**
 * exp(x): 2^n · p(r) with r = x − n·ln2 in two parts; overflow → inf, underflow → 0.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { expFn } from "./_math.ts";
 * strictEqual(expFn().params.length, 1);
 * ```
 */
export function expFn(): Fn {
  const f = new Fn([V128], [V128]);
  const [x, n, r, ni, half] = [0, f.local(V128), f.local(V128), f.local(V128), f.local(V128)];
  f.get(x).v128f(-103.97208).simd(S.fmax).v128f(88.72283).simd(S.fmin).tee(r);
  f.v128f(Math.LOG2E).simd(S.fmul).simd(S.fnearest).set(n);
  f.get(r).get(n).v128f(0.693359375).simd(S.fmul).simd(S.fsub);
  f.get(n).v128f(-2.12194440e-4).simd(S.fmul).simd(S.fsub).set(r);
  horner(f, r, [
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
  ]);
  f.get(r).get(r).simd(S.fmul).simd(S.fmul).get(r).simd(S.fadd).v128f(1).simd(S.fadd);
  // · 2^n as 2^(n>>1) · 2^(n − n>>1): each factor stays a normal float for n in [−150, 128].
  f.get(n).simd(S.truncs).tee(ni).i32(1).simd(S.ishrs).set(half);
  f.get(half).v128i(127).simd(S.iadd).i32(23).simd(S.ishl).simd(S.fmul);
  f.get(ni).get(half).simd(S.isub).v128i(127).simd(S.iadd).i32(23).simd(S.ishl).simd(S.fmul);
  f.set(r);
  // Outside the clamp: inf above, 0 below; NaN passes through the polynomial as NaN.
  f.v128f(Infinity).get(r).get(x).v128f(88.72283).simd(S.fgt).simd(S.bitselect);
  f.get(x).v128f(-103.97208).simd(S.flt).simd(S.andnot);
  return f;
}

/**
 * log(x): exponent and mantissa in [√½, √2), a degree-9 polynomial of m − 1.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { logFn } from "./_math.ts";
 * strictEqual(logFn().params.length, 1);
 * ```
 */
export function logFn(): Fn {
  const f = new Fn([V128], [V128]);
  const [x, e, m, z, y, small] = [
    0,
    f.local(V128),
    f.local(V128),
    f.local(V128),
    f.local(V128),
    f.local(V128),
  ];
  // Subnormals are scaled by 2^23 first so the exponent field is meaningful.
  f.get(x).v128f(2 ** 23).simd(S.fmul).get(x).get(x).v128f(1.17549435e-38).simd(S.flt).tee(small);
  f.simd(S.bitselect).set(m);
  f.get(m).i32(23).simd(S.ishru).v128i(127).simd(S.isub).simd(S.converts);
  f.v128f(23).get(small).simd(S.and).simd(S.fsub).set(e);
  // Mantissa in [0.5, 1).
  f.get(m).v128i(0x007fffff).simd(S.and).v128i(0x3f000000).simd(S.or).set(m);
  // Reused: all ones when m < √½ (the mantissa doubles, the exponent drops by one).
  f.get(m).v128f(Math.SQRT1_2).simd(S.flt).set(small);
  f.get(e).v128f(1).simd(S.fadd).get(small).v128f(1).simd(S.and).simd(S.fsub).set(e);
  f.get(m).get(m).get(small).simd(S.and).simd(S.fadd).v128f(1).simd(S.fsub).set(m);
  f.get(m).get(m).simd(S.fmul).set(z);
  horner(f, m, [
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
  ]);
  f.get(m).simd(S.fmul).get(z).simd(S.fmul);
  f.get(e).v128f(-2.12194440e-4).simd(S.fmul).simd(S.fadd);
  f.get(z).v128f(-0.5).simd(S.fmul).simd(S.fadd).get(m).simd(S.fadd);
  f.get(e).v128f(0.693359375).simd(S.fmul).simd(S.fadd).set(y);
  // Special values: 0 → -inf, negative or NaN → NaN, +inf → +inf.
  f.v128f(-Infinity).get(y).get(x).v128f(0).simd(S.feq).simd(S.bitselect).set(y);
  f.get(y).v128f(NaN).get(x).v128f(0).simd(S.fge).simd(S.bitselect).set(y);
  f.get(x).get(y).get(x).v128f(Infinity).simd(S.feq).simd(S.bitselect);
  return f;
}

/**
 * tanh(x): an odd polynomial for |x| < 0.625, else 1 − 2/(e^{2|x|} + 1) with x's sign.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { tanhFn } from "./_math.ts";
 * strictEqual(tanhFn(0).params.length, 1);
 * ```
 */
export function tanhFn(expIndex: number): Fn {
  const f = new Fn([V128], [V128]);
  const [x, a, z, p] = [0, f.local(V128), f.local(V128), f.local(V128)];
  f.get(x).simd(S.fabs).set(a);
  f.get(x).get(x).simd(S.fmul).set(z);
  horner(f, z, [
    -5.70498872745e-3,
    2.06390887954e-2,
    -5.37397155531e-2,
    1.33314422036e-1,
    -3.33332819422e-1,
  ]);
  f.get(z).simd(S.fmul).get(x).simd(S.fmul).get(x).simd(S.fadd).set(p);
  f.v128f(1).v128f(2).get(a).v128f(2).simd(S.fmul).v128f(40).simd(S.fmin).call(expIndex);
  f.v128f(1).simd(S.fadd).simd(S.fdiv).simd(S.fsub);
  // Copy x's sign onto the large-|x| branch.
  f.get(x).v128i(-0x80000000).simd(S.and).simd(S.or);
  f.set(z).get(p).get(z).get(a).v128f(0.625).simd(S.flt).simd(S.bitselect);
  return f;
}
