/**
 * Row-wise kernels over the last axis: softmax, logSoftmax, layerNorm,
 * crossEntropy and their fused backward ops. Short rows (at most
 * {@linkcode ROWWISE_SERIAL_MAX_COLS} columns) get one invocation per row with
 * serial loops; longer rows get one workgroup per row whose reductions (max,
 * sums) are tree reductions in workgroup memory. Either way operands are read through their fused prologues (a mask and a scale
 * before a softmax cost no extra kernel).
 *
 * @module
 */
import { type Node, sizeOf } from "../../../compiler/ir.ts";
import { WGSL_LINEAR_WORKGROUP, wgslF32 } from "./kernel.ts";
import {
  bindingSet,
  indent,
  linearKernel,
  type LoweredKernel,
  MAIN_PARAMS,
  moduleText,
  storeFunction,
  type TreeLane,
  workgroupTree,
} from "./_legacy.ts";
import { literal, u32, valueFunction } from "./_legacy.ts";

/**
 * Largest workgroup of a row-wise kernel (rows shorter than this use the next power of two).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ROWWISE_MAX_WORKGROUP } from "./rowwise.ts";
 * strictEqual(ROWWISE_MAX_WORKGROUP, 64);
 * ```
 */
export const ROWWISE_MAX_WORKGROUP = 64;

/**
 * Longest row that one invocation reduces serially (thread-per-row kernel);
 * longer rows share a workgroup per row with workgroup-memory reductions.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ROWWISE_SERIAL_MAX_COLS } from "./rowwise.ts";
 * strictEqual(ROWWISE_SERIAL_MAX_COLS, 256);
 * ```
 */
export const ROWWISE_SERIAL_MAX_COLS = 256;

/**
 * Workgroup size of the thread-per-row kernel (one row per invocation).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ROWWISE_SERIAL_WORKGROUP } from "./rowwise.ts";
 * strictEqual(ROWWISE_SERIAL_WORKGROUP, 64);
 * ```
 */
export const ROWWISE_SERIAL_WORKGROUP = 64;

/**
 * The ops this module lowers.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ROWWISE_OPS } from "./rowwise.ts";
 * strictEqual(ROWWISE_OPS.includes("layerNormBackward"), true);
 * ```
 */
export const ROWWISE_OPS: readonly string[] = [
  "softmax",
  "logSoftmax",
  "layerNorm",
  "crossEntropy",
  "softmaxBackward",
  "logSoftmaxBackward",
  "layerNormBackward",
  "crossEntropyBackward",
];

function reducer(name: string, width: number, combine: TreeLane["combine"]): string {
  return [
    `fn ${name}(v: f32, lid: u32) -> f32 {`,
    indent([
      "red[lid] = v;",
      ...workgroupTree(width, [{ array: "red", combine }]),
      "let total = red[0];",
      "workgroupBarrier();",
      "return total;",
    ]),
    "}",
  ].join("\n");
}

/**
 * How a row body walks and reduces its row: `start`/`step` stride the column
 * loop, `sum`/`max` combine the per-invocation partials across the row, and
 * `leader` is the condition of the one invocation that writes a per-row value.
 */
interface RowPlan {
  start: string;
  step: number;
  sum(v: string): string;
  max(v: string): string;
  leader: string;
}

/** A workgroup of `width` invocations shares a row; reductions go through workgroup memory. */
function workgroupPlan(width: number): RowPlan {
  return {
    start: "lid",
    step: width,
    sum: (v) => `row_sum(${v}, lid)`,
    max: (v) => `row_max(${v}, lid)`,
    leader: "lid == 0u",
  };
}

/** One invocation owns the whole row: serial loops, no cross-invocation reductions. */
const SERIAL_PLAN: RowPlan = {
  start: "0u",
  step: 1,
  sum: (v) => v,
  max: (v) => v,
  leader: "true",
};

