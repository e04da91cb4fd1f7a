/**
 * The fused row-wise ops (softmax, logSoftmax, layerNorm, crossEntropy and
 * their backward ops), computed from each op's own `rowwise` rule (the rule
 * the WebGPU backend renders to WGSL), so an op's math is written once.
 *
 * One thread owns a row and rows are split among threads. The rule builds
 * kernel IR statements through the shared `RowBlock` over a Wasm row layout; they
 * are then rendered as f32x4 code: a column loop (`each`) runs four columns
 * at a time, with `j` the vector of their indices, then the tail one column
 * at a time with every lane holding that column, so tail iterations only
 * update lane 0 of the accumulators declared outside the loop (the other
 * lanes keep their partials, and row sums and maxima stay right). `sum` and
 * `max` then combine the four lanes.
 *
 * @module
 */
import {
  Body,
  call,
  type Expr,
  type KernelFunction,
  load,
  RowBlock,
  type RowKernel,
  type RowLayout,
  type ScalarType,
  type Stmt,
  u32,
} from "../../compiler/kernel_ir/mod.ts";
import { type Fn, I32, V128 } from "./_encoder.ts";
import type { Helpers } from "./_expr.ts";
import { emitKernelExpr } from "./_kernel_expr.ts";
import { S } from "./_math.ts";

/**
 * One row operand: its byte address, element type, and whether it holds one
 * value per row (crossEntropy's labels and cotangent) rather than a row.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import type { RowOperand } from "./_rowwise.ts";
 * const labels: RowOperand = { addr: 256, type: "i32", perRow: true };
 * strictEqual(labels.perRow, true);
 * ```
 */
export interface RowOperand {
  readonly addr: number;
  readonly type: "f32" | "i32";
  readonly perRow: boolean;
}

/**
 * One rowwise step: its rule, row count and length, operands and output.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import type { RowSpec } from "./_rowwise.ts";
 * // a copy of each row
 * const copy: RowSpec = {
 *   rule: (row) => row.each((j) => row.store(j, row.x(j))),
 *   rows: 2, cols: 3,
 *   operands: [{ addr: 0, type: "f32", perRow: false }],
 *   out: { addr: 24, perRow: false },
 * };
 * strictEqual(copy.operands.length, 1);
 * ```
 */
export interface RowSpec {
  /** The op's rule over one row (`node.def.rowwise` with its node). */
  readonly rule: (row: RowKernel) => void;
  readonly rows: number;
  readonly cols: number;
  readonly operands: readonly RowOperand[];
  /** The output's byte address, and whether it holds one value per row (crossEntropy's losses). */
  readonly out: { readonly addr: number; readonly perRow: boolean };
}

/**
 * Emits the rowwise step `spec` into kernel `f`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { div, math, sub } from "../../compiler/kernel_ir/mod.ts";
 * import { rowMax, rowSum } from "../../compiler/kernel_ir/mod.ts";
 * import { ModuleBuilder } from "./_module.ts";
 * import { emitRowwise } from "./_rowwise.ts";
 * const m = new ModuleBuilder();
 * emitRowwise(m.kernel("s"), {
 *   rule: (row) => {
 *     const mx = rowMax(row, (j) => row.x(j));
 *     const s = rowSum(row, (j) => math("exp", sub(row.x(j), mx)));
 *     row.each((j) => row.store(j, div(math("exp", sub(row.x(j), mx)), s)));
 *   },
 *   rows: 2, cols: 5,
 *   operands: [{ addr: 0, type: "f32", perRow: false }],
 *   out: { addr: 64, perRow: false },
 * }, m);
 * strictEqual(WebAssembly.validate(m.encode(1)), true);
 * ```
 */
export function emitRowwise(f: Fn, spec: RowSpec, h: Helpers): void {
  const body = new Body();
  const row = new RowBlock(body, wasmRowLayout(spec.cols, spec.operands.map((o) => o.type)));
  spec.rule(row);
  const ptr = new Map<string, number>();
  spec.operands.forEach((_, k) => ptr.set(`in${k}`, f.local(I32)));
  ptr.set("out", f.local(I32));
  const [r, lo, hi] = f.localsOf(I32, 3);
  // [lo, hi) = rows * [thread, thread + 1) / threads, with params 0 = thread, 1 = threads.
  f.get(0).i32(spec.rows).mul().get(1).op(0x6d).set(lo);
  f.get(0).i32(1).add().i32(spec.rows).mul().get(1).op(0x6d).set(hi);
  const renderer = new RowRenderer(f, h, ptr, row.columnLoops);
  f.for(r, () => f.get(lo), () => f.get(hi), 1, () => {
    const point = (name: string, addr: number, perRow: boolean) =>
      f.get(r).i32((perRow ? 1 : spec.cols) * 4).mul().i32(addr).add().set(ptr.get(name)!);
    spec.operands.forEach((o, k) => point(`in${k}`, o.addr, o.perRow));
    point("out", spec.out.addr, spec.out.perRow);
    renderer.block(body.stmts);
  });
}

