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
import { findTargets, matchesModule, weightsGraph } from "./targets.ts";
import { type Adapter, merge, type MergeRunner } from "./merge.ts";
import { lambdaBName, lambdaDName, resolveVeraConfig, type VeraAdapter } from "./vera.ts";
import { type LoraAdapter, loraAName, loraBName, resolveLoraConfig } from "./lora.ts";
import { adapterConfigFromPeft, type PeftAdapterFiles } from "./peft_import.ts";

/**
 * Rebuilds the adapter described by a PEFT directory against a model's
 * weight shapes alone (no graph needed): the targets come from the names.
 *
 * @example
 * ```ts
 * import { adapterFromPeft } from "./export.ts";
 * const files = {
 *   kind: "vera" as const,
 *   config: { peft_type: "VERA", r: 2, target_modules: ["q_proj"] },
 *   tensors: {}, shapes: { vera_A: [2, 4], vera_B: [4, 2] },
 * };
 * console.log(adapterFromPeft(files, { "attn.q_proj.weight": [4, 4] }).targets.length); // 1
 * ```
 */
export function adapterFromPeft(
  files: PeftAdapterFiles,
  weights: Readonly<Record<string, readonly number[]>>,
): Adapter {
  const graph = weightsGraph(weights);
  // Merging ignores dropout; it stays 0 as for any adapter used for inference.
  const described = adapterConfigFromPeft(files);
  const targets = findTargets(graph, described.config);
  if (described.kind === "vera") {
    const config = resolveVeraConfig({ ...described.config, dropout: 0 });
    const a = files.shapes.vera_A, b = files.shapes.vera_B;
    if (a === undefined || b === undefined) {
      throw new Error("VeRA adapter has no stored vera_A/vera_B");
    }
    const adapter: VeraAdapter = {
      kind: "vera",
      config,
      targets,
      maxIn: a[1],
      maxOut: b[0],
      projections: "stored",
    };
    for (const t of targets) {
      if (t.inFeatures > adapter.maxIn || t.outFeatures > adapter.maxOut) {
        throw new Error(
          `${t.module} [${t.outFeatures}, ${t.inFeatures}] does not fit vera_A [${a}] / vera_B [${b}]`,
        );
      }
    }
    return adapter;
  }
  const config = resolveLoraConfig({ ...described.config, dropout: 0 });
  return { kind: "lora", config, targets } satisfies LoraAdapter;
}

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
  /** The adapter. */
  readonly adapter: Adapter;
  /** Its tensors (lambdas or LoRA matrices, stored projections, saved modules), by graph name. */
  readonly adapterParams: Readonly<Record<string, Float32Array>>;
  /** Runs the merge graph (default: the CPU reference in f32). */
  readonly runner?: MergeRunner;
}

/**
 * Merges an adapter into a base model file and writes the merged model.
 * Returns the names that were merged, replaced and copied.
 *
 * @example
 * ```ts
 * import { exportMerged } from "./export.ts";
 * // See tests/adapters/export_test.ts for a full run.
 * console.log(typeof exportMerged); // "function"
 * ```
 */
export async function exportMerged(
  options: ExportMergedOptions,
): Promise<{ merged: string[]; replaced: string[]; copied: string[] }> {
  const { adapter } = options;
  const reader = await openSafetensors(options.base);
  try {
    const infos = new Map(reader.header.tensors.map((t) => [t.name, t]));
    for (const t of adapter.targets) {
      const info = infos.get(t.weight);
      if (info === undefined) throw new Error(`merge: the base model has no tensor ${t.weight}`);
      if (info.shape.join() !== [t.outFeatures, t.inFeatures].join()) {
        throw new Error(
          `merge: ${t.weight} is [${info.shape}] in the base model, the adapter needs [${t.outFeatures},${t.inFeatures}]`,
        );
      }
    }
    const params: Record<string, Float32Array> = {};
    for (const name of adapterTensorNames(adapter)) {
      const v = options.adapterParams[name];
      if (v === undefined) throw new Error(`merge: the adapter has no tensor ${name}`);
      params[name] = v;
    }
    for (const t of adapter.targets) {
      params[t.weight] = toF32(await reader.read(t.weight), t.weight);
    }
    const merged = await merge(adapter, params, { runner: options.runner, safe: true });
    const keep = adapter.config.modulesToSave;
    const out: Record<string, TensorInput> = {};
    const result = { merged: [] as string[], replaced: [] as string[], copied: [] as string[] };
    for (const info of reader.header.tensors) {
      const module = info.name.slice(0, info.name.lastIndexOf("."));
      const saved = keep.length > 0 && matchesModule(module, keep)
        ? options.adapterParams[info.name]
        : undefined;
      if (adapter.targets.some((t) => t.weight === info.name)) {
        out[info.name] = { dtype: info.dtype, shape: info.shape, data: merged[info.name] };
        result.merged.push(info.name);
      } else if (saved !== undefined) {
        if (saved.length !== info.shape.reduce((a, b) => a * b, 1)) {
          throw new Error(
            `merge: saved module tensor ${info.name} does not match the base shape [${info.shape}]`,
          );
        }
        out[info.name] = { dtype: info.dtype, shape: info.shape, data: saved };
        result.replaced.push(info.name);
      } else {
        const t = await reader.read(info.name);
        out[info.name] = { dtype: t.dtype, shape: t.shape, data: t.data };
        result.copied.push(info.name);
      }
    }
    await writeSafetensors(options.out, out, reader.header.metadata);
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