/** The statements of one op's row body; `a`, `b`, `c` read operands, `cols` is the row length. */
function rowBody(node: Node, cols: number, plan: RowPlan): string[] {
  const each = (lines: string[]) => [
    `for (var j = ${plan.start}; j < ${u32(cols)}; j = j + ${u32(plan.step)}) {`,
    ...lines.map((l) => `  ${l}`),
    "}",
  ];
  const n = wgslF32(cols);
  const x = "a(base + j)";
  const maxAndSum = [
    `var m = ${literal(-Infinity, "f32")};`,
    ...each([`m = max(m, ${x});`]),
    `m = ${plan.max("m")};`,
    "var s = 0.0;",
    ...each([`s = s + exp(${x} - m);`]),
    `s = ${plan.sum("s")};`,
  ];
  const stats = [
    "var total = 0.0;",
    ...each([`total = total + ${x};`]),
    `let mean = ${plan.sum("total")} / ${n};`,
    "var squares = 0.0;",
    ...each([`let d = ${x} - mean;`, "squares = squares + d * d;"]),
    `let rstd = 1.0 / sqrt(${plan.sum("squares")} / ${n} + ${
      wgslF32(node.attrs.eps as number ?? 0)
    });`,
  ];
  const label = [
    "let label = i32(b(row));",
    "let lse = m + log(s);",
  ];
  switch (node.op) {
    case "softmax":
      return [...maxAndSum, ...each([`store(base + j, exp(${x} - m) / s);`])];
    case "logSoftmax":
      return [...maxAndSum, "let lse = m + log(s);", ...each([`store(base + j, ${x} - lse);`])];
    case "layerNorm":
      return [...stats, ...each([`store(base + j, (${x} - mean) * rstd);`])];
    case "layerNormBackward":
      return [
        ...stats,
        "var gs = 0.0;",
        "var gys = 0.0;",
        ...each(["let g = b(base + j);", "gs = gs + g;", `gys = gys + g * (${x} - mean) * rstd;`]),
        `let g_mean = ${plan.sum("gs")} / ${n};`,
        `let gy_mean = ${plan.sum("gys")} / ${n};`,
        ...each([
          `store(base + j, rstd * (b(base + j) - g_mean - (${x} - mean) * rstd * gy_mean));`,
        ]),
      ];
    case "softmaxBackward":
      return [
        "var dot = 0.0;",
        ...each([`dot = dot + b(base + j) * ${x};`]),
        `dot = ${plan.sum("dot")};`,
        ...each([`store(base + j, ${x} * (b(base + j) - dot));`]),
      ];
    case "logSoftmaxBackward":
      return [
        "var gs = 0.0;",
        ...each(["gs = gs + b(base + j);"]),
        `gs = ${plan.sum("gs")};`,
        ...each([`store(base + j, b(base + j) - exp(${x}) * gs);`]),
      ];
    case "crossEntropy":
      // A negative label is ignored (loss 0); one past the classes is an error the CPU throws: NaN here.
      return [
        ...maxAndSum,
        ...label,
        `if (${plan.leader}) {`,
        `  var loss = ${literal(NaN, "f32")};`,
        "  if (label < 0) { loss = 0.0; }",
        `  if (label >= 0 && label < ${cols}) { loss = lse - a(base + u32(label)); }`,
        "  store(row, loss);",
        "}",
      ];
    case "crossEntropyBackward":
      return [
        ...maxAndSum,
        ...label,
        "let g = c(row);",
        ...each([
          "let hit = select(0.0, 1.0, i32(j) == label);",
          `store(base + j, select(g * (exp(${x} - lse) - hit), 0.0, label < 0));`,
        ]),
      ];
  }
  throw new Error(
    `rowwiseKernel: ${node.op} is not a row-wise op (expected one of ${ROWWISE_OPS.join(", ")})`,
  );
}

/**
 * The kernel for one row-wise node; `reads` are the materialized nodes its
 * operands' inline regions read.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { rowwiseKernel } from "./rowwise.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const x = makeNode(ops.input, [], { shape: [3, 5], dtype: "f32" }, "x");
 * const { kernel } = rowwiseKernel(makeNode(ops.softmax, [x], {}), [x]);
 * console.log(kernel.workgroupSize, kernel.dispatch); // [64, 1, 1] [1, 1, 1]
 * ```
 */
export function rowwiseKernel(
  node: Node,
  reads: readonly Node[],
  options: { roots?: readonly Node[] } = {},
): LoweredKernel {
  const roots = options.roots ?? [node];
  const x = node.inputs[0];
  const cols = x.shape[x.shape.length - 1];
  const rows = sizeOf(x.shape.slice(0, -1));
  const set = bindingSet(roots, reads);
  const loads = [
    ...node.inputs.map((input, k) => valueFunction("abc"[k], input, set.scope)),
    storeFunction(node, roots, set.scope),
  ];
  const serial = cols <= ROWWISE_SERIAL_MAX_COLS;
  let width = ROWWISE_SERIAL_WORKGROUP;
  if (!serial) {
    width = 1;
    while (width < Math.min(cols, ROWWISE_MAX_WORKGROUP)) width *= 2;
  }
  const body = rowBody(node, cols, serial ? SERIAL_PLAN : workgroupPlan(width));
  const row = serial
    ? `let row = ${WGSL_LINEAR_WORKGROUP} * ${u32(width)} + lid;`
    : `let row = ${WGSL_LINEAR_WORKGROUP};`;
  const entry = [
    `@compute @workgroup_size(${width})`,
    `fn main(${MAIN_PARAMS}) {`,
    indent([
      row,
      `if (row >= ${u32(rows)}) { return; }`,
      `let base = row * ${u32(cols)};`,
      ...body,
    ]),
    "}",
  ];
  const main = serial ? entry.join("\n") : [
    `var<workgroup> red: array<f32, ${width}>;`,
    "",
    reducer("row_sum", width, (a, b) => `${a} + ${b}`),
    "",
    reducer("row_max", width, (a, b) => `max(${a}, ${b})`),
    "",
    ...entry,
  ].join("\n");
  const wgsl = moduleText({
    decls: set.decls,
    functions: loads.map((l) => l.wgsl),
    threefry: loads.some((l) => l.usesThreefry),
    main,
  });
  const groups = sizeOf(node.shape) === 0 ? 0 : serial ? Math.ceil(rows / width) : rows;
  return linearKernel({ family: node.op, wgsl, set, width, groups, roots, reads });
}
