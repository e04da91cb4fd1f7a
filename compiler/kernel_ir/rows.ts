/**
 * What a row-wise op's kernel rule ({@link RowKernel}) may ask of the kernel
 * it is lowered into: its operands in the current row, loops over the row's
 * columns, row-wide sums and maxima, and stores. A backend decides how a row
 * is spread over invocations (one invocation per row with serial loops, or a
 * workgroup per row with tree reductions); the op's rule reads the same
 * either way, as the math of one row.
 *
 * Backend-neutral, and free of graph types (the graph IR imports it).
 *
 * @module
 */
import { add, binary, f32, invocation, load, math, u32 } from "./build.ts";
import type { Body } from "./body.ts";
import type { Expr } from "./ir.ts";

/**
 * One row of a row-wise kernel over the last axis, as seen by an op's rule.
 * Values are kernel IR expressions; column indices are u32.
 *
 * `sum`/`max` synchronise every invocation sharing the row, so they must be
 * called at the row's top level (never inside {@link RowKernel.each} or
 * {@link RowKernel.leader}); the backend throws otherwise.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { div, load, math, ref, sub } from "./build.ts";
 * import { Body } from "./body.ts";
 * import { RowBlock, type RowKernel, rowMax, rowSum } from "./rows.ts";
 * // softmax of one row: exp(x - max) / Σ exp(x - max)
 * const softmax = (row: RowKernel) => {
 *   const m = rowMax(row, (j) => row.x(j));
 *   const s = rowSum(row, (j) => math("exp", sub(row.x(j), m)));
 *   row.each((j) => row.store(j, div(math("exp", sub(row.x(j), m)), s)));
 * };
 * const body = new Body();
 * softmax(new RowBlock(body, {
 *   cols: 8, row: ref("row", "u32"), base: ref("base", "u32"),
 *   read: (k, i) => load(`in${k}`, i, "f32"), write: (b, i, v) => b.store("out0", i, v),
 * }));
 * strictEqual(body.stmts.filter((s) => s.kind === "loop").length, 3);
 * ```
 */
export interface RowKernel {
  /** The row length: the last axis of the first operand. */
  readonly cols: number;
  /**
   * The block statements go into now: the row's body, the loop body inside
   * {@link RowKernel.each}, the leader's block inside {@link RowKernel.leader}.
   */
  readonly body: Body;
  /** Operand `k` (same shape as the first) at column `j` of this row. */
  operand(k: number, j: Expr): Expr;
  /** The first operand at column `j` of this row (`operand(0, j)`). */
  x(j: Expr): Expr;
  /** Operand `k` that has one element per row (labels, a per-row cotangent): this row's element. */
  perRow(k: number): Expr;
  /**
   * Runs `build` for the columns this invocation handles (all of them when
   * one invocation owns the row); `body` (also {@link RowKernel.body} while
   * `build` runs) is the loop body.
   */
  each(build: (j: Expr, body: Body) => void): void;
  /** The row-wide sum of every invocation's f32 partial `v`, known to all of them. */
  sum(v: Expr): Expr;
  /** The row-wide maximum of every invocation's f32 partial `v`, known to all of them. */
  max(v: Expr): Expr;
  /** Stores the op's value at column `j` of this row (inside {@link RowKernel.each}). */
  store(j: Expr, v: Expr): void;
  /** Stores the op's one value for this row (a per-row result), inside {@link RowKernel.leader}. */
  storeRow(v: Expr): void;
  /** Runs `build` in exactly one invocation of the row (for per-row results). */
  leader(build: (body: Body) => void): void;
}

/**
 * Row-wide sums of several per-column terms computed in one pass: each
 * invocation accumulates `acc_k = acc_k + terms(j)[k]` over its columns (from
 * 0, in column order), then the partials are summed across the row. `hints`
 * name the accumulators (and say how many terms there are).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { load, mul, ref } from "./build.ts";
 * import { Body } from "./body.ts";
 * import { RowBlock, rowSums } from "./rows.ts";
 * const body = new Body();
 * const row = new RowBlock(body, {
 *   cols: 8, row: ref("row", "u32"), base: ref("base", "u32"),
 *   read: (k, i) => load(`in${k}`, i, "f32"), write: (b, i, v) => b.store("out0", i, v),
 * });
 * // Σ g and Σ g·x of a row, in one loop
 * const [gs, gxs] = rowSums(row, ["gs", "gxs"], (j, loop) => {
 *   const g = loop.let(row.operand(1, j), "g");
 *   return [g, mul(g, row.x(j))];
 * });
 * strictEqual(body.stmts.filter((s) => s.kind === "loop").length, 1);
 * strictEqual([gs.kind, gxs.kind].join(), "ref,ref");
 * ```
 */
