// Strided views: how a chain of reshape / permute / slice / broadcast over a
// materialized tensor can be read in place by a matmul (transposes become
// transA/transB, slices become leading dimensions and offsets, broadcast
// batch dims become a zero batch stride) instead of being copied.

import { type Node, sizeOf } from "../ir.ts";
import { stridesOf } from "../../ops/rules.ts";

/** Ops a strided view can see through. */
const VIEW_OPS = new Set(["reshape", "permute", "slice", "broadcast"]);

/**
 * A tensor read as `base[offset + Σ coord·stride]`.
 *
 * @example
 * ```ts
 * import * as ops from "../../ops/mod.ts";
 * import type { StridedView } from "./strided.ts";
 * import { makeNode } from "../ir.ts";
 * const w = makeNode(ops.input, [], { shape: [3, 4], dtype: "f32" }, "w");
 * const transposed: StridedView = { base: w, shape: [4, 3], strides: [1, 4], offset: 0 };
 * ```
 */
export interface StridedView {
  /** The first node down the chain that is not a view op: it must have a buffer. */
  readonly base: Node;
  /** The shape of the view. */
  readonly shape: readonly number[];
  /** Elements of `base` between neighbours along each axis (0 for a broadcast axis). */
  readonly strides: readonly number[];
  /** Element offset of the view's first element in `base`. */
  readonly offset: number;
}

/**
 * How a matmul kernel reads one operand (the `matmulKernel` options of one side).
 *
 * @example
 * ```ts
 * import * as ops from "../../ops/mod.ts";
 * import type { MatmulOperand } from "./strided.ts";
 * import { makeNode } from "../ir.ts";
 * const w = makeNode(ops.input, [], { shape: [3, 4], dtype: "f32" }, "w");
 * const wT: MatmulOperand = { base: w, trans: true, ld: 4, batchStride: 0, offset: 0 };
 * ```
 */
export interface MatmulOperand {
  /** The node whose buffer is read. */
  readonly base: Node;
  /** Stored transposed (`transA` / `transB`). */
  readonly trans: boolean;
  /** Elements between stored rows. */
  readonly ld: number;
  /** Elements between batches (0: one matrix for every batch). */
  readonly batchStride: number;
  /** Element offset of the first element. */
  readonly offset: number;
}

/**
 * Follows view ops down from `node` to a base; null when a reshape cannot be
 * expressed with strides.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { stridedView } from "./strided.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 5, 8], dtype: "f32" }, "x");
 * const heads = makeNode(ops.permute, [makeNode(ops.reshape, [x], { shape: [2, 5, 2, 4] })], { perm: [0, 2, 1, 3] });
 * deepStrictEqual(stridedView(heads)?.strides, [40, 4, 8, 1]);
 * ```
 */
export function stridedView(node: Node): StridedView | null {
  if (!VIEW_OPS.has(node.op)) {
    return { base: node, shape: node.shape, strides: stridesOf(node.shape), offset: 0 };
  }
  const inner = stridedView(node.inputs[0]);
  if (inner === null) return null;
  const { base, strides, offset } = inner;
  switch (node.op) {
    case "permute": {
      const perm = node.attrs.perm as number[];
      return { base, shape: node.shape, strides: perm.map((p) => strides[p]), offset };
    }
    case "slice": {
      const starts = node.attrs.starts as number[];
      return {
        base,
        shape: node.shape,
        strides,
        offset: offset + starts.reduce((s, v, i) => s + v * strides[i], 0),
      };
    }
    case "broadcast": {
      const lead = node.shape.length - inner.shape.length;
      const out = node.shape.map((d, i) =>
        i < lead || (inner.shape[i - lead] === 1 && d !== 1) ? 0 : strides[i - lead]
      );
      return { base, shape: node.shape, strides: out, offset };
    }
    default: {
      const out = reshapeStrides(inner.shape, strides, node.shape);
      return out === null ? null : { base, shape: node.shape, strides: out, offset };
    }
  }
}

/**
 * NumPy's no-copy reshape: strides for `to` over the same elements, or null
 * when a copy is needed.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { reshapeStrides } from "./strided.ts";
 * deepStrictEqual(reshapeStrides([4, 6], [6, 1], [2, 2, 6]), [12, 6, 1]);
 * strictEqual(reshapeStrides([6, 4], [1, 6], [24]), null); // a transpose cannot be flattened in place
 * ```
 */
export function reshapeStrides(
  from: readonly number[],
  strides: readonly number[],
  to: readonly number[],
): number[] | null {
  if (sizeOf(from) === 0) return stridesOf(to);
  const dims = from.map((d, i) => [d, strides[i]]).filter(([d]) => d !== 1);
  const out = new Array<number>(to.length).fill(0);
  const next = (j: number) => {
    while (j < to.length && to[j] === 1) j++;
    return j;
  };
  let i = 0;
  let j = next(0);
  // Split both shapes into groups of equal element counts; inside a group the
  // input dims must be contiguous, and the output dims take strides from its innermost.
  while (i < dims.length) {
    const [i0, j0] = [i, j];
    let [pa, pb] = [dims[i++][0], to[j]];
    j = next(j + 1);
    while (pa !== pb) {
      if (pa < pb) pa *= dims[i++][0];
      else {
        pb *= to[j];
        j = next(j + 1);
      }
    }
    for (let k = i0; k < i - 1; k++) {
      if (dims[k][1] !== dims[k + 1][1] * dims[k + 1][0]) return null;
    }
    let stride = dims[i - 1][1];
    for (let k = j - 1; k >= j0; k--) {
      out[k] = stride;
      stride *= to[k];
    }
  }
  return out;
}

/**
 * Reads view `v` (shape `[...batch, rows, cols]`) as a matmul operand: the
 * last two axes either row-major with leading dimension `ld`, or transposed;
 * the batch axes collapse into one stride (0 when broadcast). Null when the
 * layout does not fit and the operand must be copied.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { matmulOperand, stridedView } from "./strided.ts";
 * const w = makeNode(ops.input, [], { shape: [3, 4], dtype: "f32" }, "w");
 * const wT = makeNode(ops.permute, [w], { perm: [1, 0] });
 * strictEqual(matmulOperand(stridedView(wT)!)?.trans, true);
 * ```
 */
export function matmulOperand(v: StridedView): MatmulOperand | null {
  const r = v.shape.length;
  const [rows, cols] = [v.shape[r - 2], v.shape[r - 1]];
  const [sr, sc] = [v.strides[r - 2], v.strides[r - 1]];
  let layout: { trans: boolean; ld: number } | null = null;
  if ((cols <= 1 || sc === 1) && (rows <= 1 || sr >= cols)) {
    layout = { trans: false, ld: rows <= 1 ? cols : sr };
  } else if ((rows <= 1 || sr === 1) && (cols <= 1 || sc >= rows)) {
    layout = { trans: true, ld: cols <= 1 ? rows : sc };
  }
  if (layout === null) return null;
  const batch = v.shape.slice(0, r - 2).map((d, i) => [d, v.strides[i]]).filter(([d]) => d > 1);
  let batchStride = 0;
  if (batch.length > 0) {
    const zero = batch.every(([, s]) => s === 0);
    for (let k = 0; k + 1 < batch.length && !zero; k++) {
      if (batch[k][1] !== batch[k + 1][1] * batch[k + 1][0]) return null;
    }
    batchStride = zero ? 0 : batch[batch.length - 1][1];
    if (!zero && batchStride === 0) return null;
  }
  return { base: v.base, ...layout, batchStride, offset: v.offset };
}
