/**
 * Elementwise ops as f32x4 / i32x4 code. Every value is a v128 of four
 * elements (bool as 0 or 1 in an i32 lane), so one emitter serves the vector
 * loop and the lane-by-lane tail alike.
 *
 * @module
 */
import type { DType, Node } from "../../compiler/ir.ts";
import { Fn, I32, V128 } from "./_encoder.ts";
import { expFn, logFn, S, tanhFn } from "./_math.ts";

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

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

const F_BINARY: Record<string, number> = {
  add: S.fadd,
  sub: S.fsub,
  mul: S.fmul,
  div: S.fdiv,
  maximum: S.fmax,
  minimum: S.fmin,
};
const I_BINARY: Record<string, number> = { add: S.iadd, sub: S.isub, mul: S.imul };
const F_COMPARE: Record<string, number> = {
  eq: S.feq,
  ne: S.fne,
  lt: S.flt,
  le: S.fle,
  gt: S.fgt,
  ge: S.fge,
};
const I_COMPARE: Record<string, [number, number]> = {
  eq: [S.ieq, S.ieq],
  ne: [S.ine, S.ine],
  lt: [S.ilts, S.iltu],
  le: [S.iles, S.ileu],
  gt: [S.igts, S.igtu],
  ge: [S.iges, S.igeu],
};

/** Per-lane scalar integer division through a helper (no SIMD integer division exists). */
function laneDiv(f: Fn, a: number, b: number, helper: number): void {
  const r = f.local(V128);
  f.get(a).set(r);
  for (let l = 0; l < 4; l++) {
    f.get(r).get(a).simd(S.i32extract, l).get(b).simd(S.i32extract, l).call(helper);
    f.simd(S.i32replace, l).set(r);
  }
  f.get(r);
}

function emitCast(f: Fn, x: number, from: DType, to: DType): void {
  if (to === "bool") {
    f.get(x);
    if (from === "f32") f.v128f(0).simd(S.fne);
    else f.v128i(0).simd(S.ine);
    f.simd(S.ineg);
  } else if (from === "f32") {
    // Truncation; non-finite values become 0 like the reference; negative values wrap into u32.
    f.get(x).simd(S.truncs);
    if (to === "u32") f.get(x).simd(S.truncu).get(x).v128f(0).simd(S.flt).simd(S.bitselect);
    f.get(x).simd(S.fabs).v128f(Infinity).simd(S.flt).simd(S.and);
  } else {
    f.get(x); // i32 ↔ u32 ↔ bool → integer: the same bits
  }
}

/**
 * Pushes the value of elementwise `node` given its operands in v128 locals.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { Fn, V128 } from "./_encoder.ts";
 * import { emitElementwise } from "./_expr.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode(ops.input, [], { shape: [4], dtype: "f32" }, "x");
 * const f = new Fn([V128], [V128]);
 * emitElementwise(f, makeNode(ops.neg, [x], {}), [0], { index: () => 0 });
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitElementwise(f: Fn, node: Node, args: readonly number[], h: Helpers): void {
  const op = node.op;
  const t = node.inputs[0]?.dtype ?? node.dtype;
  const [a, b, c] = args;
  if (op === "cast") {
    if (node.dtype === "f32" && t === "f32") f.get(a);
    else if (node.dtype === "f32") f.get(a).simd(t === "u32" ? S.convertu : S.converts);
    else emitCast(f, a, t, node.dtype);
    return;
  }
  if (op === "where") {
    f.get(b).get(c).get(a).v128i(0).simd(S.ine).simd(S.bitselect);
    return;
  }
  if (op in F_COMPARE) {
    f.get(a).get(b);
    if (t === "f32") f.simd(F_COMPARE[op]);
    else f.simd(I_COMPARE[op][t === "i32" ? 0 : 1]);
    f.simd(S.ineg);
    return;
  }
  if (t !== "f32") {
    if (op in I_BINARY) f.get(a).get(b).simd(I_BINARY[op]);
    else if (op === "div") laneDiv(f, a, b, h.index(t === "i32" ? "idiv_s" : "idiv_u"));
    else if (op === "maximum") f.get(a).get(b).simd(t === "i32" ? S.imaxs : S.imaxu);
    else if (op === "minimum") f.get(a).get(b).simd(t === "i32" ? S.imins : S.iminu);
    else throw new Error(`wasm: no ${t} lowering for ${op}`);
    return;
  }
  if (op in F_BINARY) {
    f.get(a).get(b).simd(F_BINARY[op]);
    return;
  }
  switch (op) {
    case "neg":
      f.get(a).simd(S.fneg);
      return;
    case "abs":
      f.get(a).simd(S.fabs);
      return;
    case "sqrt":
      f.get(a).simd(S.fsqrt);
      return;
    case "rsqrt":
      f.v128f(1).get(a).simd(S.fsqrt).simd(S.fdiv);
      return;
    case "relu":
      f.get(a).get(a).v128f(0).simd(S.fgt).simd(S.and);
      return;
    case "exp":
    case "log":
    case "tanh":
      f.get(a).call(h.index(op));
      return;
    case "pow":
      f.get(a).get(b).call(h.index("pow"));
      return;
    case "gelu": {
      // 0.5·x·(1 + tanh(c·(x + a·x³))), the argument clamped to ±20 like the WGSL.
      f.v128f(0.5).get(a).simd(S.fmul).v128f(1);
      f.get(a).get(a).simd(S.fmul).get(a).simd(S.fmul).v128f(GELU_A).simd(S.fmul);
      f.get(a).simd(S.fadd).v128f(GELU_C).simd(S.fmul);
      f.v128f(-20).simd(S.fmax).v128f(20).simd(S.fmin).call(h.index("tanh"));
      f.simd(S.fadd).simd(S.fmul);
      return;
    }
  }
  throw new Error(`wasm: no lowering for elementwise op ${op}`);
}
