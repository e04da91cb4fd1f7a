/**
 * The loop nest of an elementwise kernel: one output and any number of
 * strided inputs over a shape. Dimensions that are contiguous for every
 * operand are merged first, so a plain elementwise chain is one flat loop;
 * the innermost loop runs four elements per iteration when every operand is
 * contiguous or broadcast along it, and lane by lane otherwise (and for the
 * tail). Threads split the outermost dimension (or, for one flat loop, its
 * vectors).
 *
 * @module
 */
import { type Fn, I32, V128 } from "./_encoder.ts";
import { S } from "./_math.ts";

/** A strided operand: byte address of element 0 and strides in elements. */
export interface Operand {
  readonly addr: number;
  readonly strides: readonly number[];
}

/**
 * Merges dimensions that are contiguous for every operand and drops size-1 ones.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { collapse } from "./_loops.ts";
 * deepStrictEqual(collapse([2, 1, 3], [{ addr: 0, strides: [3, 3, 1] }]).dims, [6]);
 * ```
 */
export function collapse(shape: readonly number[], operands: readonly Operand[]) {
  const keep = shape.map((d, i) => d !== 1 ? i : -1).filter((i) => i >= 0);
  let dims = keep.map((i) => shape[i]);
  let strides = operands.map((o) => keep.map((i) => o.strides[i]));
  for (let i = dims.length - 2; i >= 0; i--) {
    if (strides.every((s) => s[i] === s[i + 1] * dims[i + 1])) {
      dims = [...dims.slice(0, i), dims[i] * dims[i + 1], ...dims.slice(i + 2)];
      strides = strides.map((s) => [...s.slice(0, i), s[i + 1], ...s.slice(i + 2)]);
    }
  }
  if (dims.length === 0) return { dims: [1], strides: strides.map(() => [0]) };
  return { dims, strides };
}

/** What the body callback gets: the inputs' values for the current four (or one) elements. */
export type Load = (input: number) => number;

/**
 * Emits the kernel into `f` (a `(thread, threads)` function). `body` pushes
 * the output v128 using `load(k)` for input k; it is emitted twice (vector
 * and lane mode), so it must not declare state across calls.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn, I32 } from "./_encoder.ts";
 * import { emitLoops } from "./_loops.ts";
 * const f = new Fn([I32, I32]);
 * emitLoops(f, [10], { addr: 0, strides: [1] }, [{ addr: 64, strides: [1] }], (load) => {
 *   f.get(load(0));
 * });
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitLoops(
  f: Fn,
  shape: readonly number[],
  out: Operand,
  inputs: readonly Operand[],
  body: (load: Load) => void,
): void {
  const all = [out, ...inputs];
  const { dims, strides } = collapse(shape, all);
  const rank = dims.length;
  const n = dims[rank - 1];
  const inner = strides.map((s) => s[rank - 1]);
  const vectorized = inner[0] === 1 && inner.slice(1).every((s) => s === 0 || s === 1);
  const ptr = all.map(() => f.local(I32));
  const idx = dims.slice(0, -1).map(() => f.local(I32));
  const [j, jb, lo, hi] = [f.local(I32), f.local(I32), f.local(I32), f.local(I32)];
  const [tid, nt] = [0, 1];

  const rowPointers = () => {
    all.forEach((o, k) => {
      f.i32(o.addr);
      idx.forEach((x, d) => f.get(x).i32(strides[k][d] * 4).op(0x6c).op(0x6a));
      f.set(ptr[k]);
    });
  };
  const emitBody = (lanes: boolean) => {
    const cache = new Map<number, number>();
    const load: Load = (k) => {
      let local = cache.get(k);
      if (local !== undefined) return local;
      local = f.local(V128);
      const s = inner[k + 1];
      f.get(ptr[k + 1]);
      if (s !== 0 && lanes) f.get(j).i32(s * 4).op(0x6c).op(0x6a);
      if (s !== 0 && !lanes) f.get(jb).op(0x6a);
      f.vmem(lanes || s === 0 ? S.splat32 : S.load, 2);
      f.set(local);
      cache.set(k, local);
      return local;
    };
    // Address of the output, then its value.
    f.get(ptr[0]);
    f.get(lanes ? j : jb);
    if (lanes) f.i32(inner[0] * 4).op(0x6c);
    f.op(0x6a);
    body(load);
    if (lanes) f.vmem(90, 2, 0).op(0); // v128.store32_lane, lane 0
    else f.vmem(S.store, 4);
  };
  const vectorLoop = (from: () => void, to: () => void) =>
    f.for(j, from, to, 4, () => {
      f.get(j).i32(2).op(0x74).set(jb);
      emitBody(false);
    });
  const laneLoop = (from: () => void, to: () => void) =>
    f.for(j, from, to, 1, () => emitBody(true));
  const split = (count: number, unit: number) => {
    // [lo, hi) = this thread's share of `count` units, in elements.
    f.get(tid).i32(count).op(0x6c).get(nt).op(0x6d).i32(unit).op(0x6c).set(lo);
    f.get(tid).i32(1).op(0x6a).i32(count).op(0x6c).get(nt).op(0x6d).i32(unit).op(0x6c).set(hi);
  };
  const row = () => {
    const v4 = vectorized ? n - (n % 4) : 0;
    if (v4 > 0) vectorLoop(() => f.i32(0), () => f.i32(v4));
    if (v4 < n) laneLoop(() => f.i32(v4), () => f.i32(n));
  };

  if (rank === 1) {
    rowPointers();
    if (vectorized) {
      const v = Math.floor(n / 4);
      split(v, 4);
      vectorLoop(() => f.get(lo), () => f.get(hi));
      if (v * 4 < n) {
        f.get(tid).get(nt).i32(1).op(0x6b).op(0x46).if();
        laneLoop(() => f.i32(v * 4), () => f.i32(n));
        f.end();
      }
    } else {
      split(n, 1);
      laneLoop(() => f.get(lo), () => f.get(hi));
    }
    return;
  }
  split(dims[0], 1);
  const nest = (d: number) => {
    if (d === rank - 1) {
      rowPointers();
      row();
      return;
    }
    const from = d === 0 ? () => f.get(lo) : () => f.i32(0);
    const to = d === 0 ? () => f.get(hi) : () => f.i32(dims[d]);
    f.for(idx[d], from, to, 1, () => nest(d + 1));
  };
  nest(0);
}