// Lane reductions, as calls the renderer recognises by identity: one row
// kernel's `sum`/`max` of its per-lane partials.
const LANES_SUM: KernelFunction = {
  name: "lanes_sum",
  params: [{ name: "v", type: "f32" }],
  returns: "f32",
  body: [],
};
const LANES_MAX: KernelFunction = { ...LANES_SUM, name: "lanes_max" };

/**
 * The row layout of a Wasm row kernel: one thread per row, so no shared
 * array. Operand `k` is the array `in${k}`, pointed at this row (or at its
 * one value per row), indexed by column; the output is `out`. Each
 * invocation holds four lanes of partials, combined by the lane reductions.
 */
function wasmRowLayout(cols: number, types: readonly ScalarType[]): RowLayout {
  return {
    cols,
    row: u32(0),
    read: (k, index) => {
      const t = types[k];
      if (t === undefined) throw new Error(`wasm: the row kernel has no operand ${k}`);
      return load(`in${k}`, index, t);
    },
    write: (body, index, value) => body.store("out", index, value),
    combineLanes: (body, partial, combine) =>
      body.let(
        call(combine === "+" ? LANES_SUM : LANES_MAX, partial),
        combine === "+" ? "sum" : "max",
      ),
  };
}

/** The column loop being rendered: its counter, and whether this pass is the four-wide one. */
interface Columns {
  readonly name: string;
  readonly counter: number;
  readonly vector: boolean;
  /** Locals declared inside the loop (all lanes of these are the iteration's own). */
  readonly inner: Set<string>;
}

/**
 * Renders a row kernel's statements: every value a v128 local (lets, vars),
 * bools 0/1 in i32 lanes. Outside a four-wide column pass every lane holds
 * the same value (the tail's column, per-row values), except accumulators
 * before their `sum`/`max`; so `if` tests lane 0, and is refused inside a
 * four-wide pass (per-column choices are `select`s).
 */
class RowRenderer {
  readonly #locals = new Map<string, number>();
  #counter: number | undefined;
  #columns: Columns | undefined;

  constructor(
    readonly f: Fn,
    readonly h: Helpers,
    readonly ptr: ReadonlyMap<string, number>,
    readonly columnLoops: ReadonlySet<string>,
  ) {}

  block(stmts: readonly Stmt[]): void {
    for (const s of stmts) this.#stmt(s);
  }

