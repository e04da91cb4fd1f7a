/**
 * The row-wise kernel family: ops that compute over rows of the last axis
 * (softmax, logSoftmax, layerNorm, crossEntropy and their fused backward
 * ops). What each op computes is its own `rowwise` rule (in `ops/`), written
 * against a `RowKernel`; this module only lays rows out. Short rows (at most
 * {@linkcode ROWWISE_SERIAL_MAX_COLS} columns) get one invocation per row with
 * serial loops; longer rows get one workgroup per row whose row-wide sums and
 * maxima are tree reductions through the workgroup array `red`. Either way
 * operands are read through their fused prologues (a mask and a scale before
 * a softmax cost no extra kernel), and results through the epilogue's store.
 *
 * @module
 */
import { type Node, sizeOf } from "../ir.ts";
import {
  add,
  binary,
  Body,
  call,
  invocation,
  linearWorkgroup,
  mul,
  RowBlock,
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
 * The kernel for one row-wise node, computing what its op's `rowwise` rule
 * says over each row; `reads` are the materialized nodes its operands'
 * inline regions read, `roots` what it stores (the node and any epilogue).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, throws } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { rowwiseKernel } from "./rowwise.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [3, 5], dtype: "f32" }, "x");
 * const { program } = rowwiseKernel(makeNode(ops.softmax, [x], {}), [x]);
 * deepStrictEqual([program.workgroupSize, program.dispatch], [[64, 1, 1], [1, 1, 1]]);
 * // long rows: a workgroup per row, reducing through workgroup memory
 * const wide = makeNode(ops.input, [], { shape: [3, 1000], dtype: "f32" }, "wide");
 * const long = rowwiseKernel(makeNode(ops.layerNorm, [wide], { eps: 1e-5 }), [wide]).program;
 * deepStrictEqual([long.dispatch, long.shared], [[3, 1, 1], [{ name: "red", element: "f32", length: 64 }]]);
 * throws(() => rowwiseKernel(makeNode(ops.exp, [x], {}), [x]), /no rowwise rule/);
 * ```
 */
export function rowwiseKernel(
  node: Node,
  reads: readonly Node[],
  options: { roots?: readonly Node[] } = {},
): LoweredKernel {
  const rule = node.def.rowwise;
  if (rule === undefined) {
    throw new Error(
      `rowwiseKernel: ${labelOf([node])} has no rowwise rule (lowering "${node.def.lowering}")`,
    );
  }
  const roots = options.roots ?? [node];
  const x = node.inputs[0];
  const cols = x.shape[x.shape.length - 1];
  const rows = sizeOf(x.shape.slice(0, -1));
  const set = bindingSet(roots, reads);
  const operands = node.inputs.map((input, k) =>
    valueFunction("abc"[k] ?? `in_${k}`, input, set.scope)
  );
  const store = storeFunction(node, roots, set.scope);
  const serial = cols <= ROWWISE_SERIAL_MAX_COLS;
  let width = ROWWISE_SERIAL_WORKGROUP;
  if (!serial) {
    width = 1;
    while (width < Math.min(cols, ROWWISE_MAX_WORKGROUP)) width *= 2;
  }
  const body = new Body();
  const lid = invocation({ of: "localIndex" });
  const row = body.letNamed(
    "row",
    serial ? add(mul(linearWorkgroup(), u32(width)), lid) : linearWorkgroup(),
  );
  // A whole workgroup leaves together when it shares a row (row is uniform), so barriers stay legal.
  body.when(binary(">=", row, u32(rows)), (exit) => exit.return());
  const base = body.letNamed("base", mul(row, u32(cols)));
  rule(
    new RowBlock(body, {
      cols,
      row,
      base,
      read: (k, index) => {
        if (operands[k] === undefined) {
          throw new Error(`rowwiseKernel: ${labelOf([node])} has no operand ${k}`);
        }
        return call(operands[k], index);
      },
      write: (block, index, value) => block.call(store, index, value),
      shared: serial ? undefined : { width, array: "red" },
    }),
    node,
  );
  const groups = sizeOf(node.shape) === 0 ? 0 : serial ? Math.ceil(rows / width) : rows;
  return linearKernel({
    family: node.op,
    set,
    width,
    groups,
    roots,
    reads,
    body: body.stmts,
    shared: serial ? [] : [{ name: "red", element: "f32", length: width }],
  });
}
