/**
 * Reductions (`sum`, `max`) over any set of axes, for f32, i32 and u32. The
 * operand is read through its fused prologue (any inline region). Short
 * reductions run one invocation per output; long ones one workgroup per
 * output with a tree reduction in workgroup memory. Both add in a fixed
 * order, so results are deterministic.
 *
 * @module
 */
import { type Node, sizeOf } from "../../../compiler/ir.ts";
import { stridesOf } from "../../../ops/rules.ts";
import { reductionAxes, sameReduction } from "../../../compiler/fusion/merge.ts";
import { WGSL_LINEAR_WORKGROUP } from "./kernel.ts";
import {
  bindingSet,
  indent,
  labelOf,
  linearKernel,
  type LoweredKernel,
  MAIN_PARAMS,
  moduleText,
  storeFunction,
  workgroupTree,
} from "./_legacy.ts";
import { literal, u32, valueFunction } from "./_legacy.ts";

/**
 * Reductions longer than this use a workgroup per output (a tree reduction);
 * shorter ones an invocation per output (a loop).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { REDUCE_WORKGROUP, SERIAL_REDUCE_LIMIT } from "./reduce.ts";
 * strictEqual(SERIAL_REDUCE_LIMIT <= REDUCE_WORKGROUP, true);
 * ```
 */
export const SERIAL_REDUCE_LIMIT = 64;
/**
 * Invocations per workgroup of reduction kernels.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { REDUCE_WORKGROUP } from "./reduce.ts";
 * strictEqual(REDUCE_WORKGROUP, 64);
 * ```
 */
export const REDUCE_WORKGROUP = 64;

/** `fn name(v: u32) -> u32`: the input offset of index `v` over the axes `axes` of `shape`. */
function offsetFunction(name: string, shape: readonly number[], axes: readonly number[]): string {
  const strides = stridesOf(shape);
  const dims = axes.map((a) => shape[a]);
  const local = stridesOf(dims);
  const terms = axes.flatMap((a, k) => {
    if (dims[k] === 1) return [];
    const q = local[k] === 1 ? "v" : `(v / ${u32(local[k])})`;
    const c = k === 0 ? q : `(${q} % ${u32(dims[k])})`;
    return [strides[a] === 1 ? c : `${c} * ${u32(strides[a])}`];
  });
  return `fn ${name}(v: u32) -> u32 {\n  return ${terms.length ? terms.join(" + ") : "0u"};\n}`;
}

/** The identity and combining expression of a reduction over `dtype`. */
function combiner(
  op: string,
  dtype: Node["dtype"],
): { init: string; combine: (a: string, b: string) => string } {
  if (op === "sum") return { init: literal(0, dtype), combine: (a, b) => `${a} + ${b}` };
  const lowest = dtype === "f32" ? -Infinity : dtype === "i32" ? -(2 ** 31) : 0;
  return { init: literal(lowest, dtype), combine: (a, b) => `select(${a}, ${b}, ${b} > ${a})` };
}

/**
 * One reduction of a (possibly merged) reduce kernel: the op and the nodes it writes.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import type { ReduceLane } from "./reduce.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4, 5], dtype: "f32" }, "x");
 * const sum = makeNode(ops.sum, [x], { axes: [1] });
 * const lane: ReduceLane = { op: sum, roots: [sum] };
 * ```
 */
export interface ReduceLane {
  /** The `sum` or `max` node. */
  readonly op: Node;
  /** What the lane writes: the op, and/or an elementwise root computed from it. */
  readonly roots: readonly Node[];
}

/**
 * The kernel for one or more `sum` / `max` nodes over the same operand shape
 * and axes (see {@link sameReduction}); `reads` are the materialized nodes
 * their operands' inline regions (and epilogues) read.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { reduceKernel } from "./reduce.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4, 5], dtype: "f32" }, "x");
 * const s = makeNode(ops.sum, [x], { axes: [0] });
 * const m = makeNode(ops.max, [x], { axes: [0] });
 * const { kernel } = reduceKernel([{ op: s, roots: [s] }, { op: m, roots: [m] }], [x]);
 * console.log(kernel.bindings.length, kernel.dispatch); // 3 [1, 1, 1]
 * ```
 */
