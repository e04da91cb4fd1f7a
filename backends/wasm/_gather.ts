/**
 * Embedding rows: `gather` copies table rows by index (one `memory.copy` per
 * index, threads split the indices) and `scatterAdd` adds update rows into a
 * zeroed table (threads split the columns, so no two threads add to the same
 * element). Indices were range-checked on the host before the run.
 *
 * @module
 */
import { type Fn, I32 } from "./_encoder.ts";

/** Sizes and byte addresses of a gather or scatterAdd step. */
export interface GatherSpec {
  readonly op: "gather" | "scatterAdd";
  /** Whether rows hold f32 (added as floats) or integers. */
  readonly float: boolean;
  /** Number of indices. */
  readonly count: number;
  /** Elements per row. */
  readonly width: number;
  /** Rows of the output table (scatterAdd). */
  readonly rows: number;
  readonly source: number;
  readonly indices: number;
  readonly out: number;
}

/**
 * Emits the gather or scatterAdd into kernel `f`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn, I32 } from "./_encoder.ts";
 * import { emitGather } from "./_gather.ts";
 * const f = new Fn([I32, I32]);
 * emitGather(f, { op: "gather", float: true, count: 3, width: 4, rows: 5, source: 0, indices: 128, out: 256 });
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitGather(f: Fn, s: GatherSpec): void {
  const [i, j, lo, hi, src, dst] = f.localsOf(I32, 6);
  const row = s.width * 4;
  const share = (count: number) => {
    f.get(0).i32(count).mul().get(1).op(0x6d).set(lo);
    f.get(0).i32(1).add().i32(count).mul().get(1).op(0x6d).set(hi);
  };
  if (s.op === "gather") {
    share(s.count);
    f.for(i, () => f.get(lo), () => f.get(hi), 1, () => {
      f.get(i).i32(row).mul().i32(s.out).add(); // destination
      f.get(i).i32(4).mul().i32(s.indices).add().mem(0x28, 2).i32(row).mul().i32(s.source).add();
      f.i32(row).op(0xfc, 10, 0, 0); // memory.copy
    });
    return;
  }
  // scatterAdd: this thread's columns [lo, hi), zeroed, then every update row added in.
  share(s.width);
  f.for(i, () => f.i32(0), () => f.i32(s.rows), 1, () => {
    f.get(i).i32(row).mul().get(lo).i32(4).mul().add().i32(s.out).add();
    f.i32(0).get(hi).get(lo).op(0x6b).i32(4).mul().op(0xfc, 11, 0); // memory.fill
  });
  f.for(i, () => f.i32(0), () => f.i32(s.count), 1, () => {
    f.get(i).i32(4).mul().i32(s.indices).add().mem(0x28, 2).i32(row).mul().i32(s.out).add();
    f.set(dst);
    f.get(i).i32(row).mul().i32(s.source).add().set(src);
    f.for(j, () => f.get(lo), () => f.get(hi), 1, () => {
      f.get(dst).get(j).i32(4).mul().add();
      f.get(dst).get(j).i32(4).mul().add().mem(s.float ? 0x2a : 0x28, 2);
      f.get(src).get(j).i32(4).mul().add().mem(s.float ? 0x2a : 0x28, 2);
      f.op(s.float ? 0x92 : 0x6a).mem(s.float ? 0x38 : 0x36, 2);
    });
  });
}
