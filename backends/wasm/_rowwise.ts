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
  const { rows, cols, op } = spec;
  const [row, j, lo, hi, t] = f.localsOf(I32, 5);
  // Operands 0 (and 2 for the backward ops that take a cotangent row) are [rows, cols];
  // crossEntropy's labels (1) and cotangent (2) are one value per row.
  const perRow = op.startsWith("crossEntropy") ? new Set([1, 2]) : new Set<number>();
  const ptr = spec.operands.map(() => f.local(I32));
  const outPtr = f.local(I32);
  const v4 = cols - (cols % 4);
  const x = (lanes: boolean) => (k: number) => {
    f.get(ptr[k]);
    if (!perRow.has(k)) f.get(j).i32(4).mul().add();
    f.vmem(lanes || perRow.has(k) ? S.splat32 : S.load, 2);
  };
  const reduce = (kind: "sum" | "max", e: Expr): number => {
    const acc = f.local(V128);
    if (kind === "sum") f.v128f(0);
    else f.v128f(-Infinity);
    f.set(acc);
    const step = (lanes: boolean) => {
      f.get(acc);
      e(x(lanes));
      if (lanes && kind === "sum") f.v128i(-1, 0, 0, 0).simd(S.and); // count the element once
      f.simd(kind === "sum" ? S.fadd : PMAX).set(acc);
    };
    f.for(j, () => f.i32(0), () => f.i32(v4), 4, () => step(false));
    f.for(j, () => f.i32(v4), () => f.i32(cols), 1, () => step(true));
    f.get(acc);
    for (let l = 1; l < 4; l++) {
      f.get(acc).simd(S.f32extract, l).simd(S.f32splat).simd(kind === "sum" ? S.fadd : PMAX);
    }
    f.simd(S.f32extract, 0).simd(S.f32splat).set(acc);
    return acc;
  };
  const store = (e: Expr) => {
    const step = (lanes: boolean) => {
      f.get(outPtr).get(j).i32(4).mul().add();
      e(x(lanes));
      if (lanes) f.vmem(90, 2, 0).op(0);
      else f.vmem(S.store, 2);
    };
    f.for(j, () => f.i32(0), () => f.i32(v4), 4, () => step(false));
    f.for(j, () => f.i32(v4), () => f.i32(cols), 1, () => step(true));
  };
  const local = (emit: () => void) => {
    const l = f.local(V128);
    emit();
    f.set(l);
    return l;
  };
  const exp = () => f.call(h.index("exp"));
  const tmp = f.local(V128);
  const n = Math.max(cols, 1);

  f.get(0).i32(rows).mul().get(1).op(0x6d).set(lo);
  f.get(0).i32(1).add().i32(rows).mul().get(1).op(0x6d).set(hi);
  f.for(row, () => f.get(lo), () => f.get(hi), 1, () => {
    spec.operands.forEach((addr, k) => {
      f.get(row).i32((perRow.has(k) ? 1 : cols) * 4).mul().i32(addr).add().set(ptr[k]);
    });
    const outCols = op === "crossEntropy" ? 1 : cols;
    f.get(row).i32(outCols * 4).mul().i32(spec.out).add().set(outPtr);
    const lse = () => {
      const m = reduce("max", (v) => v(0));
      const s = reduce("sum", (v) => {
        v(0);
        f.get(m).simd(S.fsub);
        exp();
      });
      return local(() => f.get(s).call(h.index("log")).get(m).simd(S.fadd));
    };
    switch (op) {
      case "softmax": {
        const m = reduce("max", (v) => v(0));
        const s = reduce("sum", (v) => {
          v(0);
          f.get(m).simd(S.fsub);
          exp();
        });
        const inv = local(() => f.v128f(1).get(s).simd(S.fdiv));
        store((v) => {
          v(0);
          f.get(m).simd(S.fsub);
          exp();
          f.get(inv).simd(S.fmul);
        });
        break;
      }
      case "softmaxBackward": {
        const d = reduce("sum", (v) => (v(0), v(1), f.simd(S.fmul)));
        store((v) => (v(0), v(1), f.get(d).simd(S.fsub).simd(S.fmul)));
        break;
      }
      case "logSoftmax": {
        const l = lse();
        store((v) => (v(0), f.get(l).simd(S.fsub)));
        break;
      }
      case "logSoftmaxBackward": {
        const s = reduce("sum", (v) => v(1));
        store((v) => (v(1), v(0), exp(), f.get(s).simd(S.fmul).simd(S.fsub)));
        break;
      }
      case "layerNorm":
      case "layerNormBackward": {
        const sum = reduce("sum", (v) => v(0));
        const mean = local(() => f.get(sum).v128f(n).simd(S.fdiv));
        const centred = (v: (k: number) => void) => (v(0), f.get(mean).simd(S.fsub));
        const sq = reduce("sum", (v) => (centred(v), f.tee(tmp).get(tmp).simd(S.fmul)));
        const rstd = local(() => {
          f.v128f(1).get(sq).v128f(n).simd(S.fdiv).v128f(spec.eps ?? 0).simd(S.fadd);
          f.simd(S.fsqrt).simd(S.fdiv);
        });
        if (op === "layerNorm") {
          store((v) => (centred(v), f.get(rstd).simd(S.fmul)));
          break;
        }
        const gSum = reduce("sum", (v) => v(1));
        const gyS = reduce("sum", (v) => (v(1), centred(v), f.simd(S.fmul).get(rstd).simd(S.fmul)));
        const gMean = local(() => f.get(gSum).v128f(n).simd(S.fdiv));
        const gyMean = local(() => f.get(gyS).v128f(n).simd(S.fdiv));
        store((v) => {
          v(1);
          f.get(gMean).simd(S.fsub);
          centred(v);
          f.get(rstd).simd(S.fmul).get(gyMean).simd(S.fmul).simd(S.fsub);
          f.get(rstd).simd(S.fmul);
        });
        break;
      }
      case "crossEntropy":
      case "crossEntropyBackward": {
        // Ignored rows (label < 0) give 0.
        f.get(ptr[1]).mem(0x28, 2).set(t);
        f.get(t).i32(0).op(0x48).if();
        if (op === "crossEntropy") f.get(outPtr).f32(0).mem(0x38, 2);
        else store(() => void f.v128f(0));
        f.else();
        const l = lse();
        if (op === "crossEntropy") {
          f.get(outPtr).get(l).simd(S.f32extract, 0);
          f.get(ptr[0]).get(t).i32(4).mul().add().mem(0x2a, 2).op(0x93).mem(0x38, 2);
        } else {
          store((v) => (v(0), f.get(l).simd(S.fsub), exp(), v(2), f.simd(S.fmul)));
          // out[label] -= g
          f.get(outPtr).get(t).i32(4).mul().add().tee(t);
          f.get(t).mem(0x2a, 2).get(ptr[2]).mem(0x2a, 2).op(0x93).mem(0x38, 2);
        }
        f.end();
        break;
      }
      default:
        throw new Error(`wasm: no rowwise lowering for ${op}`);
    }
  });
}
