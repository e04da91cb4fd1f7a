/**
 * The fused row-wise ops (softmax, logSoftmax, layerNorm, crossEntropy and
 * their backward ops) as passes over each row of the last axis: a pass
 * either reduces an expression of the row (sum or max, four lanes at a time,
 * then across lanes) into a per-row scalar, or stores an expression. Rows
 * are split among threads.
 *
 * @module
 */
import { type Fn, I32, V128 } from "./_encoder.ts";
import type { Helpers } from "./_expr.ts";
import { S } from "./_math.ts";

const PMAX = 235;

/** One rowwise step: its op, row count and length, operand and output byte addresses. */
export interface RowSpec {
  readonly op: string;
  readonly rows: number;
  readonly cols: number;
  readonly operands: readonly number[];
  readonly out: number;
  readonly eps?: number;
}

/** Emits code for a pass expression: `x(k)` pushes operand k at the current column(s). */
type Expr = (x: (k: number) => void) => void;

/**
 * Emits rowwise op `spec.op` into kernel `f`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ModuleBuilder } from "./_module.ts";
 * import { emitRowwise } from "./_rowwise.ts";
 * const m = new ModuleBuilder();
 * emitRowwise(m.kernel("s"), { op: "softmax", rows: 2, cols: 5, operands: [0], out: 64 }, m);
 * strictEqual(WebAssembly.validate(m.encode(1)), true);
 * ```
 */
export function emitRowwise(f: Fn, spec: RowSpec, h: Helpers): void {
  const emitOp = ROW_OPS.get(spec.op);
  if (emitOp === undefined) throw new Error(`wasm: no rowwise lowering for ${spec.op}`);
  const kernel = new RowEmitter(f, spec, h);
  kernel.eachRow(() => emitOp(kernel));
}

/** Each rowwise op's passes over one row. */
const ROW_OPS = new Map<string, (k: RowEmitter) => void>([
  ["softmax", softmax],
  ["softmaxBackward", softmaxBackward],
  ["logSoftmax", logSoftmax],
  ["logSoftmaxBackward", logSoftmaxBackward],
  ["layerNorm", layerNorm],
  ["layerNormBackward", layerNormBackward],
  ["crossEntropy", (k) => crossEntropy(k, false)],
  ["crossEntropyBackward", (k) => crossEntropy(k, true)],
]);

/**
 * A rowwise kernel under construction: the locals every op shares (declared
 * up front) and the passes its ops are built from; `reduce` and `local`
 * declare one more v128 for each per-row value.
 */
class RowEmitter {
  /** The column (of four, or of one in the tail). */
  readonly j: number;
  /** crossEntropy's label of the row; the backward reuses it for out[label]'s address. */
  readonly label: number;
  /** Each operand's address at the current row. */
  readonly ptr: readonly number[];
  /** The output's address at the current row. */
  readonly outPtr: number;
  /** A v128 an expression may tee to use its value twice. */
  readonly scratch: number;
  /** The row length as a divisor (1 for empty rows, so means stay finite). */
  readonly n: number;
  readonly #row: number;
  readonly #lo: number;
  readonly #hi: number;
  /** Operands that hold one value per row rather than a row of `cols`. */
  readonly #perRow: ReadonlySet<number>;
  /** Columns covered by the four-wide loop; the rest go one by one. */
  readonly #v4: number;

