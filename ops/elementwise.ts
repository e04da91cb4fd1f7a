/**
 * Elementwise ops. Operands have equal shapes (broadcasting is an explicit
 * `broadcast` node, inserted by the tracer), so vjps need no reductions and
 * chains of these ops fuse into one kernel.
 */
import { defineOp, type DType, makeNode, type Node, type OpDef } from "../compiler/ir.ts";
import { constant } from "./leaf.ts";
import { mapData, opError, pointwise, sameShapes } from "./rules.ts";
import {
  add as addExpr,
  binary,
  convert,
  div as divExpr,
  type Expr,
  f32,
  lit,
  math,
  mul as mulExpr,
  select as selectExpr,
  unary as unaryExpr,
} from "../compiler/kernel_ir/mod.ts";

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

// The vjps below build nodes of this module's own ops, whose operands have
// equal shapes: constants are made at the operand's shape (a fill costs
// nothing: it is inlined), so no broadcast op is needed here.

/** `value` at the shape and dtype of `like`. */
function full(value: number, like: Node): Node {
  return makeNode(constant, [], { value, shape: [...like.shape], dtype: like.dtype });
}

function unary(
  name: string,
  f: (x: number) => number,
  expr: (x: Expr) => Expr,
  vjp: (x: Node, y: Node, g: Node) => Node,
): OpDef {
  return defineOp({
    name,
    kind: "elementwise",
    infer: ([x, ...rest]) => {
      if (x === undefined || rest.length > 0) opError(name, "takes one operand", [x, ...rest]);
      if (x.dtype !== "f32") opError(name, "needs an f32 operand", [x]);
      return x;
    },
    cpu: (inputs, { node }) => mapData(node.dtype, inputs, f),
    vjp: (node, g) => [vjp(node.inputs[0], node, g)],
    lowering: "inline",
    inline: pointwise(([x]) => expr(x)),
  });
}

/**
 * ReLU of a kernel value, as `x > 0 ? x : 0`: not `max(x, 0)`, which leaves
 * NaN as NaN on some targets where the reference gives 0.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatExpr, ref } from "../compiler/kernel_ir/mod.ts";
 * import { reluExpr } from "./elementwise.ts";
 * strictEqual(formatExpr(reluExpr(ref("x", "f32"))), "((x > 0f) ? x : 0f)");
 * ```
 */
export function reluExpr(x: Expr): Expr {
  return selectExpr(binary(">", x, f32(0)), x, f32(0));
}

/**
 * GELU (tanh approximation) of a kernel value; the tanh argument is clamped
 * because some drivers' `tanh` returns NaN for large inputs.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32 } from "../compiler/kernel_ir/mod.ts";
 * import { geluExpr } from "./elementwise.ts";
 * strictEqual(geluExpr(f32(1)).type, "f32");
 * ```
 */
export function geluExpr(x: Expr): Expr {
  const cube = mulExpr(mulExpr(mulExpr(f32(GELU_A), x), x), x);
  const inner = math("clamp", mulExpr(f32(GELU_C), addExpr(x, cube)), f32(-20), f32(20));
  return mulExpr(mulExpr(f32(0.5), x), addExpr(f32(1), math("tanh", inner)));
}

function geluValue(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_A * x * x * x)));
}

// Builders of this module's ops for the vjps (operands of equal shapes).
const op1 = (def: () => OpDef) => (x: Node): Node => makeNode(def(), [x]);
const op2 = (def: () => OpDef) => (a: Node, b: Node): Node => makeNode(def(), [a, b]);
const mulOf = op2(() => mul), divOf = op2(() => div), addOf = op2(() => add);
const subOf = op2(() => sub), negOf = op1(() => neg);
const select = (c: Node, a: Node, b: Node): Node => makeNode(where, [c, a, b]);

/** `-x`. */
export const neg: OpDef = unary(
  "neg",
  (x) => -x,
  (x) => unaryExpr("-", x),
  (_x, _y, g) => negOf(g),
);
/** `e^x`. */
export const exp: OpDef = unary("exp", Math.exp, (x) => math("exp", x), (_x, y, g) => mulOf(g, y));
/** Natural logarithm. */
export const log: OpDef = unary("log", Math.log, (x) => math("log", x), (x, _y, g) => divOf(g, x));
/** Square root. */
export const sqrt: OpDef = unary(
  "sqrt",
  Math.sqrt,
  (x) => math("sqrt", x),
  (_x, y, g) => divOf(mulOf(g, full(0.5, g)), y),
);
/** `1 / sqrt(x)`. */
export const rsqrt: OpDef = unary(
  "rsqrt",
  (x) => 1 / Math.sqrt(x),
  (x) => math("inverseSqrt", x),
  (_x, y, g) => mulOf(g, mulOf(full(-0.5, y), mulOf(y, mulOf(y, y)))),
);
// tanh in the kernel IR. The builtin is clamped (some drivers overflow exp()
// inside it for |x| > ~44), and replaced near 0 by its Taylor series to x⁷
// (truncation below 2e-9 relative for |x| < 0.125): WGSL lets tanh inherit
// the error of (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ), and Mesa's llvmpipe measured 3e-6
// relative at x = 0.01 and 1.4e-3 at 1e-5.
function tanhExpr(x: Expr): Expr {
  const x2 = mulExpr(x, x);
  const poly = addExpr(
    f32(-0.33333334),
    mulExpr(x2, binary("-", f32(0.13333334), mulExpr(f32(0.053968254), x2))),
  );
  const series = mulExpr(x, addExpr(f32(1), mulExpr(x2, poly)));
  const small = binary("<", math("abs", x), f32(0.125));
  return selectExpr(small, series, math("tanh", math("clamp", x, f32(-20), f32(20))));
}

