/**
 * Elementwise ops. Operands have equal shapes (broadcasting is an explicit
 * `broadcast` node, inserted by the tracer), so vjps need no reductions and
 * chains of these ops fuse into one kernel.
 */
import { type DType, makeNode, type Node, type TensorType } from "../compiler/ir.ts";
import { add, div, fill, mul, neg, sub, where } from "./_build.ts";
import { allocData, type CpuTensor, defineOp, opError } from "./registry.ts";

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

function sameShapes(op: string, inputs: readonly TensorType[]): void {
  const [first] = inputs;
  for (const t of inputs) {
    if (t.shape.length !== first.shape.length || t.shape.some((d, i) => d !== first.shape[i])) {
      opError(op, "operands must have equal shapes (broadcast them first)", inputs);
    }
  }
}

function mapData(dtype: DType, inputs: readonly CpuTensor[], f: (...v: number[]) => number) {
  const n = inputs[0].data.length;
  const out = allocData(dtype, n);
  const arrays = inputs.map((t) => t.data);
  if (arrays.length === 1) {
    const a = arrays[0];
    for (let i = 0; i < n; i++) out[i] = f(a[i]);
  } else if (arrays.length === 2) {
    const [a, b] = arrays;
    for (let i = 0; i < n; i++) out[i] = f(a[i], b[i]);
  } else {
    const [a, b, c] = arrays;
    for (let i = 0; i < n; i++) out[i] = f(a[i], b[i], c[i]);
  }
  return out;
}

function unary(
  name: string,
  f: (x: number) => number,
  expr: (x: string) => string,
  vjp: (x: Node, y: Node, g: Node) => Node,
): void {
  defineOp({
    name,
    kind: "elementwise",
    infer: ([x, ...rest]) => {
      if (x === undefined || rest.length > 0) opError(name, "takes one operand", [x, ...rest]);
      if (x.dtype !== "f32") opError(name, "needs an f32 operand", [x]);
      return x;
    },
    cpu: (inputs, { node }) => mapData(node.dtype, inputs, f),
    vjp: (node, g) => [vjp(node.inputs[0], node, g)],
    wgsl: { kind: "elementwise", expr: ([x]) => expr(x) },
  });
}

/**
 * GELU's tanh form as a WGSL expression of `x`. The tanh argument is clamped
 * to ±20, where tanh is ±1 in f32: some drivers overflow `exp` inside `tanh`
 * for large arguments. The op and the matmul epilogue builder both use it.
 */
export function geluWgsl(x: string): string {
  return `(0.5 * ${x} * (1.0 + tanh(clamp(${GELU_C} * (${x} + ${GELU_A} * ${x} * ${x} * ${x}), -20.0, 20.0))))`;
}

function geluValue(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_A * x * x * x)));
}

unary("neg", (x) => -x, (x) => `(-${x})`, (_x, _y, g) => neg(g));
unary("exp", Math.exp, (x) => `exp(${x})`, (_x, y, g) => mul(g, y));
unary("log", Math.log, (x) => `log(${x})`, (x, _y, g) => div(g, x));
unary("sqrt", Math.sqrt, (x) => `sqrt(${x})`, (_x, y, g) => div(mul(g, fill(0.5, [])), y));
unary(
  "rsqrt",
  (x) => 1 / Math.sqrt(x),
  (x) => `inverseSqrt(${x})`,
  (_x, y, g) => mul(g, mul(fill(-0.5, []), mul(y, mul(y, y)))),
);
/**
 * tanh as WGSL. The builtin is clamped (some drivers overflow exp() inside it
 * for |x| > ~44), and replaced near 0 by its Taylor series to x⁷ (truncation
 * below 2e-9 relative for |x| < 0.125): WGSL lets tanh inherit the error of
 * (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ), and Mesa's llvmpipe measured 3e-6 relative at x = 0.01
 * and 1.4e-3 at 1e-5.
 */
function tanhWgsl(x: string): string {
  const series = `${x} * (1.0 + ${x} * ${x} * (-0.33333334 + ${x} * ${x} * ` +
    `(0.13333334 - 0.053968254 * ${x} * ${x})))`;
  return `select(tanh(clamp(${x}, -20.0, 20.0)), ${series}, abs(${x}) < 0.125)`;
}

