/**
 * The interop check's results: each comparison of ours against PEFT's is one row of the table
 * printed at the end, with the largest errors and a pass or fail against {@link TOL}.
 *
 * @module
 */
import { readSafetensors } from "../io/safetensors.ts";

/** Merged weights: |a − b| ≤ TOL · max(1, |b|). Logits use the same bound. */
export const TOL = 1e-6;

/** One row of the result table. */
export interface Check {
  readonly name: string;
  readonly ok: boolean;
  /** Largest |a − b| (or another measure; see `detail`). */
  readonly maxAbs?: number | null;
  /** Largest |a − b| / max(1, |b|). */
  readonly maxScaled?: number | null;
  /** Largest |a − b| / max|b| over one tensor (the error relative to the tensor's scale). */
  readonly maxRelTensor?: number | null;
  readonly detail?: string;
}

/**
 * Compares two arrays element by element: the largest |a − b|, the largest
 * |a − b| / max(1, |b|), the largest |a − b| / max|b| and whether they are
 * bit-identical (as f32 when `f32`).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { compare } from "./_checks.ts";
 * deepStrictEqual(compare([1, 4], [1, 2]), {
 *   maxAbs: 2,
 *   maxScaled: 1,
 *   maxRelTensor: 1,
 *   identical: false,
 * });
 * ```
 */
export function compare(a: ArrayLike<number>, b: ArrayLike<number>, f32 = true) {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let maxAbs = 0, maxScaled = 0, scale = 0, identical = true;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxAbs)) maxAbs = d;
    const s = d / Math.max(1, Math.abs(b[i]));
    if (!(s <= maxScaled)) maxScaled = s;
    scale = Math.max(scale, Math.abs(b[i]));
    if (!Object.is(f32 ? Math.fround(a[i]) : a[i], f32 ? Math.fround(b[i]) : b[i])) {
      identical = false;
    }
  }
  return { maxAbs, maxScaled, maxRelTensor: scale > 0 ? maxAbs / scale : maxAbs, identical };
}

/**
 * Two merged model files: the same names, dtypes and shapes; `targets`
 * within TOL, every other tensor bit for bit identical.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { writeSafetensors } from "../io/safetensors.ts";
 * import { compareMerged } from "./_checks.ts";
 * const dir = await Deno.makeTempDir();
 * const file = async (name: string, w: number[]) => {
 *   const tensors = {
 *     w: { dtype: "F32" as const, shape: [2], data: new Float32Array(w) },
 *     b: { dtype: "F32" as const, shape: [1], data: new Float32Array([5]) },
 *   };
 *   await writeSafetensors(`${dir}/${name}`, tensors);
 *   return `${dir}/${name}`;
 * };
 * const [base, ours, theirs] = [await file("base", [0, 0]), await file("a", [1, 2]), await file("b", [1, 2])];
 * const check = await compareMerged(base, "merge", ours, theirs, ["w"]);
 * strictEqual(check.ok, true);
 * strictEqual(check.detail, "1 merged (max |ΔW| 2.0), 1 others bit-identical");
 * ```
 */
