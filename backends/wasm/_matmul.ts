/**
 * Batched f32 matmul `C[b] = A[b]·B[b]` with strided operands (transposes and
 * slices are read in place). GotoBLAS-style: for each block of KC rows of B,
 * B is packed into 8-column panels (zero-padded), then an MR×8 micro-kernel
 * keeps MR×2 f32x4 accumulators in registers while it walks k, reading A as
 * broadcast scalars. Rows past M reuse row M−1 and are not stored. Threads
 * split the (batch, row-block) pairs; each packs the B it needs itself.
 *
 * @module
 */
import { F32, type Fn, I32, V128 } from "./_encoder.ts";
import { S } from "./_math.ts";

/** A strided matrix operand: byte address and element strides (batch, row, column). */
export interface MatOperand {
  readonly addr: number;
  readonly batch: number;
  readonly row: number;
  readonly col: number;
}

/** Sizes and operands of one matmul step. */
export interface MatmulSpec {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly a: MatOperand;
  readonly b: MatOperand;
  /** Byte address of the contiguous output `[batch, m, n]`. */
  readonly c: number;
  /** Byte address of thread 0's packing scratch; thread t uses `scratch + t·scratchBytes`. */
  readonly scratch: number;
}

/** Rows per micro-kernel tile and k rows per packed block. */
export const MR = 4, KC = 256, ROW_BLOCKS_PER_MC = 16;

/**
 * Bytes of packing scratch one thread needs for a matmul with `k` and `n`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { scratchBytes } from "./_matmul.ts";
 * strictEqual(scratchBytes(300, 20), 24576); // 256 · 3 panels · 32 bytes
 * ```
 */
export function scratchBytes(k: number, n: number): number {
  return Math.min(k, KC) * Math.ceil(n / 8) * 32;
}

/**
 * Emits the matmul into kernel `f` (`(thread, threads)`); `fma` uses
 * relaxed-SIMD's fused multiply-add.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn, I32 } from "./_encoder.ts";
 * import { emitMatmul } from "./_matmul.ts";
 * const f = new Fn([I32, I32]);
 * const op = { addr: 0, batch: 0, row: 2, col: 1 };
 * emitMatmul(f, { batch: 1, m: 2, n: 2, k: 2, a: op, b: op, c: 64, scratch: 128 }, 1 << 16, false);
 * strictEqual(f.code.length > 0, true);
 * ```
 */
export function emitMatmul(f: Fn, spec: MatmulSpec, perThread: number, fma: boolean): void {
  const { batch, m, n, k, a, b } = spec;
  const rowBlocks = Math.ceil(m / MR);
  const panels = Math.ceil(n / 8);
  const fullPanels = Math.floor(n / 8);
  const units = batch * rowBlocks;
  const [lo, hi, bi, rlo, rhi, pc, kc, ic, icEnd, jp, rb, kk, pb, scratch, t] = f.localsOf(I32, 15);
  const pa = f.localsOf(I32, MR);
  const acc = f.localsOf(V128, 2 * MR);
  const [b0, b1] = f.localsOf(V128, 2);

  f.get(0).i32(perThread).op(0x6c).i32(spec.scratch).op(0x6a).set(scratch);
  f.get(0).i32(units).op(0x6c).get(1).op(0x6d).set(lo);
  f.get(0).i32(1).op(0x6a).i32(units).op(0x6c).get(1).op(0x6d).set(hi);
  f.block().get(lo).get(hi).op(0x4e).brIf(0); // nothing for this thread
  f.for(
    bi,
    () => f.get(lo).i32(rowBlocks).op(0x6d),
    () => {
      f.get(hi).i32(1).op(0x6b).i32(rowBlocks).op(0x6d).i32(1).op(0x6a);
    },
    1,
    () => {
      // This thread's row blocks of batch bi: [rlo, rhi).
      f.get(lo).get(bi).i32(rowBlocks).op(0x6c).op(0x6b).set(rlo);
      f.i32(0).get(rlo).get(rlo).i32(0).op(0x48).op(0x1b).set(rlo); // max(rlo, 0)
      f.get(hi).get(bi).i32(rowBlocks).op(0x6c).op(0x6b).set(rhi);
      f.get(rhi).i32(rowBlocks).get(rhi).i32(rowBlocks).op(0x48).op(0x1b).set(rhi); // min
      f.for(pc, () => f.i32(0), () => f.i32(k), KC, () => {
        f.i32(k).get(pc).op(0x6b).set(kc);
        f.get(kc).i32(KC).get(kc).i32(KC).op(0x48).op(0x1b).set(kc);
        packB(f, spec, { bi, pc, kc, scratch, jp, kk, t, fullPanels, panels, b0 });
        f.for(ic, () => f.get(rlo), () => f.get(rhi), ROW_BLOCKS_PER_MC, () => {
          f.get(ic).i32(ROW_BLOCKS_PER_MC).op(0x6a).set(icEnd);
          f.get(icEnd).get(rhi).get(icEnd).get(rhi).op(0x48).op(0x1b).set(icEnd);
          f.for(jp, () => f.i32(0), () => f.i32(panels), 1, () => {
            f.for(rb, () => f.get(ic), () => f.get(icEnd), 1, () => {
              // Row pointers (rows past m read row m−1).
              for (let r = 0; r < MR; r++) {
                f.get(rb).i32(MR).op(0x6c).i32(r).op(0x6a).set(t);
                f.get(t).i32(m - 1).get(t).i32(m - 1).op(0x48).op(0x1b);
                f.i32(a.row * 4).op(0x6c);
                f.get(bi).i32(a.batch * 4).op(0x6c).add();
                f.get(pc).i32(a.col * 4).op(0x6c).add().i32(a.addr).add().set(pa[r]);
              }
              f.get(jp).get(kc).mul().i32(32).mul().get(scratch).add().set(pb);
              for (const x of acc) f.v128f(0).set(x);
              f.for(kk, () => f.i32(0), () => f.get(kc), 1, () => {
                f.get(pb).vmem(S.load, 4, 0).set(b0);
                f.get(pb).vmem(S.load, 4, 16).set(b1);
                for (let r = 0; r < MR; r++) {
                  for (const [h, bv] of [[0, b0], [1, b1]]) {
                    if (fma) {
                      f.get(pa[r]).vmem(S.splat32, 2).get(bv).get(acc[2 * r + h]).simd(S.madd);
                    } else {
                      f.get(acc[2 * r + h]).get(pa[r]).vmem(S.splat32, 2).get(bv).simd(S.fmul);
                      f.simd(S.fadd);
                    }
                    f.set(acc[2 * r + h]);
                  }
                  f.get(pa[r]).i32(a.col * 4).add().set(pa[r]);
                }
                f.get(pb).i32(32).add().set(pb);
              });
              storeTile(f, spec, { bi, rb, jp, pc, t, acc, fullPanels });
            });
          });
        });
      });
    },
  );
  f.end();
  void b;
}

