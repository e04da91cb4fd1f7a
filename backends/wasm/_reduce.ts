/**
 * `sum` and `max` over a contiguous block of axes: the input is viewed as
 * `[outer, rows, inner]` and reduced over `rows`. With inner = 1 each output
 * is a vector reduction of one contiguous row; otherwise four columns at a
 * time are reduced down the rows. `max`
 * keeps the reference's `v > acc ? v : acc` (NaN never wins) via `pmax`.
 *
 * @module
 */
import type { DType } from "../../compiler/ir.ts";
import { type Fn, I32, V128 } from "./_encoder.ts";
import { S } from "./_math.ts";

/** What one reduce step computes. */
export interface ReduceSpec {
  readonly op: "sum" | "max";
  readonly dtype: DType;
  readonly outer: number;
  readonly rows: number;
  readonly inner: number;
  /** Byte addresses of the contiguous input and output. */
  readonly x: number;
  readonly out: number;
}

/**
 * How a reduction over `axes` of `shape` runs: `[outer, rows, inner]` with
 * `rows` reduced, after permuting the input by `perm` when the axes are not
 * one block.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { reduceLayout } from "./_reduce.ts";
 * deepStrictEqual(reduceLayout([2, 3, 4], [1]), { perm: undefined, outer: 2, rows: 3, inner: 4 });
 * deepStrictEqual(reduceLayout([2, 3, 4], [0, 2]).perm, [1, 0, 2]);
 * ```
 */
export function reduceLayout(shape: readonly number[], axesAttr: readonly number[]) {
  let axes = axesAttr.map((a) => (a + shape.length) % shape.length).sort((p, q) => p - q);
  let perm: number[] | undefined;
  let s = shape;
  if (axes.some((a, i) => i > 0 && a !== axes[i - 1] + 1)) {
    const kept = shape.map((_, i) => i).filter((i) => !axes.includes(i));
    perm = [...kept, ...axes];
    s = perm.map((p) => shape[p]);
    axes = axes.map((_, i) => kept.length + i);
  }
  const size = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);
  const outer = size(s.slice(0, axes[0] ?? s.length));
  const rows = size(axes.map((a) => s[a]));
  const inner = size(s.slice((axes[axes.length - 1] ?? s.length - 1) + 1));
  return { perm, outer, rows, inner };
}

function combine(f: Fn, s: ReduceSpec): void {
  if (s.op === "sum") f.simd(s.dtype === "f32" ? S.fadd : S.iadd);
  else if (s.dtype === "f32") f.simd(S.pmax);
  else f.simd(s.dtype === "i32" ? S.imaxs : S.imaxu);
}

function init(f: Fn, s: ReduceSpec): void {
  if (s.op === "sum") f.v128i(0);
  else if (s.dtype === "f32") f.v128f(-Infinity);
  else f.v128i(s.dtype === "i32" ? -0x80000000 : 0);
}

/**
 * Emits the reduction into kernel `f` (`(thread, threads)`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn, I32 } from "./_encoder.ts";
 * import { emitReduce } from "./_reduce.ts";
 * const f = new Fn([I32, I32]);
 * emitReduce(f, { op: "sum", dtype: "f32", outer: 2, rows: 3, inner: 1, x: 0, out: 64 });
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitReduce(f: Fn, s: ReduceSpec): void {
  const [o, r, j, lo, hi, p] = f.localsOf(I32, 6);
  const acc = f.local(V128);
  const { outer, rows, inner } = s;
  const share = (count: number, unit: number) => {
    f.get(0).i32(count).mul().get(1).op(0x6d).i32(unit).mul().set(lo);
    f.get(0).i32(1).add().i32(count).mul().get(1).op(0x6d).i32(unit).mul().set(hi);
  };
  if (inner === 1) {
    share(outer, 1);
    const v4 = rows - (rows % 4);
    f.for(o, () => f.get(lo), () => f.get(hi), 1, () => {
      f.get(o).i32(rows * 4).mul().i32(s.x).add().set(p);
      init(f, s);
      f.set(acc);
      f.for(j, () => f.i32(0), () => f.i32(v4), 4, () => {
        f.get(acc).get(p).get(j).i32(4).mul().add().vmem(S.load, 2);
        combine(f, s);
        f.set(acc);
      });
      f.for(j, () => f.i32(v4), () => f.i32(rows), 1, () => {
        // One element: zero in the other lanes for sum, copies for max.
        f.get(acc).get(p).get(j).i32(4).mul().add();
        f.vmem(s.op === "sum" ? S.load32zero : S.splat32, 2);
        combine(f, s);
        f.set(acc);
      });
      f.get(o).i32(4).mul().i32(s.out).add();
      f.get(acc);
      for (let l = 1; l < 4; l++) {
        // acc op= acc shifted by l lanes, via a lane splat.
        f.get(acc).simd(S.i32extract, l).simd(S.i32splat);
        combine(f, s);
      }
      f.simd(S.i32extract, 0).mem(0x36, 2);
    });
    return;
  }
  // inner > 1: split rows of output columns among threads (by outer, or by columns when outer = 1).
  const v4 = inner - (inner % 4);
  const byColumns = outer === 1;
  if (byColumns) share(Math.ceil(inner / 4), 4);
  else share(outer, 1);
  const columns = (from: () => void, to: () => void, step: number) =>
    f.for(j, from, to, step, () => {
      const load = step === 4 ? S.load : S.splat32;
      f.get(o).i32(inner * 4).mul().get(j).i32(4).mul().add().i32(s.out).add().set(p);
      init(f, s);
      f.set(acc);
      f.for(r, () => f.i32(0), () => f.i32(rows), 1, () => {
        f.get(acc).get(o).i32(rows).mul().get(r).add().i32(inner * 4).mul();
        f.get(j).i32(4).mul().add().i32(s.x).add().vmem(load, 2);
        combine(f, s);
        f.set(acc);
      });
      f.get(p).get(acc);
      if (step === 4) f.vmem(S.store, 2);
      else f.simd(S.i32extract, 0).mem(0x36, 2);
    });
  const loOf = byColumns ? () => f.get(lo) : () => f.i32(0);
  f.for(
    o,
    () => byColumns ? f.i32(0) : f.get(lo),
    () => {
      if (byColumns) f.i32(1);
      else f.get(hi);
    },
    1,
    () => {
      if (byColumns) {
        // Whole vectors up to v4 in this thread's range, then the lane tail by the last thread.
        columns(loOf, () => {
          f.get(hi).i32(v4).get(hi).i32(v4).op(0x48).op(0x1b);
        }, 4);
        f.get(0).get(1).i32(1).op(0x6b).op(0x46).if();
        columns(() => f.i32(v4), () => f.i32(inner), 1);
        f.end();
      } else {
        columns(() => f.i32(0), () => f.i32(v4), 4);
        columns(() => f.i32(v4), () => f.i32(inner), 1);
      }
    },
  );
}
