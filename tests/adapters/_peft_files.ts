// Builders for PEFT-style adapter directories and base model files, written the way PEFT and
// transformers write them, for the merge-safety tests.
import { type TensorInput, writeSafetensors } from "../../io/safetensors.ts";
import { mulberry32 } from "../../data/random.ts";

/** Random values in [-1, 1) from a seeded generator. */
export function randomValues(n: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => 2 * next() - 1);
}

/** A base model file: name → shape, random values. Returns the stored values. */
export async function writeBase(
  path: string,
  shapes: Record<string, number[]>,
  seed = 1,
): Promise<Record<string, Float32Array>> {
  const tensors: Record<string, TensorInput> = {};
  const values: Record<string, Float32Array> = {};
  let i = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    values[name] = randomValues(shape.reduce((a, b) => a * b, 1), seed * 1000 + i++);
    tensors[name] = { dtype: "F32", shape, data: values[name] };
  }
  await writeSafetensors(path, tensors);
  return values;
}

/** A PEFT adapter directory: config and tensors under PEFT's names (`base_model.model.` + path). */
export async function writePeftDir(
  dir: string,
  config: Record<string, unknown>,
  tensors: Record<string, { shape: number[]; data?: Float32Array }>,
  seed = 7,
): Promise<Record<string, Float32Array>> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/adapter_config.json`, JSON.stringify(config));
  const out: Record<string, TensorInput> = {};
  const values: Record<string, Float32Array> = {};
  let i = 0;
  for (const [name, { shape, data }] of Object.entries(tensors)) {
    values[name] = data ?? randomValues(shape.reduce((a, b) => a * b, 1), seed * 1000 + i++);
    const key = name === "vera_A" || name === "vera_B"
      ? `base_model.${name}`
      : `base_model.model.${name}`;
    out[key] = { dtype: "F32", shape, data: values[name] };
  }
  await writeSafetensors(`${dir}/adapter_model.safetensors`, out);
  return values;
}

/** `a [n, k] @ b [k, m]` in float64. */
export function matmul64(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  n: number,
  k: number,
  m: number,
) {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * m + j];
      out[i * m + j] = s;
    }
  }
  return out;
}

/** `[rows, cols]` → `[cols, rows]`. */
export function transpose64(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/** Max |a - b| relative to max(1, |b|). */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return worst;
}
