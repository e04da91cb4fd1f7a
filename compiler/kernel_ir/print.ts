/**
 * A compact, backend-neutral text form of kernel IR expressions: what
 * generators use as structural keys (two expressions print alike exactly
 * when they compute the same thing from the same names), and what tests and
 * error messages show.
 *
 * @module
 */
import type { Expr } from "./ir.ts";

/**
 * The text of an expression: `(a + b)`, `in0[i]`, `exp(x)`, `f32(3u)`, `3u`, `1.5f`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, load, ref, u32 } from "./build.ts";
 * import { formatExpr } from "./print.ts";
 * strictEqual(formatExpr(add(load("in0", ref("i", "u32"), "f32"), load("in1", u32(0), "f32"))), "(in0[i] + in1[0u])");
 * ```
 */
export function formatExpr(e: Expr): string {
  // Expressions are immutable and generators key values by their text, so
  // each node's text is built once.
  let text = formatted.get(e);
  if (text === undefined) {
    text = format(e);
    formatted.set(e, text);
  }
  return text;
}

const formatted = new WeakMap<Expr, string>();

function format(e: Expr): string {
  switch (e.kind) {
    case "literal":
      return `${e.value}${{ f32: "f", i32: "i", u32: "u", bool: "b" }[e.type]}`;
    case "ref":
      return e.name;
    case "id":
      return e.id.of === "localIndex" ? "@localIndex" : `@${e.id.of}.${"xyz"[e.id.axis]}`;
    case "load":
      return `${e.array}[${formatExpr(e.index)}]`;
    case "unary":
      return `(${e.op}${formatExpr(e.x)})`;
    case "binary":
      return `(${formatExpr(e.a)} ${e.op} ${formatExpr(e.b)})`;
    case "math":
      return `${e.fn}(${e.args.map(formatExpr).join(", ")})`;
    case "call":
      return `${e.fn.name}(${e.args.map(formatExpr).join(", ")})`;
    case "select":
      return `(${formatExpr(e.cond)} ? ${formatExpr(e.ifTrue)} : ${formatExpr(e.ifFalse)})`;
    case "convert":
      return `${e.type}(${formatExpr(e.x)})`;
    case "bitcast":
      return `bitcast<${e.type}>(${formatExpr(e.x)})`;
    case "vector":
      return `${e.type}(${e.parts.map(formatExpr).join(", ")})`;
    case "lane":
      return `${formatExpr(e.x)}.${"xyzw"[e.lane]}`;
  }
}
