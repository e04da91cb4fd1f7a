/**
 * Reductions (`sum`, `max`) over any set of axes, for f32, i32 and u32. The
 * operand is read through its fused prologue (any inline region). Short
 * reductions run one invocation per output; long ones one workgroup per
 * output with a tree reduction in workgroup memory. Both add in a fixed
 * order, so results are deterministic.
 *
 * @module
 */
import { type Node, type OpDef, sizeOf } from "../ir.ts";
import { stridesOf } from "../../ops/rules.ts";
import { reductionAxes, sameReduction } from "../fusion/merge.ts";
import {
  add,
  binary,
  Body,
  call,
  defineFunction,
  invocation,
  type KernelFunction,
  linearWorkgroup,
  lit,
  load,
  mul,
  storageType,
  u32,
} from "../kernel_ir/mod.ts";
import {
  bindingSet,
  labelOf,
  linearKernel,
  type LoweredKernel,
  storeFunction,
  valueFunction,
} from "./_assemble.ts";

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

/**
 * `fn name(v: u32) -> u32`: the flat offset in `shape` of the `v`-th index
 * (row-major) over the axes `axes`, so one loop counter walks any set of
 * reduced (or kept) axes.
 */
function offsetFunction(
  name: string,
  shape: readonly number[],
  axes: readonly number[],
): KernelFunction {
  const strides = stridesOf(shape);
  const dims = axes.map((a) => shape[a]);
  const local = stridesOf(dims);
  return defineFunction(name, [["v", "u32"]], "u32", ([v], body) => {
    const terms = axes.flatMap((a, k) => {
      if (dims[k] === 1) return [];
      const q = local[k] === 1 ? v : binary("/", v, u32(local[k]));
      const c = k === 0 ? q : binary("%", q, u32(dims[k]));
      return [strides[a] === 1 ? c : mul(c, u32(strides[a]))];
    });
    body.return(terms.length ? terms.reduce(add) : u32(0));
  });
}

/** A reduce op's kernel rule: its identity and how two partial results combine. */
type Reduction = NonNullable<OpDef["reduction"]>;

/** The op's reduction rule (its identity and combine), or an error naming a node that has none. */
function reductionOf(op: Node): Reduction {
  const rule = op.def.reduction;
  if (rule === undefined) throw new Error(`reduceKernel: ${op.op} is not a reduction`);
  return rule;
}

/**
 * One reduction of a (possibly merged) reduce kernel: the op and the nodes it writes.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { type ReduceLane, reduceKernel } from "./reduce.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4, 5], dtype: "f32" }, "x");
 * const sum = makeNode(ops.sum, [x], { axes: [1] });
 * const neg = makeNode(ops.neg, [sum], {});
 * const lane: ReduceLane = { op: sum, roots: [sum, neg] };
 * deepStrictEqual(reduceKernel([lane], [x]).outputs, [sum, neg]);
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
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { reduceKernel } from "./reduce.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4, 5], dtype: "f32" }, "x");
 * const s = makeNode(ops.sum, [x], { axes: [0] });
 * const m = makeNode(ops.max, [x], { axes: [0] });
 * const { program } = reduceKernel([{ op: s, roots: [s] }, { op: m, roots: [m] }], [x]);
 * strictEqual(program.buffers.length, 3);
 * deepStrictEqual(program.dispatch, [1, 1, 1]); // 5 outputs: one workgroup, one invocation each
 *
 * // 300 elements per output: one workgroup per output, combined by a tree.
 * const y = makeNode(ops.input, [], { shape: [2, 300], dtype: "f32" }, "y");
 * const t = makeNode(ops.max, [y], { axes: [1] });
 * const tree = reduceKernel([{ op: t, roots: [t] }], [y]);
 * deepStrictEqual(tree.program.dispatch, [2, 1, 1]);
 * strictEqual(tree.program.body.some((st) => st.kind === "treeReduce"), true);
 * ```
 */
export function reduceKernel(lanes: readonly ReduceLane[], reads: readonly Node[]): LoweredKernel {
  const first = lanes[0].op;
  const rules = lanes.map(({ op }) => reductionOf(op));
  for (const { op } of lanes) {
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
  const operands = lanes.map((lane, k) =>
    valueFunction(`operand${k}`, lane.op.inputs[0], set.scope)
  );
  const stores = lanes.map((lane, k) => {
    const store = storeFunction(lane.op, lane.roots, set.scope, { name: `store${k}`, firstOutput });
    firstOutput += lane.roots.length;
    return store;
  });
  const baseOf = offsetFunction("base_of", x.shape, kept);
  const offsetOf = offsetFunction("offset_of", x.shape, axes);
  const types = lanes.map((l) => storageType(l.op.dtype));
  const tree = length > SERIAL_REDUCE_LIMIT;
  const lid = invocation({ of: "localIndex" });

  const body = new Body();
  // Tree: workgroup o reduces output o; serial: invocation o does.
  const o = body.letNamed(
    "o",
    tree ? linearWorkgroup() : add(mul(linearWorkgroup(), u32(REDUCE_WORKGROUP)), lid),
  );
  body.when(binary(">=", o, u32(outputs)), (exit) => exit.return());
  const base = body.letNamed("base", call(baseOf, o));
  const accs = lanes.map((l, k) =>
    body.var(types[k], lit(rules[k].identity(l.op.dtype), types[k]), "acc")
  );
  // Tree: invocation lid takes every REDUCE_WORKGROUP-th element; serial: all of them.
  body.loop(tree ? lid : u32(0), u32(length), (r, inner) => {
    const at = inner.letNamed("at", add(base, call(offsetOf, r)));
    accs.forEach((acc, k) => {
      const v = inner.let(call(operands[k], at));
      inner.assign(acc, rules[k].combine(acc, v));
    });
  }, { step: u32(tree ? REDUCE_WORKGROUP : 1), hint: "r" });
  if (!tree) {
    accs.forEach((acc, k) => body.call(stores[k], o, acc));
  } else {
    accs.forEach((acc, k) => body.store(`partial${k}`, lid, acc));
    body.treeReduce(
      REDUCE_WORKGROUP,
      lanes.map((_, k) => ({
        array: `partial${k}`,
        combine: combineFunction(k, types[k], rules[k]),
      })),
    );
    body.when(binary("==", lid, u32(0)), (then) => {
      types.forEach((t, k) => then.call(stores[k], o, load(`partial${k}`, u32(0), t)));
    });
  }
  const groups = tree ? outputs : Math.ceil(outputs / REDUCE_WORKGROUP);
  const family = `reduce-${first.op}${lanes.length > 1 ? `x${lanes.length}` : ""}`;
  return linearKernel({
    family,
    set,
    width: REDUCE_WORKGROUP,
    groups,
    roots,
    reads,
    body: body.stmts,
    shared: tree
      ? types.map((element, k) => ({ name: `partial${k}`, element, length: REDUCE_WORKGROUP }))
      : [],
  });
}

/** `fn combine{k}(a: T, b: T) -> T`: lane k's combining rule, for the workgroup tree. */
function combineFunction(
  k: number,
  type: "f32" | "i32" | "u32",
  rule: Reduction,
): KernelFunction {
  return defineFunction(
    `combine${k}`,
    [["a", type], ["b", type]],
    type,
    ([a, b], body) => body.return(rule.combine(a, b)),
  );
}