export const tanh: OpDef = unary(
  "tanh",
  Math.tanh,
  tanhExpr,
  (_x, y, g) => mulOf(g, subOf(full(1, y), mulOf(y, y))),
);
/** `max(x, 0)`. */
export const relu: OpDef = unary(
  "relu",
  (x) => (x > 0 ? x : 0),
  reluExpr,
  (x, _y, g) => select(makeNode(gt, [x, full(0, x)]), g, full(0, g)),
);
/** `|x|`. */
export const abs: OpDef = unary(
  "abs",
  Math.abs,
  (x) => math("abs", x),
  (x, _y, g) => select(makeNode(lt, [x, full(0, x)]), negOf(g), g),
);
/** GELU, tanh form (PyTorch's `approximate="tanh"`, Hugging Face's `gelu_new`). */
export const gelu: OpDef = unary(
  "gelu",
  geluValue,
  geluExpr,
  (x, _y, g) => {
    // d/dx of 0.5·x·(1 + tanh(c·(x + a·x³))).
    const c = (v: number) => full(v, x);
    const x2 = mulOf(x, x);
    const t = makeNode(tanh, [mulOf(c(GELU_C), addOf(x, mulOf(c(GELU_A), mulOf(x2, x))))]);
    const dInner = mulOf(c(GELU_C), addOf(c(1), mulOf(c(3 * GELU_A), x2)));
    const left = mulOf(c(0.5), addOf(c(1), t));
    const right = mulOf(mulOf(c(0.5), x), mulOf(subOf(c(1), mulOf(t, t)), dInner));
    return mulOf(g, addOf(left, right));
  },
);

type BinaryVjp = (a: Node, b: Node, y: Node, g: Node) => [Node | null, Node | null];

function binaryOp(
  name: string,
  f: (a: number, b: number, dtype: DType) => number,
  expr: (a: Expr, b: Expr, dtype: DType) => Expr,
  vjp: BinaryVjp,
  floatOnly = false,
): OpDef {
  return defineOp({
    name,
    kind: "elementwise",
    infer: (inputs) => {
      if (inputs.length !== 2) opError(name, "takes two operands", inputs);
      sameShapes(name, inputs);
      const [a, b] = inputs;
      if (a.dtype !== b.dtype) opError(name, "operands must have the same dtype", inputs);
      if (a.dtype === "bool" || (floatOnly && a.dtype !== "f32")) {
        opError(name, `does not take ${a.dtype} operands`, inputs);
      }
      return a;
    },
    cpu: (inputs, { node }) => mapData(node.dtype, inputs, (a, b) => f(a, b, node.dtype)),
    vjp: (node, g) => {
      if (node.dtype !== "f32") return [null, null];
      return vjp(node.inputs[0], node.inputs[1], node, g);
    },
    lowering: "inline",
    inline: pointwise(([a, b], node) => expr(a, b, node.dtype)),
  });
}

const intDiv = (a: number, b: number, dtype: DType) =>
  dtype === "f32" ? a / b : b === 0 ? 0 : Math.trunc(a / b);
const imul = (a: number, b: number, dtype: DType) =>
  dtype === "f32" ? a * b : dtype === "u32" ? Math.imul(a, b) >>> 0 : Math.imul(a, b);