export async function compareMerged(
  basePath: string,
  name: string,
  ours: string,
  theirs: string,
  targets: readonly string[],
): Promise<Check> {
  const a = await readSafetensors(ours), b = await readSafetensors(theirs);
  const base = (await readSafetensors(basePath)).tensors;
  const problems: string[] = [];
  let maxDelta = 0;
  const namesA = [...a.tensors.keys()].sort(), namesB = [...b.tensors.keys()].sort();
  if (namesA.join() !== namesB.join()) {
    problems.push(`names differ: [${namesA}] vs [${namesB}]`);
  }
  const worst = { maxAbs: 0, maxScaled: 0, maxRelTensor: 0 };
  let identical = 0;
  for (const [key, tb] of b.tensors) {
    const ta = a.tensors.get(key);
    if (ta === undefined) continue;
    if (ta.dtype !== tb.dtype || ta.shape.join() !== tb.shape.join()) {
      problems.push(`${key}: ${ta.dtype}[${ta.shape}] vs ${tb.dtype}[${tb.shape}]`);
      continue;
    }
    const c = compare(ta.data as Float32Array, tb.data as Float32Array);
    if (targets.includes(key)) {
      worst.maxAbs = Math.max(worst.maxAbs, c.maxAbs);
      maxDelta = Math.max(
        maxDelta,
        compare(tb.data as Float32Array, base.get(key)!.data as Float32Array).maxAbs,
      );
      worst.maxScaled = Math.max(worst.maxScaled, c.maxScaled);
      worst.maxRelTensor = Math.max(worst.maxRelTensor, c.maxRelTensor);
      if (!(c.maxScaled <= TOL)) problems.push(`${key}: scaled error ${c.maxScaled}`);
    } else if (!c.identical) {
      problems.push(`${key} (not a target) differs: max |Δ| ${c.maxAbs}`);
    } else identical++;
  }
  const missing = targets.filter((t) => !a.tensors.has(t));
  if (missing.length > 0) problems.push(`targets missing: ${missing}`);
  return {
    name,
    ok: problems.length === 0,
    ...worst,
    detail: problems.length > 0
      ? problems.join("; ")
      : `${targets.length} merged (max |ΔW| ${
        maxDelta.toPrecision(2)
      }), ${identical} others bit-identical`,
  };
}

/**
 * Our logits against theirs, within {@link TOL}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { compareLogits } from "./_checks.ts";
 * strictEqual(compareLogits("forward", [1, 2], [1, 2 + 1e-9]).ok, true);
 * strictEqual(compareLogits("forward", [1, 2], [1, 2.5]).ok, false);
 * ```
 */
export function compareLogits(
  name: string,
  ours: ArrayLike<number>,
  theirs: ArrayLike<number>,
): Check {
  const c = compare(ours, theirs, false);
  return {
    name,
    ok: c.maxScaled <= TOL,
    maxAbs: c.maxAbs,
    maxScaled: c.maxScaled,
    maxRelTensor: c.maxRelTensor,
    detail: `${ours.length} logits`,
  };
}

function fmt(v: number | null | undefined): string {
  if (v === undefined || v === null) return "-";
  return v === 0 ? "0" : v.toExponential(2);
}

/**
 * The result table's lines: the versions compared, one row per check, the notes and the count
 * of checks passed.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { tableLines } from "./_checks.ts";
 * const lines = tableLines([{ name: "a", ok: true, maxAbs: 0.5 }, { name: "b", ok: false }], [], {});
 * strictEqual(lines[2], "a  PASS      5.00e-1          -          -  ");
 * strictEqual(lines.at(-1), "\n1 of 2 checks passed");
 * ```
 */
export function tableLines(
  checks: readonly Check[],
  notes: readonly string[],
  versions: Record<string, string>,
): string[] {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = [
    `\nwgrad ⇄ PEFT interop (torch ${versions.torch}, peft ${versions.peft}, ` +
    `safetensors ${versions.safetensors}, deno ${Deno.version.deno})\n`,
    `${"check".padEnd(width)}  result  ${"max|Δ|".padStart(9)}  ${"scaled".padStart(9)}  ${
      "Δ/max|b|".padStart(9)
    }  detail`,
  ];
  for (const c of checks) {
    lines.push(
      `${c.name.padEnd(width)}  ${c.ok ? "PASS  " : "FAIL  "}  ${fmt(c.maxAbs).padStart(9)}  ${
        fmt(c.maxScaled).padStart(9)
      }  ${fmt(c.maxRelTensor).padStart(9)}  ${c.detail ?? ""}`,
    );
  }
  if (notes.length > 0) {
    lines.push("\nnotes:");
    for (const n of notes) lines.push(`  - ${n}`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(
    `\n${failed === 0 ? "all" : checks.length - failed + " of"} ${checks.length} checks passed`,
  );
  return lines;
}