  constructor(readonly f: Fn, readonly spec: RowSpec, readonly h: Helpers) {
    [this.#row, this.j, this.#lo, this.#hi, this.label] = f.localsOf(I32, 5);
    // Operands 0 (and 2 for the backward ops that take a cotangent row) are [rows, cols];
    // crossEntropy's labels (1) and cotangent (2) are one value per row.
    this.#perRow = spec.op.startsWith("crossEntropy") ? new Set([1, 2]) : new Set<number>();
    this.ptr = spec.operands.map(() => f.local(I32));
    this.outPtr = f.local(I32);
    this.#v4 = spec.cols - (spec.cols % 4);
    this.scratch = f.local(V128);
    this.n = Math.max(spec.cols, 1);
  }

  /** Emits the loop over this thread's share of the rows, pointing at each row before `body`. */
  eachRow(body: () => void): void {
    const { f, spec } = this;
    const [row, lo, hi] = [this.#row, this.#lo, this.#hi];
    // [lo, hi) = rows * [thread, thread + 1) / threads, with params 0 = thread, 1 = threads.
    f.get(0).i32(spec.rows).mul().get(1).op(0x6d).set(lo);
    f.get(0).i32(1).add().i32(spec.rows).mul().get(1).op(0x6d).set(hi);
    f.for(row, () => f.get(lo), () => f.get(hi), 1, () => {
      spec.operands.forEach((addr, k) => {
        f.get(row).i32((this.#perRow.has(k) ? 1 : spec.cols) * 4).mul().i32(addr).add();
        f.set(this.ptr[k]);
      });
      const outCols = spec.op === "crossEntropy" ? 1 : spec.cols;
      f.get(row).i32(outCols * 4).mul().i32(spec.out).add().set(this.outPtr);
      body();
    });
  }

  /** Pushes operand k at column j: four columns, or (`lanes`) one splat to every lane. */
  #operand(lanes: boolean): (k: number) => void {
    return (k) => {
      const { f } = this;
      f.get(this.ptr[k]);
      if (!this.#perRow.has(k)) f.get(this.j).i32(4).mul().add();
      f.vmem(lanes || this.#perRow.has(k) ? S.splat32 : S.load, 2);
    };
  }

  /** Emits `for j` over the row: four columns at a time, then the tail one by one. */
  #columns(step: (lanes: boolean) => void): void {
    const { f, j } = this;
    f.for(j, () => f.i32(0), () => f.i32(this.#v4), 4, () => step(false));
    f.for(j, () => f.i32(this.#v4), () => f.i32(this.spec.cols), 1, () => step(true));
  }

  /** Reduces `e` over the row; returns the v128 local holding the result in every lane. */
  reduce(kind: "sum" | "max", e: Expr): number {
    const { f } = this;
    const combine = kind === "sum" ? S.fadd : PMAX;
    const acc = f.local(V128);
    f.v128f(kind === "sum" ? 0 : -Infinity).set(acc);
    this.#columns((lanes) => {
      f.get(acc);
      e(this.#operand(lanes));
      if (lanes && kind === "sum") f.v128i(-1, 0, 0, 0).simd(S.and); // count the element once
      f.simd(combine).set(acc);
    });
    f.get(acc);
    for (let l = 1; l < 4; l++) f.get(acc).simd(S.f32extract, l).simd(S.f32splat).simd(combine);
    f.simd(S.f32extract, 0).simd(S.f32splat).set(acc);
    return acc;
  }

  /** Stores `e` to the output row. */
  store(e: Expr): void {
    const { f } = this;
    this.#columns((lanes) => {
      f.get(this.outPtr).get(this.j).i32(4).mul().add();
      e(this.#operand(lanes));
      if (lanes) f.vmem(90, 2, 0).op(0); // v128.store32_lane, lane 0
      else f.vmem(S.store, 2);
    });
  }

  /** Emits `emit` (which pushes a v128) into a new local and returns it. */
  local(emit: () => void): number {
    const l = this.f.local(V128);
    emit();
    this.f.set(l);
    return l;
  }

  exp(): void {
    this.f.call(this.h.index("exp"));
  }

  /** The row max of x0 and sum(exp(x0 - max)): max is taken out so exp cannot overflow. */
  maxAndSumExp(): { max: number; sumExp: number } {
    const { f } = this;
    const max = this.reduce("max", (v) => v(0));
    const sumExp = this.reduce("sum", (v) => {
      v(0);
      f.get(max).simd(S.fsub);
      this.exp();
    });
    return { max, sumExp };
  }

  /** log(sum(exp(x0))) of the row. */
  logSumExp(): number {
    const { max, sumExp } = this.maxAndSumExp();
    return this.local(() => this.f.get(sumExp).call(this.h.index("log")).get(max).simd(S.fadd));
  }
}

function softmax(k: RowEmitter): void {
  const { f } = k;
  const { max, sumExp } = k.maxAndSumExp();
  const inv = k.local(() => f.v128f(1).get(sumExp).simd(S.fdiv));
  k.store((v) => {
    v(0);
    f.get(max).simd(S.fsub);
    k.exp();
    f.get(inv).simd(S.fmul);
  });
}

/** Operands: the softmax output y and the cotangent g; out = y * (g - sum(y * g)). */
function softmaxBackward(k: RowEmitter): void {
  const { f } = k;
  const d = k.reduce("sum", (v) => (v(0), v(1), f.simd(S.fmul)));
  k.store((v) => (v(0), v(1), f.get(d).simd(S.fsub).simd(S.fmul)));
}

function logSoftmax(k: RowEmitter): void {
  const l = k.logSumExp();
  k.store((v) => (v(0), k.f.get(l).simd(S.fsub)));
}

/** Operands: the logSoftmax output and the cotangent g; out = g - exp(output) * sum(g). */
function logSoftmaxBackward(k: RowEmitter): void {
  const { f } = k;
  const s = k.reduce("sum", (v) => v(1));
  k.store((v) => (v(1), v(0), k.exp(), f.get(s).simd(S.fmul).simd(S.fsub)));
}

/** The row's statistics both layerNorm directions need: x - mean, and 1 / sqrt(var + eps). */
function layerNormStats(k: RowEmitter) {
  const { f, n } = k;
  const sum = k.reduce("sum", (v) => v(0));
  const mean = k.local(() => f.get(sum).v128f(n).simd(S.fdiv));
  const centred = (v: (k: number) => void) => (v(0), f.get(mean).simd(S.fsub));
  const sq = k.reduce("sum", (v) => (centred(v), f.tee(k.scratch).get(k.scratch).simd(S.fmul)));
  const rstd = k.local(() => {
    f.v128f(1).get(sq).v128f(n).simd(S.fdiv).v128f(k.spec.eps ?? 0).simd(S.fadd);
    f.simd(S.fsqrt).simd(S.fdiv);
  });
  return { centred, rstd };
}

function layerNorm(k: RowEmitter): void {
  const { centred, rstd } = layerNormStats(k);
  k.store((v) => (centred(v), k.f.get(rstd).simd(S.fmul)));
}

/** Operands: x and the cotangent g; out = rstd * (g - mean(g) - x̂ * mean(g * x̂)). */
function layerNormBackward(k: RowEmitter): void {
  const { f, n } = k;
  const { centred, rstd } = layerNormStats(k);
  const gSum = k.reduce("sum", (v) => v(1));
  const gyS = k.reduce("sum", (v) => (v(1), centred(v), f.simd(S.fmul).get(rstd).simd(S.fmul)));
  const gMean = k.local(() => f.get(gSum).v128f(n).simd(S.fdiv));
  const gyMean = k.local(() => f.get(gyS).v128f(n).simd(S.fdiv));
  k.store((v) => {
    v(1);
    f.get(gMean).simd(S.fsub);
    centred(v);
    f.get(rstd).simd(S.fmul).get(gyMean).simd(S.fmul).simd(S.fsub);
    f.get(rstd).simd(S.fmul);
  });
}

/**
 * Operands: logits, labels (i32, one per row) and, for the backward, the
 * cotangent (one per row). The forward stores one loss per row,
 * logSumExp - logit[label]; the backward stores (softmax - onehot(label)) * g.
 */
function crossEntropy(k: RowEmitter, backward: boolean): void {
  const { f, ptr, outPtr, label } = k;
  // Ignored rows (label < 0) give 0.
  f.get(ptr[1]).mem(0x28, 2).set(label);
  f.get(label).i32(0).op(0x48).if();
  if (!backward) f.get(outPtr).f32(0).mem(0x38, 2);
  else k.store(() => void f.v128f(0));
  f.else();
  const l = k.logSumExp();
  if (!backward) {
    f.get(outPtr).get(l).simd(S.f32extract, 0);
    f.get(ptr[0]).get(label).i32(4).mul().add().mem(0x2a, 2).op(0x93).mem(0x38, 2);
  } else {
    k.store((v) => (v(0), f.get(l).simd(S.fsub), k.exp(), v(2), f.simd(S.fmul)));
    // out[label] -= g
    f.get(outPtr).get(label).i32(4).mul().add().tee(label);
    f.get(label).mem(0x2a, 2).get(ptr[2]).mem(0x2a, 2).op(0x93).mem(0x38, 2);
  }
  f.end();
}
