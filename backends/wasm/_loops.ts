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

/** The kernel's params: this thread's number and the thread count. */
const THREAD = 0;
const THREADS = 1;

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
  const nest = new LoopNest(f, shape, [out, ...inputs], body);
  if (nest.dims.length === 1) nest.emitFlat();
  else nest.emitNested();
}

/**
 * An elementwise kernel's loop nest under construction: the collapsed shape,
 * the locals every loop shares (declared up front) and the loops built from
 * them. Operand 0 is the output, operand k + 1 input k.
 */
class LoopNest {
  readonly dims: readonly number[];
  /** Per operand, its strides (in elements) over `dims`. */
  readonly #strides: readonly (readonly number[])[];
  /** Per operand, its stride along the innermost dimension. */
  readonly #inner: readonly number[];
  /** Whether the innermost loop may run four elements per iteration. */
  readonly #vectorized: boolean;
  /** Per operand, its address at the start of the current row. */
  readonly #ptr: readonly number[];
  /** The index of each outer dimension. */
  readonly #idx: readonly number[];
  /** The innermost index, in elements. */
  readonly #j: number;
  /** `j` in bytes, for the vector loop (where every stride is 0 or 1). */
  readonly #jBytes: number;
  /** This thread's share [lo, hi) of the outermost loop. */
  readonly #lo: number;
  readonly #hi: number;

  constructor(
    readonly f: Fn,
    shape: readonly number[],
    readonly operands: readonly Operand[],
    readonly body: (load: Load) => void,
  ) {
    const { dims, strides } = collapse(shape, operands);
    this.dims = dims;
    this.#strides = strides;
    this.#inner = strides.map((s) => s[dims.length - 1]);
    const [outStride, ...inputStrides] = this.#inner;
    this.#vectorized = outStride === 1 && inputStrides.every((s) => s === 0 || s === 1);
    this.#ptr = operands.map(() => f.local(I32));
    this.#idx = dims.slice(0, -1).map(() => f.local(I32));
    [this.#j, this.#jBytes, this.#lo, this.#hi] = f.localsOf(I32, 4);
  }

  /** Rank 1: threads split the vectors (the last thread also takes the tail), or the elements. */
  emitFlat(): void {
    const { f } = this;
    const n = this.dims[0];
    this.#rowPointers();
    if (!this.#vectorized) {
      this.#threadShare(n, 1);
      this.#laneLoop(() => f.get(this.#lo), () => f.get(this.#hi));
      return;
    }
    const vectors = Math.floor(n / 4);
    this.#threadShare(vectors, 4);
    this.#vectorLoop(() => f.get(this.#lo), () => f.get(this.#hi));
    if (vectors * 4 < n) {
      f.get(THREAD).get(THREADS).i32(1).op(0x6b).op(0x46).if(); // thread === threads - 1
      this.#laneLoop(() => f.i32(vectors * 4), () => f.i32(n));
      f.end();
    }
  }

  /** Rank > 1: threads split the outermost dimension; each row is a vector loop and a tail. */
  emitNested(): void {
    this.#threadShare(this.dims[0], 1);
    this.#nest(0);
  }

  #nest(d: number): void {
    const { f, dims } = this;
    if (d === dims.length - 1) {
      this.#rowPointers();
      this.#row();
      return;
    }
    const from = d === 0 ? () => f.get(this.#lo) : () => f.i32(0);
    const to = d === 0 ? () => f.get(this.#hi) : () => f.i32(dims[d]);
    f.for(this.#idx[d], from, to, 1, () => this.#nest(d + 1));
  }

  /** The innermost loop: four at a time where it may, then lane by lane. */
  #row(): void {
    const { f } = this;
    const n = this.dims[this.dims.length - 1];
    const v4 = this.#vectorized ? n - (n % 4) : 0;
    if (v4 > 0) this.#vectorLoop(() => f.i32(0), () => f.i32(v4));
    if (v4 < n) this.#laneLoop(() => f.i32(v4), () => f.i32(n));
  }

  /** Points each operand at the current row: addr + sum of idx[d] * stride[d] * 4. */
  #rowPointers(): void {
    const { f } = this;
    this.operands.forEach((o, k) => {
      f.i32(o.addr);
      this.#idx.forEach((x, d) => f.get(x).i32(this.#strides[k][d] * 4).op(0x6c).op(0x6a));
      f.set(this.#ptr[k]);
    });
  }

  /** Sets [lo, hi) to this thread's share of `count` units, in elements. */
  #threadShare(count: number, unit: number): void {
    const { f } = this;
    f.get(THREAD).i32(count).op(0x6c).get(THREADS).op(0x6d).i32(unit).op(0x6c).set(this.#lo);
    f.get(THREAD).i32(1).op(0x6a).i32(count).op(0x6c).get(THREADS).op(0x6d).i32(unit).op(0x6c);
    f.set(this.#hi);
  }

  #vectorLoop(from: () => void, to: () => void): void {
    const { f } = this;
    f.for(this.#j, from, to, 4, () => {
      f.get(this.#j).i32(2).op(0x74).set(this.#jBytes); // j << 2
      this.#element(false);
    });
  }

  #laneLoop(from: () => void, to: () => void): void {
    this.f.for(this.#j, from, to, 1, () => this.#element(true));
  }

  /** One iteration: the output's address, then `body`'s value, then the store. */
  #element(lanes: boolean): void {
    const { f } = this;
    f.get(this.#ptr[0]);
    f.get(lanes ? this.#j : this.#jBytes);
    if (lanes) f.i32(this.#inner[0] * 4).op(0x6c);
    f.op(0x6a);
    this.body(this.#loader(lanes));
    if (lanes) f.vmem(90, 2, 0).op(0); // v128.store32_lane, lane 0
    else f.vmem(S.store, 4);
  }

  /**
   * `load` for one emission of the body: each input is loaded into a local
   * once, however often the body asks for it (four elements, or one splat in
   * lane mode and for broadcast inputs).
   */
  #loader(lanes: boolean): Load {
    const { f } = this;
    const cache = new Map<number, number>();
    return (k) => {
      let local = cache.get(k);
      if (local !== undefined) return local;
      local = f.local(V128);
      const s = this.#inner[k + 1];
      f.get(this.#ptr[k + 1]);
      if (s !== 0 && lanes) f.get(this.#j).i32(s * 4).op(0x6c).op(0x6a);
      if (s !== 0 && !lanes) f.get(this.#jBytes).op(0x6a);
      f.vmem(lanes || s === 0 ? S.splat32 : S.load, 2);
      f.set(local);
      cache.set(k, local);
      return local;
    };
  }
}