  #stmt(s: Stmt): void {
    const { f } = this;
    switch (s.kind) {
      case "let":
      case "var": {
        // One local per name: a loop body rendered twice reuses its locals.
        const local = this.#locals.get(s.name) ?? f.local(V128);
        this.#locals.set(s.name, local);
        this.#columns?.inner.add(s.name);
        const value = s.kind === "let" ? s.value : s.init;
        if (value === undefined) f.v128i(0);
        else this.#expr(value);
        f.set(local);
        return;
      }
      case "assign": {
        const local = this.#local(s.name);
        this.#expr(s.value);
        const c = this.#columns;
        if (c !== undefined && !c.vector && !c.inner.has(s.name)) {
          // A tail column is in every lane; only lane 0 may fold it into an outer partial.
          f.get(local).v128i(-1, 0, 0, 0).simd(S.bitselect);
        }
        f.set(local);
        return;
      }
      case "store":
        return this.#store(s.array, s.index, s.value);
      case "loop":
        return this.#loop(s);
      case "if":
        if (this.#columns?.vector === true) {
          throw new Error("wasm: a row rule branches per column; use select");
        }
        this.#expr(s.cond);
        f.simd(S.i32extract, 0).if();
        this.block(s.then);
        if (s.otherwise !== undefined) {
          f.else();
          this.block(s.otherwise);
        }
        f.end();
        return;
      default:
        throw new Error(`wasm: no row-kernel lowering for a ${s.kind} statement`);
    }
  }

  #loop(s: Extract<Stmt, { kind: "loop" }>): void {
    const { f } = this;
    const cols = s.to.kind === "literal" ? s.to.value : -1;
    if (!this.columnLoops.has(s.name) || this.#columns !== undefined || cols < 0) {
      throw new Error("wasm: row kernels loop only over a row's columns, one loop deep");
    }
    // Column loops never nest, so they share one counter.
    this.#counter ??= f.local(I32);
    const counter = this.#counter;
    const four = cols - (cols % 4);
    const pass = (vector: boolean, from: number, to: number) => {
      if (from >= to) return;
      this.#columns = { name: s.name, counter, vector, inner: new Set() };
      f.for(counter, () => f.i32(from), () => f.i32(to), vector ? 4 : 1, () => this.block(s.body));
      this.#columns = undefined;
    };
    pass(true, 0, four);
    pass(false, four, cols);
  }

  #local(name: string): number {
    const local = this.#locals.get(name);
    if (local === undefined) throw new Error(`wasm: row kernel value ${name} is not defined`);
    return local;
  }

  #isColumn(index: Expr): boolean {
    return index.kind === "ref" && index.name === this.#columns?.name;
  }

  /** Pushes the byte address of `array[index]` for a lane-uniform index (lane 0's). */
  #address(array: string, index: Expr): number {
    const { f } = this;
    const ptr = this.ptr.get(array);
    if (ptr === undefined) throw new Error(`wasm: row kernels have no array ${array}`);
    f.get(ptr);
    if (index.kind === "literal") return index.value * 4; // the memarg offset
    if (this.#isColumn(index)) f.get(this.#columns!.counter);
    else {
      this.#expr(index);
      f.simd(S.i32extract, 0);
    }
    f.i32(4).mul().add();
    return 0;
  }

  #store(array: string, index: Expr, value: Expr): void {
    const { f } = this;
    const c = this.#columns;
    if (c?.vector === true && !this.#isColumn(index)) {
      throw new Error("wasm: a row rule stores off its column inside each");
    }
    const offset = this.#address(array, index);
    this.#expr(value);
    if (c?.vector === true) f.vmem(S.store, 2, offset);
    else f.vmem(S.store32lane, 2, offset).op(0);
  }

  #load(e: Extract<Expr, { kind: "load" }>): void {
    const { f } = this;
    const c = this.#columns;
    if (c?.vector === true && !this.#isColumn(e.index) && e.index.kind !== "literal") {
      // Four columns from four indices: a gather, lane by lane.
      const ptr = this.ptr.get(e.array)!;
      const index = f.local(V128);
      this.#expr(e.index);
      f.set(index).v128i(0);
      const gathered = f.local(V128);
      f.set(gathered);
      for (let l = 0; l < 4; l++) {
        f.get(ptr).get(index).simd(S.i32extract, l).i32(4).mul().add().get(gathered);
        f.vmem(S.load32lane, 2).op(l).set(gathered);
      }
      f.get(gathered);
      return;
    }
    const offset = this.#address(e.array, e.index);
    f.vmem(c?.vector === true && this.#isColumn(e.index) ? S.load : S.splat32, 2, offset);
  }

  /** Sums or maxes the four lanes of `v` into every lane. */
  #lanes(fn: KernelFunction, v: Expr): void {
    const { f } = this;
    const combine = fn === LANES_SUM ? S.fadd : S.pmax;
    const t = f.local(V128);
    this.#expr(v);
    f.tee(t);
    for (let l = 1; l < 4; l++) f.get(t).simd(S.f32extract, l).simd(S.f32splat).simd(combine);
    f.simd(S.f32extract, 0).simd(S.f32splat);
  }

  #expr(e: Expr): void {
    emitKernelExpr(this.f, e, {
      local: (name) => this.#local(name),
      emit: (x) => {
        if (x.kind === "load") this.#load(x);
        else if (x.kind === "call" && (x.fn === LANES_SUM || x.fn === LANES_MAX)) {
          this.#lanes(x.fn, x.args[0]);
        } else if (x.kind === "math" && x.fn === "max" && x.type === "f32") {
          // A row maximum only shifts exp's argument for stability, so
          // max's NaN and ±0 rules buy nothing here, and pmax is one
          // instruction on x86 where max is several (a NaN in the row still
          // makes the row's result NaN, through its exp).
          this.#expr(x.args[0]);
          this.#expr(x.args[1]);
          this.f.simd(S.pmax);
        } else if (this.#isColumn(x)) {
          // j as a value: its column in every lane, or four consecutive columns.
          this.f.get(this.#columns!.counter).simd(S.i32splat);
          if (this.#columns!.vector) this.f.v128i(0, 1, 2, 3).simd(S.iadd);
        } else return false;
        return true;
      },
    }, this.h);
  }
}
