/**
 * Kernel IR expressions as f32x4 / i32x4 code: the Wasm backend computes an
 * elementwise op from the op's own `inline` rule (the same rule the WebGPU
 * backend renders to WGSL), so an op's math is written once. Every value is
 * a v128 of four elements; bools are 0 or 1 in i32 lanes.
 *
 * Only what pointwise and row rules use is supported: literals, references
 * to locals, arithmetic, comparisons, logic, math functions, select and
 * conversions. Loads and calls mean different things to different kernel
 * families, so the caller renders them (`ExprLocals.emit`); invocation ids
 * have no Wasm meaning.
 *
 * @module
 */
import type { Expr, ScalarType, ValueType } from "../../compiler/kernel_ir/ir.ts";
import { type Fn, V128 } from "./_encoder.ts";
import type { Helpers } from "./_expr.ts";
import { S } from "./_math.ts";

/** Where the renderer finds the values an expression refers to. */
export interface ExprLocals {
  /** The v128 local holding the value named `name`. */
  local(name: string): number;
  /**
   * Renders `e` itself when the caller owns it (the row kernels' loads,
   * column indices and lane reductions) and returns true; false leaves it
   * to {@link emitKernelExpr}. Consulted for every node, nested ones too.
   */
  emit?(e: Expr): boolean;
}

const F_ARITH: Partial<Record<string, number>> = {
  "+": S.fadd,
  "-": S.fsub,
  "*": S.fmul,
  "/": S.fdiv,
};
const I_ARITH: Partial<Record<string, number>> = { "+": S.iadd, "-": S.isub, "*": S.imul };
const F_COMPARE: Partial<Record<string, number>> = {
  "==": S.feq,
  "!=": S.fne,
  "<": S.flt,
  "<=": S.fle,
  ">": S.fgt,
  ">=": S.fge,
};
const I_COMPARE: Partial<Record<string, readonly [signed: number, unsigned: number]>> = {
  "==": [S.ieq, S.ieq],
  "!=": [S.ine, S.ine],
  "<": [S.ilts, S.iltu],
  "<=": [S.iles, S.ileu],
  ">": [S.igts, S.igtu],
  ">=": [S.iges, S.igeu],
};

function scalar(type: ValueType): ScalarType {
  if (type === "vec2u" || type === "vec4f") {
    throw new Error(`wasm: kernel expressions of type ${type} are not supported here`);
  }
  return type;
}