unary(
  "tanh",
  Math.tanh,
  tanhWgsl,
  (_x, y, g) => mul(g, sub(fill(1, []), mul(y, y))),
);
unary("relu", (x) => (x > 0 ? x : 0), (x) => `max(${x}, 0.0)`, (x, _y, g) => {
  return where(makeNode("gt", [x, fill(0, x.shape)], {}), g, fill(0, []));
});
unary("abs", Math.abs, (x) => `abs(${x})`, (x, _y, g) => {
  return where(makeNode("lt", [x, fill(0, x.shape)], {}), neg(g), g);
});
unary(
  "gelu",
  geluValue,
  geluWgsl,
  (x, _y, g) => {
    // d/dx of 0.5·x·(1 + tanh(c·(x + a·x³))).
    const x2 = mul(x, x);
    const inner = mul(fill(GELU_C, []), add(x, mul(fill(GELU_A, []), mul(x2, x))));
    const t = makeNode("tanh", [inner], {});
    const dInner = mul(fill(GELU_C, []), add(fill(1, []), mul(fill(3 * GELU_A, []), x2)));
    const left = mul(fill(0.5, []), add(fill(1, []), t));
    const right = mul(mul(fill(0.5, []), x), mul(sub(fill(1, []), mul(t, t)), dInner));
    return mul(g, add(left, right));
  },
);

type BinaryVjp = (a: Node, b: Node, y: Node, g: Node) => [Node | null, Node | null];

function binaryOp(
  name: string,
  f: (a: number, b: number, dtype: DType) => number,
  expr: (a: string, b: string, dtype: DType) => string,
  vjp: BinaryVjp,
  floatOnly = false,
): void {
  defineOp({
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
    wgsl: { kind: "elementwise", expr: ([a, b], node) => expr(a, b, node.dtype) },
  });
}

const intDiv = (a: number, b: number, dtype: DType) =>
  dtype === "f32" ? a / b : b === 0 ? 0 : Math.trunc(a / b);
const imul = (a: number, b: number, dtype: DType) =>
  dtype === "f32" ? a * b : dtype === "u32" ? Math.imul(a, b) >>> 0 : Math.imul(a, b);

binaryOp("add", (a, b) => a + b, (a, b) => `(${a} + ${b})`, (_a, _b, _y, g) => [g, g]);
binaryOp("sub", (a, b) => a - b, (a, b) => `(${a} - ${b})`, (_a, _b, _y, g) => [g, neg(g)]);
binaryOp("mul", imul, (a, b) => `(${a} * ${b})`, (a, b, _y, g) => [mul(g, b), mul(g, a)]);
binaryOp(
  "div",
  intDiv,
  // WGSL integer division by zero yields the dividend; the reference mirrors neither — guard it.
  (a, b, dtype) => dtype === "f32" ? `(${a} / ${b})` : `select(${a} / ${b}, 0, ${b} == 0)`,
  (_a, b, y, g) => [div(g, b), neg(div(mul(g, y), b))],
);
binaryOp(
  "pow",
  (a, b) => Math.pow(a, b),
  (a, b) => `pow(${a}, ${b})`,
  (a, b, y, g) => [
    mul(g, mul(b, makeNode("pow", [a, sub(b, fill(1, b.shape))], {}))),
    mul(g, mul(y, makeNode("log", [a], {}))),
  ],
  true,
);
binaryOp(
  "maximum",
  (a, b) => Math.max(a, b),
  (a, b) => `max(${a}, ${b})`,
  (a, b, _y, g) => {
    const takeA = makeNode("ge", [a, b], {});
    return [where(takeA, g, fill(0, [])), where(takeA, fill(0, []), g)];
  },
);
binaryOp(
  "minimum",
  (a, b) => Math.min(a, b),
  (a, b) => `min(${a}, ${b})`,
  (a, b, _y, g) => {
    const takeA = makeNode("le", [a, b], {});
    return [where(takeA, g, fill(0, [])), where(takeA, fill(0, []), g)];
  },
);

const comparisons: [string, (a: number, b: number) => boolean, string][] = [
  ["eq", (a, b) => a === b, "=="],
  ["ne", (a, b) => a !== b, "!="],
  ["lt", (a, b) => a < b, "<"],
  ["le", (a, b) => a <= b, "<="],
  ["gt", (a, b) => a > b, ">"],
  ["ge", (a, b) => a >= b, ">="],
];
for (const [name, f, symbol] of comparisons) {
  defineOp({
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
    wgsl: { kind: "elementwise", expr: ([a, b]) => `(${a} ${symbol} ${b})` },
  });
}

defineOp({
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
    const zero = fill(0, []);
    return [null, wants[1] ? where(c, g, zero) : null, wants[2] ? where(c, zero, g) : null];
  },
  wgsl: { kind: "elementwise", expr: ([c, a, b]) => `select(${b}, ${a}, ${c})` },
});

function castValue(v: number, to: DType): number {
  if (to === "bool") return v !== 0 ? 1 : 0;
  if (to === "f32") return v;
  return Number.isFinite(v) ? Math.trunc(v) : 0;
}

defineOp({
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
  wgsl: {
    kind: "elementwise",
    expr: ([x], node) => {
      const from = node.inputs[0].dtype;
      if (node.dtype === "bool") return `(${x} != ${from === "f32" ? "0.0" : `${from}(0)`})`;
      const target = node.dtype;
      return from === "bool" ? `select(${target}(0), ${target}(1), ${x})` : `${target}(${x})`;
    },
  },
});