export function rowSums(
  row: RowKernel,
  hints: readonly string[],
  terms: (j: Expr, body: Body) => readonly Expr[],
): Expr[] {
  const accs = hints.map((hint) => row.body.var("f32", f32(0), hint));
  row.each((j, body) => {
    const values = terms(j, body);
    if (values.length !== accs.length) {
      throw new Error(`rowSums: ${values.length} terms for ${accs.length} accumulators`);
    }
    values.forEach((v, k) => body.assign(accs[k], add(accs[k], v)));
  });
  return accs.map((acc) => row.sum(acc));
}

/**
 * The row-wide sum of one per-column term (see {@link rowSums}).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { load, ref } from "./build.ts";
 * import { Body } from "./body.ts";
 * import { RowBlock, rowSum } from "./rows.ts";
 * const body = new Body();
 * const row = new RowBlock(body, {
 *   cols: 8, row: ref("row", "u32"), base: ref("base", "u32"), shared: { width: 8, array: "red" },
 *   read: (k, i) => load(`in${k}`, i, "f32"), write: (b, i, v) => b.store("out0", i, v),
 * });
 * const total = rowSum(row, (j) => row.x(j), "total");
 * strictEqual(total.kind, "ref"); // slot 0 of the shared array, after the tree reduction
 * strictEqual(body.stmts.some((s) => s.kind === "treeReduce"), true);
 * ```
 */
export function rowSum(
  row: RowKernel,
  term: (j: Expr, body: Body) => Expr,
  hint = "s",
): Expr {
  return rowSums(row, [hint], (j, body) => [term(j, body)])[0];
}

/**
 * The row-wide maximum of a per-column f32 term: each invocation folds
 * `m = max(m, term(j))` from -∞ over its columns, then the partials are
 * combined across the row (-∞ for an empty row).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { load, ref } from "./build.ts";
 * import { Body } from "./body.ts";
 * import { RowBlock, rowMax } from "./rows.ts";
 * const body = new Body();
 * const row = new RowBlock(body, {
 *   cols: 8, row: ref("row", "u32"), base: ref("base", "u32"),
 *   read: (k, i) => load(`in${k}`, i, "f32"), write: (b, i, v) => b.store("out0", i, v),
 * });
 * // one invocation per row: the maximum is the invocation's own running maximum
 * deepStrictEqual(rowMax(row, (j) => row.x(j), "m"), { kind: "ref", type: "f32", name: "m0" });
 * ```
 */
export function rowMax(
  row: RowKernel,
  term: (j: Expr, body: Body) => Expr,
  hint = "m",
): Expr {
  const m = row.body.var("f32", f32(-Infinity), hint);
  row.each((j, body) => body.assign(m, math("max", m, term(j, body))));
  return row.max(m);
}

/**
 * Where a {@link RowBlock} finds its row and how it reads and writes: the
 * backend's side of a row-wise kernel.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { load, ref } from "./build.ts";
 * import type { RowLayout } from "./rows.ts";
 * const layout: RowLayout = {
 *   cols: 8,
 *   row: ref("row", "u32"),
 *   base: ref("base", "u32"),
 *   read: (k, index) => load(`in${k}`, index, "f32"),
 *   write: (body, index, value) => body.store("out0", index, value),
 * };
 * strictEqual(layout.shared, undefined); // one invocation per row
 * ```
 */
export interface RowLayout {
  /** The row length. */
  readonly cols: number;
  /** This row's index (u32): where per-row operands are read and per-row results written. */
  readonly row: Expr;
  /**
   * The flat index of this row's first column (u32); absent when the
   * operands are addressed from the row's start (column `j` is index `j`).
   */
  readonly base?: Expr;
  /** Operand `k` at a flat index. */
  read(k: number, index: Expr): Expr;
  /** Writes the op's value at a flat index. */
  write(body: Body, index: Expr, value: Expr): void;
  /**
   * When a workgroup of `width` invocations (a power of two) shares the row:
   * the workgroup array of `width` f32 slots the reductions go through.
   * Absent when one invocation owns the row.
   */
  readonly shared?: { readonly width: number; readonly array: string };
  /**
   * How a backend whose one invocation holds several partials of the row
   * (a SIMD backend's lanes) combines them into the row-wide total; the
   * statements go into `body`. Absent: the invocation's partial (or the
   * shared tree's total) is the total.
   */
  combineLanes?(body: Body, partial: Expr, combine: "+" | "max"): Expr;
}