/**
 * Pushes the value of `e` in all four lanes.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, f32, ref } from "../../compiler/kernel_ir/build.ts";
 * import { Fn, V128 } from "./_encoder.ts";
 * import { emitKernelExpr } from "./_kernel_expr.ts";
 * const f = new Fn([V128], [V128]);
 * emitKernelExpr(f, add(ref("x", "f32"), f32(1)), { local: () => 0 }, { index: () => 0 });
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitKernelExpr(f: Fn, e: Expr, locals: ExprLocals, h: Helpers): void {
  const emit = (x: Expr) => emitKernelExpr(f, x, locals, h);
  if (locals.emit?.(e) === true) return;
  switch (e.kind) {
    case "literal":
      if (e.type === "f32") f.v128f(e.value);
      else f.v128i(e.type === "bool" ? (e.value !== 0 ? 1 : 0) : e.value | 0);
      return;
    case "ref":
      f.get(locals.local(e.name));
      return;
    case "unary":
      if (e.op === "!") {
        emit(e.x);
        f.v128i(1).simd(S.xor);
      } else if (scalar(e.type) === "f32") {
        emit(e.x);
        f.simd(S.fneg);
      } else {
        emit(e.x);
        f.simd(S.ineg);
      }
      return;
    case "binary":
      return binary(f, e, emit, h);
    case "math":
      return mathCall(f, e, emit, h);
    case "select":
      // bitselect takes its mask from all bits: widen the 0/1 condition.
      emit(e.ifTrue);
      emit(e.ifFalse);
      emit(e.cond);
      f.v128i(0).simd(S.ine).simd(S.bitselect);
      return;
    case "convert":
      return convert(f, e.x, scalar(e.x.type), e.type, emit);
    default:
      throw new Error(`wasm: no elementwise lowering for a kernel IR ${e.kind} expression`);
  }
}

function binary(
  f: Fn,
  e: Extract<Expr, { kind: "binary" }>,
  emit: (x: Expr) => void,
  h: Helpers,
): void {
  const t = scalar(e.a.type);
  const compare = t === "f32" ? F_COMPARE[e.op] : I_COMPARE[e.op]?.[t === "i32" ? 0 : 1];
  if (compare !== undefined) {
    emit(e.a);
    emit(e.b);
    f.simd(compare).simd(S.ineg); // all-ones → 1
    return;
  }
  if (e.op === "&&" || e.op === "||") {
    emit(e.a);
    emit(e.b);
    f.simd(e.op === "&&" ? S.and : S.or);
    return;
  }
  if (t !== "f32" && e.op === "/") {
    // No SIMD integer division: lane by lane through the helper (0 for a zero divisor).
    const [a, b, r] = [f.local(V128), f.local(V128), f.local(V128)];
    emit(e.a);
    f.set(a);
    emit(e.b);
    f.set(b);
    f.get(a).set(r);
    const helper = h.index(t === "i32" ? "idiv_s" : "idiv_u");
    for (let l = 0; l < 4; l++) {
      f.get(r).get(a).simd(S.i32extract, l).get(b).simd(S.i32extract, l).call(helper);
      f.simd(S.i32replace, l).set(r);
    }
    f.get(r);
    return;
  }
  const code = t === "f32" ? F_ARITH[e.op] : I_ARITH[e.op];
  if (code === undefined) throw new Error(`wasm: no ${t} lowering for ${e.op}`);
  emit(e.a);
  emit(e.b);
  f.simd(code);
}

function mathCall(
  f: Fn,
  e: Extract<Expr, { kind: "math" }>,
  emit: (x: Expr) => void,
  h: Helpers,
): void {
  const t = scalar(e.type);
  const [x, y, z] = e.args;
  const minMax = (which: "min" | "max") =>
    t === "f32"
      ? (which === "min" ? S.fmin : S.fmax)
      : t === "i32"
      ? (which === "min" ? S.imins : S.imaxs)
      : (which === "min" ? S.iminu : S.imaxu);
  switch (e.fn) {
    case "exp":
    case "log":
    case "tanh":
      emit(x);
      f.call(h.index(e.fn));
      return;
    case "pow":
      emit(x);
      emit(y);
      f.call(h.index("pow"));
      return;
    case "abs":
      emit(x);
      f.simd(t === "f32" ? S.fabs : S.iabs);
      return;
    case "sqrt":
      emit(x);
      f.simd(S.fsqrt);
      return;
    case "inverseSqrt":
      f.v128f(1);
      emit(x);
      f.simd(S.fsqrt).simd(S.fdiv);
      return;
    case "floor":
    case "ceil":
      emit(x);
      f.simd(e.fn === "floor" ? S.ffloor : S.fceil);
      return;
    case "max":
    case "min":
      emit(x);
      emit(y);
      f.simd(minMax(e.fn));
      return;
    case "clamp":
      emit(x);
      emit(y);
      f.simd(minMax("max"));
      emit(z);
      f.simd(minMax("min"));
      return;
    default:
      throw new Error(`wasm: no lowering for the math function ${e.fn}`);
  }
}

function convert(
  f: Fn,
  x: Expr,
  from: ScalarType,
  to: ScalarType,
  emit: (x: Expr) => void,
): void {
  if (to === "f32") {
    emit(x);
    if (from === "u32") f.simd(S.convertu);
    else if (from !== "f32") f.simd(S.converts); // i32, and bool's 0/1
    return;
  }
  if (to === "bool") {
    emit(x);
    if (from === "f32") f.v128f(0).simd(S.fne);
    else f.v128i(0).simd(S.ine);
    f.simd(S.ineg);
    return;
  }
  if (from !== "f32") {
    emit(x); // i32 ↔ u32 ↔ bool → integer: the same bits
    return;
  }
  // Truncation; non-finite values become 0 like the reference; negative values wrap into u32.
  const v = f.local(V128);
  emit(x);
  f.set(v);
  f.get(v).simd(S.truncs);
  if (to === "u32") f.get(v).simd(S.truncu).get(v).v128f(0).simd(S.flt).simd(S.bitselect);
  f.get(v).simd(S.fabs).v128f(Infinity).simd(S.flt).simd(S.and);
}
