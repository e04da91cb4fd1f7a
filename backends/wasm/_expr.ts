/**
 * The helper functions elementwise code calls (exp, log, tanh, pow and
 * integer division, which have no SIMD instruction) and constants. The
 * elementwise math itself comes from each op's kernel IR rule
 * (`_kernel_expr.ts`).
 *
 * @module
 */
import type { DType } from "../../compiler/ir.ts";
import { Fn, I32, V128 } from "./_encoder.ts";
import { expFn, logFn, S, tanhFn } from "./_math.ts";

/** Helper functions a module provides to kernels: name → function index. */
export interface Helpers {
  index(name: "exp" | "log" | "tanh" | "pow" | "idiv_s" | "idiv_u"): number;
}

/**
 * Builds the helper function `name`; `index` resolves the helpers it calls.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { buildHelper } from "./_expr.ts";
 * strictEqual(buildHelper("idiv_s", () => 0).params.length, 2);
 * ```
 */
export function buildHelper(name: string, index: Helpers["index"]): Fn {
  switch (name) {
    case "exp":
      return expFn();
    case "log":
      return logFn();
    case "tanh":
      return tanhFn(index("exp"));
    case "pow":
      return powFn(index);
    default:
      return intDivFn(name === "idiv_s");
  }
}

/** Integer division like the reference: truncating, and 0 for a zero divisor. */
function intDivFn(signed: boolean): Fn {
  const f = new Fn([I32, I32], [I32]);
  f.get(1).op(0x45).if().i32(0).op(0x0f).end(); // b == 0 → 0
  if (signed) f.get(1).i32(-1).op(0x46).if().i32(0).get(0).op(0x6b).op(0x0f).end(); // wraps
  f.get(0).get(1).op(signed ? 0x6d : 0x6e);
  return f;
}

/** pow(a, b) = exp(b·log|a|), with the reference's signs for negative a and pow(x, 0) = 1. */
function powFn(index: Helpers["index"]): Fn {
  const f = new Fn([V128, V128], [V128]);
  const [a, b, r] = [0, 1, f.local(V128)];
  f.get(a).simd(S.fabs).call(index("log")).get(b).simd(S.fmul).call(index("exp")).set(r);
  // Negative a: an odd integer b negates, a non-integer b gives NaN.
  const odd = () => {
    f.get(b).simd(S.truncs).v128i(1).simd(S.and).v128i(0).simd(S.ine);
    f.get(b).simd(S.fabs).v128f(2 ** 24).simd(S.flt).simd(S.and);
  };
  f.get(r).simd(S.fneg).get(r);
  odd();
  f.simd(S.bitselect);
  f.v128f(NaN).get(b).simd(S.fnearest).get(b).simd(S.feq).simd(S.bitselect);
  f.get(r).get(a).v128f(0).simd(S.flt).simd(S.bitselect);
  f.set(r).v128f(1).get(r).get(b).v128f(0).simd(S.feq).simd(S.bitselect);
  return f;
}

function splat(f: Fn, value: number, dtype: DType): void {
  if (dtype === "f32") f.v128f(value);
  else if (dtype === "bool") f.v128i(value !== 0 ? 1 : 0);
  else f.v128i(value | 0);
}

/**
 * Pushes a constant of `dtype` in all four lanes.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn } from "./_encoder.ts";
 * import { emitConst } from "./_expr.ts";
 * const f = new Fn([]);
 * emitConst(f, 1.5, "f32");
 * strictEqual(f.code.length, 18); // v128.const
 * ```
 */
export function emitConst(f: Fn, value: number, dtype: DType): void {
  splat(f, value, dtype);
}