interface PackLocals {
  bi: number;
  pc: number;
  kc: number;
  scratch: number;
  jp: number;
  kk: number;
  t: number;
  fullPanels: number;
  panels: number;
  b0: number;
}

/** Packs rows [pc, pc+kc) of B[bi] into `scratch` as panels of 8 columns, k-major. */
function packB(f: Fn, spec: MatmulSpec, l: PackLocals): void {
  const { b, n } = spec;
  const src = () => { // address of B[bi][pc + kk][jp·8]
    f.get(l.bi).i32(b.batch * 4).op(0x6c).get(l.pc).get(l.kk).op(0x6a).i32(b.row * 4).op(0x6c);
    f.op(0x6a).get(l.jp).i32(8 * b.col * 4).op(0x6c).op(0x6a).i32(b.addr).op(0x6a);
  };
  const dst = () => { // address of panel jp, row kk
    f.get(l.jp).get(l.kc).op(0x6c).get(l.kk).op(0x6a).i32(32).op(0x6c).get(l.scratch).op(0x6a);
  };
  f.for(l.jp, () => f.i32(0), () => f.i32(l.panels), 1, () => {
    f.for(l.kk, () => f.i32(0), () => f.get(l.kc), 1, () => {
      src();
      f.set(l.t);
      // Full panel with contiguous columns: two vector copies; otherwise element by element.
      f.get(l.jp).i32(l.fullPanels).op(0x48).if();
      for (let c = 0; c < 8; c++) {
        if (b.col === 1 && c % 4 === 0) {
          dst();
          f.get(l.t).vmem(S.load, 2, c * 4).vmem(S.store, 2, c * 4);
        } else if (b.col !== 1) {
          dst();
          f.get(l.t).mem(0x2a, 2, c * b.col * 4).mem(0x38, 2, c * 4);
        }
      }
      f.else();
      for (let c = 0; c < 8; c++) {
        dst();
        if (c < n % 8) f.get(l.t).mem(0x2a, 2, c * b.col * 4);
        else f.f32(0);
        f.mem(0x38, 2, c * 4);
      }
      f.end();
    });
  });
}

interface StoreLocals {
  bi: number;
  rb: number;
  jp: number;
  pc: number;
  t: number;
  acc: number[];
  fullPanels: number;
}

/** Stores (first k block) or adds the tile into C, skipping rows ≥ m and columns ≥ n. */
function storeTile(f: Fn, spec: MatmulSpec, l: StoreLocals): void {
  const { m, n } = spec;
  for (let r = 0; r < MR; r++) {
    // t = row index; skip rows past m.
    f.get(l.rb).i32(MR).op(0x6c).i32(r).op(0x6a).tee(l.t).i32(m).op(0x48).if();
    f.get(l.bi).i32(m).op(0x6c).get(l.t).op(0x6a).i32(n).op(0x6c).get(l.jp).i32(8).op(0x6c);
    f.op(0x6a).i32(4).op(0x6c).i32(spec.c).op(0x6a).set(l.t); // t = address of C[bi][row][jp·8]
    const cols = (count: number) => {
      for (let c = 0; c < count; c++) {
        const v = l.acc[2 * r + (c >> 2)];
        f.get(l.t).get(l.pc).ifResult(F32); // not the first k block: add to what is there
        f.get(l.t).mem(0x2a, 2, c * 4).get(v).simd(S.f32extract, c & 3).op(0x92);
        f.else().get(v).simd(S.f32extract, c & 3).end();
        f.mem(0x38, 2, c * 4);
      }
    };
    f.get(l.jp).i32(l.fullPanels).op(0x48).if();
    for (const h of [0, 1]) {
      f.get(l.t).get(l.pc).ifResult(V128);
      f.get(l.t).vmem(S.load, 2, h * 16).get(l.acc[2 * r + h]).simd(S.fadd);
      f.else().get(l.acc[2 * r + h]).end();
      f.vmem(S.store, 2, h * 16);
    }
    f.else();
    cols(n % 8);
    f.end();
    f.end();
  }
}
