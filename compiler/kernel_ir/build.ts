/**
 * Constructors of kernel IR expressions and a statement builder. Types are
 * inferred and checked here, so a generator that mixes u32 and f32 fails
 * when it builds the kernel, with both operands named, not when a driver
 * compiles the rendered source.
 *
 * @module
 */
import type {
  BinaryOp,
  Expr,
  InvocationId,
  KernelFunction,
  MathFunction,
  ScalarType,
  ValueType,
} from "./ir.ts";

/**
 * A scalar literal. Non-finite f32 values are allowed (renderers spell them as bit patterns).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { lit } from "./build.ts";
 * deepStrictEqual(lit(3, "u32"), { kind: "literal", type: "u32", value: 3 });
 * ```
 */
export function lit(value: number | boolean, type: ScalarType): Expr {
  const v = typeof value === "boolean" ? (value ? 1 : 0) : value;
  if (type !== "f32" && !Number.isInteger(v)) {
    throw new Error(`kernel IR: ${type} literal ${value} is not an integer`);
  }
  return { kind: "literal", type, value: v };
}

/**
 * An f32 literal.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32 } from "./build.ts";
 * strictEqual(f32(0.5).type, "f32");
 * ```
 */
export const f32 = (value: number): Expr => lit(value, "f32");

/**
 * A u32 literal.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { u32 } from "./build.ts";
 * strictEqual(u32(7).type, "u32");
 * ```
 */
export const u32 = (value: number): Expr => lit(value >>> 0, "u32");

/**
 * A reference to a named value (a `let`, `var`, or function parameter).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ref } from "./build.ts";
 * strictEqual(ref("row", "u32").kind, "ref");
 * ```
 */
export function ref(name: string, type: ValueType): Expr {
  return { kind: "ref", type, name };
}

/**
 * A built-in invocation id.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { invocation } from "./build.ts";
 * strictEqual(invocation({ of: "localIndex" }).type, "u32");
 * ```
 */
export function invocation(id: InvocationId): Expr {
  return { kind: "id", type: "u32", id };
}

/**
 * Element `index` of a buffer or shared array whose elements are `type`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { load, u32 } from "./build.ts";
 * strictEqual(load("in0", u32(2), "f32").type, "f32");
 * ```
 */
export function load(array: string, index: Expr, type: ValueType): Expr {
  expectType(index, ["u32", "i32"], `index into ${array}`);
  return { kind: "load", type, array, index };
}

const COMPARISONS = new Set<BinaryOp>(["<", "<=", ">", ">=", "==", "!="]);

/**
 * A binary operation. Operands must have the same type, except that a
 * vector may be combined with a scalar of its element type and shifts take
 * a u32 amount; comparisons give bool.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { binary, f32, u32 } from "./build.ts";
 * strictEqual(binary("<", u32(1), u32(2)).type, "bool");
 * throws(() => binary("+", u32(1), f32(2)), /u32 \+ f32/);
 * ```
 */
export function binary(op: BinaryOp, a: Expr, b: Expr): Expr {
  let type: ValueType = a.type;
  const shift = op === "<<" || op === ">>";
  if (shift ? b.type !== "u32" && b.type !== "vec2u" : a.type !== b.type) {
    if (isVector(a.type) && b.type === elementOf(a.type)) type = a.type;
    else if (isVector(b.type) && a.type === elementOf(b.type)) type = b.type;
    else throw new Error(`kernel IR: ${a.type} ${op} ${b.type}: operand types differ`);
  }
  if (COMPARISONS.has(op)) type = "bool";
  if ((op === "&&" || op === "||") && a.type !== "bool") {
    throw new Error(`kernel IR: ${op} needs bool operands, got ${a.type}`);
  }
  return { kind: "binary", type, op, a, b };
}

/**
 * `a + b`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, u32 } from "./build.ts";
 * strictEqual(add(u32(1), u32(2)).type, "u32");
 * ```
 */
export const add = (a: Expr, b: Expr): Expr => binary("+", a, b);
/**
 * `a - b`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, sub } from "./build.ts";
 * strictEqual(sub(f32(1), f32(2)).type, "f32");
 * ```
 */
export const sub = (a: Expr, b: Expr): Expr => binary("-", a, b);
/**
 * `a * b`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { mul, u32 } from "./build.ts";
 * strictEqual(mul(u32(3), u32(2)).type, "u32");
 * ```
 */
export const mul = (a: Expr, b: Expr): Expr => binary("*", a, b);
/**
 * `a / b`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { div, f32 } from "./build.ts";
 * strictEqual(div(f32(3), f32(2)).type, "f32");
 * ```
 */
export const div = (a: Expr, b: Expr): Expr => binary("/", a, b);

/**
 * Negation (`-x`) or logical not (`!x`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, unary } from "./build.ts";
 * strictEqual(unary("-", f32(1)).type, "f32");
 * ```
 */
export function unary(op: "-" | "!", x: Expr): Expr {
  if (op === "!") expectType(x, ["bool"], "operand of !");
  return { kind: "unary", type: x.type, op, x };
}

/**
 * A built-in math function; the result has the first argument's type.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, math } from "./build.ts";
 * strictEqual(math("max", f32(1), f32(2)).type, "f32");
 * ```
 */
