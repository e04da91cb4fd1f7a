// Comparing a backend's outputs with the float64 reference: the worst
// relative error, normalised by max(1, |ref|), with NaN counted as infinite.
import assert from "node:assert/strict";
import type { CpuTensor } from "../../compiler/ir.ts";

/** The worst of |got − want| / max(1, |want|) over the elements (Infinity for a NaN). */
export function worstRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
  }
  return worst;
}

/**
 * Reads every output `names` from a run and returns one line per output
 * whose worst relative error against `reference` exceeds `tolerance`.
 */
export async function referenceFailures(
  run: { read(name: string): Promise<ArrayLike<number>> },
  reference: Record<string, CpuTensor>,
  names: readonly string[],
  tolerance = 1e-4,
): Promise<string[]> {
  const failures: string[] = [];
  for (const name of names) {
    const got = await run.read(name);
    const want = reference[name].data;
    assert.equal(got.length, want.length, `${name}: length`);
    const worst = worstRelativeError(got, want);
    if (worst > tolerance) {
      const head = (a: ArrayLike<number>) => Array.from(a).slice(0, 4).join(",");
      failures.push(`${name}: relative error ${worst} (got ${head(got)}, want ${head(want)})`);
    }
  }
  return failures;
}