export function reduceKernel(lanes: readonly ReduceLane[], reads: readonly Node[]): LoweredKernel {
  const first = lanes[0].op;
  for (const { op } of lanes) {
    if (op.op !== "sum" && op.op !== "max") {
      throw new Error(`reduceKernel: ${op.op} is not a reduction`);
    }
    if (!sameReduction(first, op)) {
      throw new Error(`reduceKernel: ${labelOf([op])} differs from ${labelOf([first])}`);
    }
  }
  const x = first.inputs[0];
  const axes = reductionAxes(first);
  const kept = [...x.shape.keys()].filter((a) => !axes.includes(a));
  const outputs = sizeOf(first.shape);
  const length = sizeOf(axes.map((a) => x.shape[a]));
  const roots = lanes.flatMap((l) => l.roots);
  const set = bindingSet(roots, reads);
  let firstOutput = 0;
  const functions = lanes.flatMap((lane, k) => {
    const fns = [
      valueFunction(`operand${k}`, lane.op.inputs[0], set.scope),
      storeFunction(lane.op, lane.roots, set.scope, { name: `store${k}`, firstOutput }),
    ];
    firstOutput += lane.roots.length;
    return fns;
  });
  const combiners = lanes.map((l) => combiner(l.op.op, l.op.dtype));
  const each = (f: (k: number) => string) => lanes.map((_, k) => f(k));
  const accumulate = (acc: (k: number) => string) =>
    each((k) => `${acc(k)} = ${combiners[k].combine(acc(k), `operand${k}(at)`)};`);
  const tree = length > SERIAL_REDUCE_LIMIT;
  const body = tree
    ? [
      `let o = ${WGSL_LINEAR_WORKGROUP};`,
      `if (o >= ${u32(outputs)}) { return; }`,
      "let base = base_of(o);",
      ...each((k) => `var acc${k} = ${combiners[k].init};`),
      `for (var r = lid; r < ${u32(length)}; r = r + ${u32(REDUCE_WORKGROUP)}) {`,
      "  let at = base + offset_of(r);",
      ...accumulate((k) => `acc${k}`).map((l) => `  ${l}`),
      "}",
      ...each((k) => `partial${k}[lid] = acc${k};`),
      ...workgroupTree(
        REDUCE_WORKGROUP,
        combiners.map((c, k) => ({ array: `partial${k}`, combine: c.combine })),
      ),
      "if (lid == 0u) {",
      ...each((k) => `  store${k}(o, partial${k}[0]);`),
      "}",
    ]
    : [
      `let o = ${WGSL_LINEAR_WORKGROUP} * ${u32(REDUCE_WORKGROUP)} + lid;`,
      `if (o >= ${u32(outputs)}) { return; }`,
      "let base = base_of(o);",
      ...each((k) => `var acc${k} = ${combiners[k].init};`),
      `for (var r = 0u; r < ${u32(length)}; r = r + 1u) {`,
      "  let at = base + offset_of(r);",
      ...accumulate((k) => `acc${k}`).map((l) => `  ${l}`),
      "}",
      ...each((k) => `store${k}(o, acc${k});`),
    ];
  const main = [
    ...(tree
      ? each((k) => `var<workgroup> partial${k}: array<${lanes[k].op.dtype}, ${REDUCE_WORKGROUP}>;`)
      : []),
    `@compute @workgroup_size(${REDUCE_WORKGROUP})`,
    `fn main(${MAIN_PARAMS}) {`,
    indent(body),
    "}",
  ].join("\n");
  const wgsl = moduleText({
    decls: set.decls,
    functions: [
      ...functions.map((f) => f.wgsl),
      offsetFunction("base_of", x.shape, kept),
      offsetFunction("offset_of", x.shape, axes),
    ],
    threefry: functions.some((f) => f.usesThreefry),
    main,
  });
  const groups = tree ? outputs : Math.ceil(outputs / REDUCE_WORKGROUP);
  const family = `reduce-${first.op}${lanes.length > 1 ? `x${lanes.length}` : ""}`;
  return linearKernel({ family, wgsl, set, width: REDUCE_WORKGROUP, groups, roots, reads });
}