export function math(fn: MathFunction, ...args: Expr[]): Expr {
  const type = args.find((a) => isVector(a.type))?.type ?? args[0].type;
  for (const a of args) {
    if (a.type !== type && a.type !== elementOf(type)) {
      throw new Error(`kernel IR: ${fn}(${args.map((x) => x.type).join(", ")}): mixed types`);
    }
  }
  return { kind: "math", type, fn, args };
}

/**
 * A call of a kernel helper function that returns a value.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { call, ref, u32 } from "./build.ts";
 * const twice = { name: "twice", params: [{ name: "x", type: "u32" as const }], returns: "u32" as const,
 *   body: [{ kind: "return" as const, value: ref("x", "u32") }] };
 * strictEqual(call(twice, u32(2)).type, "u32");
 * ```
 */
export function call(fn: KernelFunction, ...args: Expr[]): Expr {
  if (fn.returns === undefined) throw new Error(`kernel IR: ${fn.name} returns nothing`);
  checkArgs(fn, args);
  return { kind: "call", type: fn.returns, fn, args };
}

/**
 * `cond ? ifTrue : ifFalse`, evaluating both.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, lit, select } from "./build.ts";
 * strictEqual(select(lit(true, "bool"), f32(1), f32(0)).type, "f32");
 * ```
 */
export function select(cond: Expr, ifTrue: Expr, ifFalse: Expr): Expr {
  expectType(cond, ["bool"], "select condition");
  if (ifTrue.type !== ifFalse.type) {
    throw new Error(`kernel IR: select branches differ (${ifTrue.type}, ${ifFalse.type})`);
  }
  return { kind: "select", type: ifTrue.type, cond, ifTrue, ifFalse };
}

/**
 * A value conversion (`f32(x)`, `u32(x)`; bool ↔ number as 0/1).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { convert, u32 } from "./build.ts";
 * strictEqual(convert("f32", u32(3)).type, "f32");
 * strictEqual(convert("u32", u32(3)).kind, "literal");
 * ```
 */
export function convert(type: ScalarType, x: Expr): Expr {
  if (x.type === type) return x;
  return { kind: "convert", type, x };
}

/**
 * Reinterprets the bits of a 32-bit scalar.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { bitcast, u32 } from "./build.ts";
 * strictEqual(bitcast("f32", u32(0x3f800000)).type, "f32");
 * ```
 */
export function bitcast(type: ScalarType, x: Expr): Expr {
  return { kind: "bitcast", type, x };
}

/**
 * A vector from its lanes (one part splats).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, vector } from "./build.ts";
 * strictEqual(vector("vec4f", f32(0)).type, "vec4f");
 * ```
 */
export function vector(type: "vec2u" | "vec4f", ...parts: Expr[]): Expr {
  const lanes = type === "vec2u" ? 2 : 4;
  if (parts.length !== 1 && parts.length !== lanes) {
    throw new Error(`kernel IR: ${type} takes 1 or ${lanes} parts, got ${parts.length}`);
  }
  for (const p of parts) expectType(p, [elementOf(type)], `${type} part`);
  return { kind: "vector", type, parts };
}

/**
 * One lane of a vector.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, lane, vector } from "./build.ts";
 * strictEqual(lane(vector("vec4f", f32(1)), 3).type, "f32");
 * ```
 */
export function lane(x: Expr, index: number): Expr {
  if (!isVector(x.type)) throw new Error(`kernel IR: lane of a ${x.type}`);
  const type = elementOf(x.type);
  if (index < 0 || index >= (x.type === "vec2u" ? 2 : 4)) {
    throw new Error(`kernel IR: lane ${index} of a ${x.type}`);
  }
  return { kind: "lane", type, x, lane: index };
}

function isVector(t: ValueType): t is "vec2u" | "vec4f" {
  return t === "vec2u" || t === "vec4f";
}

function elementOf(t: ValueType): ScalarType {
  return t === "vec2u" ? "u32" : t === "vec4f" ? "f32" : t;
}

/**
 * Throws unless `e` has one of `types`, naming `what` (the builder's own type check).
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { expectType, f32 } from "./build.ts";
 * throws(() => expectType(f32(1), ["u32"], "an index"), /an index must be u32, got f32/);
 * ```
 */
export function expectType(e: Expr, types: readonly ValueType[], what: string): void {
  if (!types.includes(e.type)) {
    throw new Error(`kernel IR: ${what} must be ${types.join(" or ")}, got ${e.type}`);
  }
}

/**
 * Throws unless `args` match the parameters of `fn` in number and type.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkArgs, f32 } from "./build.ts";
 * const fn = { name: "g", params: [{ name: "x", type: "u32" as const }], body: [] };
 * throws(() => checkArgs(fn, [f32(1)]), /g\(u32\) called with \(f32\)/);
 * ```
 */
export function checkArgs(fn: KernelFunction, args: readonly Expr[]): void {
  if (args.length !== fn.params.length || args.some((a, i) => a.type !== fn.params[i].type)) {
    throw new Error(
      `kernel IR: ${fn.name}(${fn.params.map((p) => p.type).join(", ")}) called with (${
        args.map((a) => a.type).join(", ")
      })`,
    );
  }
}
