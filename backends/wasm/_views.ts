/**
 * Views: reshape, broadcast, permute and slice chains folded into one affine
 * map (offset + strides) over a materialized tensor, so kernels read them in
 * place instead of copying. A broadcast scalar constant becomes a splat.
 *
 * @module
 */
import type { Node } from "../../compiler/ir.ts";
import { stridesOf } from "../../ops/rules.ts";
import { VIEW_OPS } from "../../ops/mod.ts";

/** A strided read of `base` (in elements), or a constant. */
export type View =
  | {
    readonly kind: "strided";
    readonly base: Node;
    readonly offset: number;
    readonly shape: readonly number[];
    readonly strides: readonly number[];
  }
  | { readonly kind: "const"; readonly value: number; readonly shape: readonly number[] };

/**
 * True when a view walks its elements in row-major order (any offset): a
 * kernel can read it as a contiguous tensor.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { isRowMajor, plain } from "./_views.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * strictEqual(isRowMajor(plain(x) as never), true);
 * ```
 */
export function isRowMajor(v: View & { kind: "strided" }): boolean {
  const rm = stridesOf(v.shape);
  return v.shape.every((d, i) => d === 1 || v.strides[i] === rm[i]);
}

/**
 * The whole tensor `node`, row-major.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { plain } from "./_views.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * deepStrictEqual(plain(x).shape, [2, 3]);
 * ```
 */
export function plain(node: Node): View {
  return {
    kind: "strided",
    base: node,
    offset: 0,
    shape: node.shape,
    strides: stridesOf(node.shape),
  };
}

/**
 * The view `node` reads, folding view ops down to a node for which
 * `materialized` is true (or a fill constant). A reshape of a non-row-major
 * view cannot fold; the planner copies its input first.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { viewOf } from "./_views.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * const t = makeNode(ops.permute, [x], { perm: [1, 0] });
 * const v = viewOf(t, (n) => n === x);
 * deepStrictEqual(v.kind === "strided" && v.strides, [1, 3]);
 * ```
 */
export function viewOf(node: Node, materialized: (n: Node) => boolean): View {
  if (node.op === "const" && node.attrs.data === undefined) {
    return { kind: "const", value: node.attrs.value as number, shape: node.shape };
  }
  if (!VIEW_OPS.has(node.op) || materialized(node)) return plain(node);
  const inner = viewOf(node.inputs[0], materialized);
  const shape = node.shape;
  if (inner.kind === "const") return { kind: "const", value: inner.value, shape };
  switch (node.op) {
    case "reshape":
      if (!isRowMajor(inner)) return plain(node);
      return { ...inner, shape, strides: stridesOf(shape) };
    case "permute": {
      const perm = node.attrs.perm as number[];
      return { ...inner, shape, strides: perm.map((p) => inner.strides[p]) };
    }
    case "slice": {
      const starts = node.attrs.starts as number[];
      const offset = inner.offset + starts.reduce((s, st, i) => s + st * inner.strides[i], 0);
      return { ...inner, offset, shape };
    }
    default: { // broadcast
      const lead = shape.length - inner.shape.length;
      const strides = shape.map((_, i) =>
        i < lead || inner.shape[i - lead] === 1 ? 0 : inner.strides[i - lead]
      );
      return { ...inner, shape, strides };
    }
  }
}

/**
 * A view as a batch of matrices: one stride per batch step (the batch axes
 * must merge into one), per row and per column; undefined when they do not
 * merge or the view is a constant.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { matrixView, plain } from "./_views.ts";
 * import { makeNode } from "../../compiler/ir.ts";
 * import "../../ops/mod.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3, 4], dtype: "f32" }, "x");
 * const m = matrixView(plain(x))!;
 * strictEqual(m.batch, 12);
 * strictEqual(m.row, 4);
 * strictEqual(m.col, 1);
 * ```
 */
export function matrixView(v: View):
  | { base: Node; offset: number; batch: number; row: number; col: number }
  | undefined {
  if (v.kind !== "strided") return undefined;
  const r = v.shape.length;
  const dims = v.shape.slice(0, r - 2).map((d, i) => [d, v.strides[i]]).filter(([d]) => d > 1);
  const merges = dims.every(([, s], i) =>
    i === dims.length - 1 || s === dims[i + 1][0] * dims[i + 1][1]
  );
  if (!merges) return undefined;
  return {
    base: v.base,
    offset: v.offset,
    batch: dims.length > 0 ? dims[dims.length - 1][1] : 0,
    row: v.strides[r - 2],
    col: v.strides[r - 1],
  };
}
