// The register block of a matmul kernel, unrolled: each operand's fragment
// for a group of k values (named lets, vec4 or scalar reads), and the FMAs
// that accumulate their outer product into the vec4 accumulators. Both the
// register-staged and the workgroup-staged kernels (_matmul_codegen.ts) use it.

import { type Body, type Expr, lane, load, math, vector } from "../kernel_ir/mod.ts";
import { uniformSymmetricExpr } from "../../prng/threefry_kernel.ts";
import type { RandomOperand } from "./_matmul_types.ts";

/** Where one operand's per-invocation fragment is read from. */
export interface FragmentSource {
  prefix: "a" | "b";
  /** Values per invocation along M (for A) or N (for B). */
  count: number;
  kContiguous: boolean;
  /** The array holds vec4<f32>. */
  vec4: boolean;
  /**
   * The vec4 at (lane, k + kk), for an operand with `vec4`: of a k-contiguous
   * operand, the vec4 of lane `lane` (kk = 0); of another, the vec4 of lanes
   * 4·lane..4·lane+3.
   */
  vector: (lane: number, kk: number, k: Expr) => Expr;
  /** The f32 element (lane, k + kk): a load, one lane of a vec4 load, or its Threefry value. */
  scalar: (lane: number, kk: number, k: Expr) => Expr;
}

/** Element `e` of an f32 operand: a load from its array, or its Threefry value. */
export function element(array: string, random: RandomOperand | undefined, e: Expr): Expr {
  return random !== undefined ? uniformSymmetricExpr(random, e) : load(array, e, "f32");
}

/** Emits the reads of one k group (`kks` values of k) and returns an accessor for (lane, kk). */
function fragment(body: Body, src: FragmentSource, kks: number, k: Expr, tag: string) {
  const name = `${src.prefix}${tag}`;
  if (src.vec4 && src.kContiguous && kks === 4) {
    const rows = Array.from(
      { length: src.count },
      (_, i) => body.letNamed(`${name}_${i}`, src.vector(i, 0, k)),
    );
    return { value: (i: number, kk: number) => lane(rows[i], kk), vectors: undefined };
  }
  if (src.vec4 && !src.kContiguous) {
    const groups = Array.from(
      { length: kks },
      (_, kk) =>
        Array.from(
          { length: src.count / 4 },
          (_, g) => body.letNamed(`${name}_${kk}_${g}`, src.vector(g, kk, k)),
        ),
    );
    return {
      value: (i: number, kk: number) => lane(groups[kk][i >> 2], i & 3),
      vectors: (kk: number, g: number) => groups[kk][g],
    };
  }
  const values = Array.from(
    { length: kks },
    (_, kk) =>
      Array.from(
        { length: src.count },
        (_, i) => body.letNamed(`${name}_${kk}_${i}`, src.scalar(i, kk, k)),
      ),
  );
  return { value: (i: number, kk: number) => values[kk][i], vectors: undefined };
}

/** Reads `kks` consecutive k values (starting at `k`) of both operands and accumulates them. */
export function step(
  body: Body,
  accs: readonly (readonly Expr[])[],
  a: FragmentSource,
  b: FragmentSource,
  kks: number,
  k: Expr,
  tag: string,
): void {
  const fa = fragment(body, a, kks, k, tag);
  const fb = fragment(body, b, kks, k, tag);
  const bv = (kk: number, j4: number) =>
    fb.vectors?.(kk, j4) ??
      vector("vec4f", ...[0, 1, 2, 3].map((e) => fb.value(4 * j4 + e, kk)));
  for (let kk = 0; kk < kks; kk++) {
    for (let j4 = 0; j4 < b.count / 4; j4++) {
      for (let i = 0; i < a.count; i++) {
        const acc = accs[i][j4];
        body.assign(acc, math("fma", vector("vec4f", fa.value(i, kk)), bv(kk, j4), acc));
      }
    }
  }
}
