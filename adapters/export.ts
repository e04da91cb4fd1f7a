/**
 * Compile-and-merge export: fold an adapter into a base model file and write
 * the merged model with the base's names. Targeted weights are computed by
 * the merge graph (on the GPU when a GPU runner is given); every other tensor
 * — and the base metadata — is copied bit for bit. `modules_to_save` weights
 * (a fine-tuned head) replace the base copies, as PEFT's `merge_and_unload`
 * does.
 *
 * @module
 */
import {
  type LoadedTensor,
  openSafetensors,
  type TensorInput,
  writeSafetensors,
} from "../io/safetensors.ts";
import { type Adapter, merge, type MergeRunner } from "./merge.ts";
import { lambdaBName, lambdaDName } from "./vera.ts";
import { loraAName, loraBName } from "./lora.ts";

/** The tensors an adapter needs for merging, keyed by graph name. */
export function adapterTensorNames(adapter: Adapter): string[] {
  const names = adapter.targets.flatMap((t) =>
    adapter.kind === "vera"
      ? [lambdaBName(t.module), lambdaDName(t.module)]
      : [loraAName(t.module), loraBName(t.module)]
  );
  if (adapter.kind === "vera" && adapter.projections === "stored") names.push("vera_A", "vera_B");
  return names;
}

/** Options of {@link exportMerged}. */
export interface ExportMergedOptions {
  /** The base model safetensors file. */
  readonly base: string;
  /** Where to write the merged model (atomically). */
  readonly out: string;
  /** The adapter (checked by `resolveAdapter` against this base). */
  readonly adapter: Adapter;
  /** Its tensors (lambdas or LoRA matrices, stored projections, saved modules), by graph name. */
  readonly adapterParams: Readonly<Record<string, Float32Array>>;
  /** Runs the merge graph (default: the CPU reference in f32). */
  readonly runner?: MergeRunner;
  /** Shapes of the adapter's saved-module tensors the base lacks (default: one dimension). */
  readonly savedShapes?: Readonly<Record<string, readonly number[]>>;
  /**
   * The merged file's metadata from the base's and the names of saved-module tensors the base
   * did not have (e.g. to record a new classification head); default: the base's, unchanged.
   */
  readonly metadata?: (
    base: Readonly<Record<string, string>>,
    added: readonly string[],
    shapes: Readonly<Record<string, readonly number[]>>,
  ) => Record<string, string>;
}

/** `[rows, cols]` row-major → `[cols, rows]`. */
function transposed(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  }
  return out;
}

/**
 * Merges an adapter into a base model file and writes the merged model: targeted weights get ΔW
 * (ΔWᵀ where `fanInFanOut` says the base stores them `[in, out]`), `modules_to_save` tensors
 * replace the base's or are added (a new head), every other tensor is copied bit for bit.
 * Returns the names merged, replaced, added and copied.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { exportMerged } from "./export.ts";
 * // See tests/adapters/export_test.ts for a full run.
 * strictEqual(typeof exportMerged, "function");
 * ```
 */
export async function exportMerged(
  options: ExportMergedOptions,
): Promise<{ merged: string[]; replaced: string[]; added: string[]; copied: string[] }> {
  const { adapter } = options;
  const flip = adapter.config.fanInFanOut;
  const reader = await openSafetensors(options.base);
  try {
    const infos = new Map(reader.header.tensors.map((t) => [t.name, t]));
    for (const t of adapter.targets) {
      const info = infos.get(t.weight);
      if (info === undefined) throw new Error(`merge: the base model has no tensor ${t.weight}`);
      const stored = flip ? [t.inFeatures, t.outFeatures] : [t.outFeatures, t.inFeatures];
      if (info.shape.join() !== stored.join()) {
        throw new Error(
          `merge: ${t.weight} is [${info.shape}] in the base model, the adapter needs [${stored}]` +
            (flip ? " (fan_in_fan_out: stored [in, out])" : ""),
        );
      }
    }
    const adapterNames = new Set(adapterTensorNames(adapter));
    const params: Record<string, Float32Array> = {};
    for (const name of adapterNames) {
      const v = options.adapterParams[name];
      if (v === undefined) throw new Error(`merge: the adapter has no tensor ${name}`);
      params[name] = v;
    }
    for (const t of adapter.targets) {
      const w = toF32(await reader.read(t.weight), t.weight);
      params[t.weight] = flip ? transposed(w, t.inFeatures, t.outFeatures) : w;
    }
    const merged = await merge(adapter, params, { runner: options.runner, safe: true });
    const targets = new Map(adapter.targets.map((t) => [t.weight, t]));
    const saved = Object.keys(options.adapterParams).filter((n) => !adapterNames.has(n));
    const out: Record<string, TensorInput> = {};
    const result = {
      merged: [] as string[],
      replaced: [] as string[],
      added: [] as string[],
      copied: [] as string[],
    };
    for (const info of reader.header.tensors) {
      const target = targets.get(info.name);
      if (target !== undefined) {
        const w = merged[info.name];
        const data = flip ? transposed(w, target.outFeatures, target.inFeatures) : w;
        out[info.name] = { dtype: info.dtype, shape: info.shape, data };
        result.merged.push(info.name);
      } else if (saved.includes(info.name)) {
        out[info.name] = {
          dtype: info.dtype,
          shape: info.shape,
          data: options.adapterParams[info.name],
        };
        result.replaced.push(info.name);
      } else {
        const t = await reader.read(info.name);
        out[info.name] = { dtype: t.dtype, shape: t.shape, data: t.data };
        result.copied.push(info.name);
      }
    }
    const shapes: Record<string, readonly number[]> = {};
    for (const name of saved.filter((n) => !infos.has(n)).sort()) {
      const data = options.adapterParams[name];
      shapes[name] = options.savedShapes?.[name] ?? [data.length];
      out[name] = { dtype: "F32", shape: [...shapes[name]], data };
      result.added.push(name);
    }
    const metadata = options.metadata?.(reader.header.metadata, result.added, shapes) ??
      reader.header.metadata;
    await writeSafetensors(options.out, out, metadata);
    return result;
  } finally {
    reader.close();
  }
}

function toF32(t: LoadedTensor, name: string): Float32Array {
  if (!(t.data instanceof Float32Array)) {
    throw new Error(`merge: ${name} is ${t.dtype}, expected a float tensor`);
  }
  return t.data;
}