/**
 * The {@link RowKernel} of a row laid out by a {@link RowLayout}. With one
 * invocation per row, loops are serial and `sum`/`max` return the partial
 * itself; with a workgroup per row, invocation `t` takes columns `t, t +
 * width, ...` and `sum`/`max` are `treeReduce`s through the shared array
 * (written inline: only a kernel's body may read the invocation id).
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { div, load, math, ref, sub } from "./build.ts";
 * import { Body } from "./body.ts";
 * import { RowBlock, type RowKernel, type RowLayout, rowMax, rowSum } from "./rows.ts";
 * const softmax = (row: RowKernel) => {
 *   const m = rowMax(row, (j) => row.x(j));
 *   const s = rowSum(row, (j) => math("exp", sub(row.x(j), m)));
 *   row.each((j) => row.store(j, div(math("exp", sub(row.x(j), m)), s)));
 * };
 * const layout = (shared?: { width: number; array: string }): RowLayout => ({
 *   cols: 300, row: ref("row", "u32"), base: ref("base", "u32"), shared,
 *   read: (k, i) => load(`in${k}`, i, "f32"), write: (b, i, v) => b.store("out0", i, v),
 * });
 * const serial = new Body();
 * softmax(new RowBlock(serial, layout()));
 * strictEqual(serial.stmts.filter((s) => s.kind === "treeReduce").length, 0);
 * const shared = new Body();
 * softmax(new RowBlock(shared, layout({ width: 64, array: "red" })));
 * strictEqual(shared.stmts.filter((s) => s.kind === "treeReduce").length, 2);
 * const misplaced = new RowBlock(new Body(), layout());
 * throws(() => misplaced.each((j) => misplaced.sum(misplaced.x(j))), /top level/);
 * ```
 */
export class RowBlock implements RowKernel {
  /** The names of the column loops `each` emitted, in order (a SIMD backend vectorises these). */
  readonly columnLoops: Set<string> = new Set();
  readonly #layout: RowLayout;
  readonly #top: Body;
  #current: Body;
  #nested = 0;

  /** A row whose statements go into `body`. */
  constructor(body: Body, layout: RowLayout) {
    this.#top = body;
    this.#current = body;
    this.#layout = layout;
  }

  /** The row length. */
  get cols(): number {
    return this.#layout.cols;
  }

  /** The block statements go into now. */
  get body(): Body {
    return this.#current;
  }

  /** Operand `k` at column `j` of this row. */
  operand(k: number, j: Expr): Expr {
    return this.#layout.read(k, this.#column(j));
  }

  /** The first operand at column `j`. */
  x(j: Expr): Expr {
    return this.operand(0, j);
  }

  /** Operand `k`'s element for this row. */
  perRow(k: number): Expr {
    return this.#layout.read(k, this.#layout.row);
  }

  /** Loops over this invocation's columns. */
  each(build: (j: Expr, body: Body) => void): void {
    const shared = this.#layout.shared;
    const outer = this.#current;
    outer.loop(
      shared === undefined ? u32(0) : invocation({ of: "localIndex" }),
      u32(this.cols),
      (j, inner) => this.#within(inner, () => build(j, inner)),
      { step: u32(shared?.width ?? 1), hint: "j" },
    );
    const loop = outer.stmts[outer.stmts.length - 1];
    if (loop.kind === "loop") this.columnLoops.add(loop.name);
  }

  /** The row-wide sum of the partials `v`. */
  sum(v: Expr): Expr {
    return this.#reduce(v, "+");
  }

  /** The row-wide maximum of the partials `v`. */
  max(v: Expr): Expr {
    return this.#reduce(v, "max");
  }

  /** Stores the op's value at column `j`. */
  store(j: Expr, v: Expr): void {
    this.#layout.write(this.#current, this.#column(j), v);
  }

  /** Stores the op's value for this row. */
  storeRow(v: Expr): void {
    this.#layout.write(this.#current, this.#layout.row, v);
  }

  /** Runs `build` in one invocation of the row (invocation 0 of a shared row). */
  leader(build: (body: Body) => void): void {
    if (this.#layout.shared === undefined) {
      this.#within(this.#current, () => build(this.#current));
      return;
    }
    this.#current.when(
      binary("==", invocation({ of: "localIndex" }), u32(0)),
      (inner) => this.#within(inner, () => build(inner)),
    );
  }

  #reduce(v: Expr, combine: "+" | "max"): Expr {
    if (this.#nested > 0) {
      throw new Error(
        "RowKernel: row-wide sums and maxima synchronise the row, so they belong at its top level, not inside each or leader",
      );
    }
    if (v.type !== "f32") throw new Error(`RowKernel: reduces f32 values, got ${v.type}`);
    const lanes = this.#layout.combineLanes;
    if (lanes !== undefined) return lanes.call(this.#layout, this.#top, v, combine);
    const shared = this.#layout.shared;
    if (shared === undefined) return v;
    const body = this.#top;
    body.store(shared.array, invocation({ of: "localIndex" }), v);
    body.treeReduce(shared.width, [{ array: shared.array, combine }]);
    const total = body.let(load(shared.array, u32(0), "f32"), "reduced");
    // The next reduction overwrites the array: everyone must have read slot 0 first.
    body.barrier();
    return total;
  }

  #column(j: Expr): Expr {
    const base = this.#layout.base;
    return base === undefined ? j : add(base, j);
  }

  #within(body: Body, build: () => void): void {
    const saved = this.#current;
    this.#current = body;
    this.#nested++;
    try {
      build();
    } finally {
      this.#current = saved;
      this.#nested--;
    }
  }
}