/** `a + b` (equal shapes; the tracer broadcasts first). */
export const add: OpDef = binaryOp(
  "add",
  (a, b) => a + b,
  (a, b) => binary("+", a, b),
  (_a, _b, _y, g) => [g, g],
);
/** `a - b`. */
export const sub: OpDef = binaryOp(
  "sub",
  (a, b) => a - b,
  (a, b) => binary("-", a, b),
  (_a, _b, _y, g) => [g, negOf(g)],
);
/** `a * b` (integers wrap as in WGSL). */
export const mul: OpDef = binaryOp(
  "mul",
  imul,
  (a, b) => binary("*", a, b),
  (a, b, _y, g) => [mulOf(g, b), mulOf(g, a)],
);
/** `a / b` (integer division truncates; by zero gives 0). */
export const div: OpDef = binaryOp(
  "div",
  intDiv,
  // WGSL integer division by zero yields the dividend; the reference mirrors neither — guard it.
  (a, b, dtype) =>
    dtype === "f32"
      ? divExpr(a, b)
      : selectExpr(binary("==", b, lit(0, dtype)), lit(0, dtype), divExpr(a, b)),
  (_a, b, y, g) => [divOf(g, b), negOf(divOf(mulOf(g, y), b))],
);
/** `a ** b` (f32). */
export const pow: OpDef = binaryOp(
  "pow",
  (a, b) => Math.pow(a, b),
  (a, b) => math("pow", a, b),
  (a, b, y, g) => [
    mulOf(g, mulOf(b, makeNode(pow, [a, subOf(b, full(1, b))]))),
    mulOf(g, mulOf(y, makeNode(log, [a]))),
  ],
  true,
);
/** Elementwise maximum; ties send the gradient to `a`. */
export const maximum: OpDef = binaryOp(
  "maximum",
  (a, b) => Math.max(a, b),
  (a, b) => math("max", a, b),
  (a, b, _y, g) => {
    const takeA = makeNode(ge, [a, b]);
    return [select(takeA, g, full(0, g)), select(takeA, full(0, g), g)];
  },
);
/** Elementwise minimum; ties send the gradient to `a`. */
export const minimum: OpDef = binaryOp(
  "minimum",
  (a, b) => Math.min(a, b),
  (a, b) => math("min", a, b),
  (a, b, _y, g) => {
    const takeA = makeNode(le, [a, b]);
    return [select(takeA, g, full(0, g)), select(takeA, full(0, g), g)];
  },
);

function comparison(
  name: string,
  f: (a: number, b: number) => boolean,
  symbol: "==" | "!=" | "<" | "<=" | ">" | ">=",
): OpDef {
  return defineOp({
    name,
    kind: "elementwise",
    infer: (inputs) => {
      if (inputs.length !== 2) opError(name, "takes two operands", inputs);
      sameShapes(name, inputs);
      if (inputs[0].dtype !== inputs[1].dtype) {
        opError(name, "operands must have the same dtype", inputs);
      }
      return { shape: inputs[0].shape, dtype: "bool" };
    },
    cpu: (inputs) => mapData("bool", inputs, (a, b) => (f(a, b) ? 1 : 0)),
    noGradient: "a comparison is piecewise constant",
    lowering: "inline",
    // Kernels order bools as 0 < 1, like the reference.
    inline: pointwise(([a, b]) =>
      a.type === "bool"
        ? binary(symbol, convert("u32", a), convert("u32", b))
        : binary(symbol, a, b)
    ),
  });
}

/** `a == b` (bool). */
export const eq: OpDef = comparison("eq", (a, b) => a === b, "==");
/** `a != b` (bool). */
export const ne: OpDef = comparison("ne", (a, b) => a !== b, "!=");
/** `a < b` (bool). */
export const lt: OpDef = comparison("lt", (a, b) => a < b, "<");
/** `a <= b` (bool). */
export const le: OpDef = comparison("le", (a, b) => a <= b, "<=");
/** `a > b` (bool). */
export const gt: OpDef = comparison("gt", (a, b) => a > b, ">");
/** `a >= b` (bool). */
export const ge: OpDef = comparison("ge", (a, b) => a >= b, ">=");

export const where: OpDef = defineOp({
  name: "where",
  kind: "elementwise",
  infer: (inputs) => {
    if (inputs.length !== 3) opError("where", "takes (cond, a, b)", inputs);
    sameShapes("where", inputs);
    const [c, a, b] = inputs;
    if (c.dtype !== "bool") opError("where", "condition must be bool", inputs);
    if (a.dtype !== b.dtype) opError("where", "branches must have the same dtype", inputs);
    return a;
  },
  cpu: (inputs, { node }) => mapData(node.dtype, inputs, (c, a, b) => (c ? a : b)),
  vjp: (node, g, wants) => {
    const c = node.inputs[0];
    const zero = full(0, g);
    return [null, wants[1] ? select(c, g, zero) : null, wants[2] ? select(c, zero, g) : null];
  },
  lowering: "inline",
  inline: pointwise(([c, a, b]) => selectExpr(c, a, b)),
});

function castValue(v: number, to: DType): number {
  if (to === "bool") return v !== 0 ? 1 : 0;
  if (to === "f32") return v;
  return Number.isFinite(v) ? Math.trunc(v) : 0;
}

export const cast: OpDef = defineOp({
  name: "cast",
  kind: "elementwise",
  infer: (inputs, attrs) => {
    if (inputs.length !== 1) opError("cast", "takes one operand", inputs);
    const to = attrs.dtype;
    if (to !== "f32" && to !== "i32" && to !== "u32" && to !== "bool") {
      opError("cast", `unknown target dtype ${JSON.stringify(to)}`, inputs);
    }
    return { shape: inputs[0].shape, dtype: to };
  },
  cpu: (inputs, { node }) => mapData(node.dtype, inputs, (v) => castValue(v, node.dtype)),
  vjp: (node, g) => {
    const from = node.inputs[0].dtype;
    return [from === "f32" && node.dtype === "f32" ? g : null];
  },
  lowering: "inline",
  inline: pointwise(([x], node) => {
    if (node.dtype === "bool") return binary("!=", x, lit(0, x.type as DType));
    return convert(node.dtype, x);
  }),
});
