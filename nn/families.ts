/**
 * Model families: loading a model of any registered family (`loadModel`), and
 * the family types and registry (family_types.ts, family_registry.ts),
 * re-exported here as one entry point.
 *
 * @module
 */
import { loadBaseModel } from "../train/checkpoint.ts";
import { byteTokenizer } from "../data/hf_tokenizer.ts";
import { loadHfModel } from "../io/hf_model.ts";
import type { LoadedModel } from "./family_types.ts";
import { wgradConfig, wgradGptFamily } from "./wgrad_gpt.ts";

export type {
  Forward,
  GraphOptions,
  KvHook,
  KvLayout,
  LoadedModel,
  ModelConfig,
  ModelFamily,
} from "./family_types.ts";
export { familyNames, getFamily, registerFamily } from "./family_registry.ts";

/**
 * For sequence classification: the index of the last non-pad token of each row, as transformers'
 * *ForSequenceClassification pools (the rightmost position whose token is not `padId`, 0 if none;
 * the last position when `padId` is undefined, which transformers allows only for batch size 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lastNonPadIndex } from "./families.ts";
 * assert.deepEqual(lastNonPadIndex([[5, 6, 0, 0], [0, 7, 8, 9]], 0), [1, 3]);
 * ```
 */
export function lastNonPadIndex(rows: readonly (readonly number[])[], padId?: number): number[] {
  return rows.map((row) => {
    if (padId === undefined) return row.length - 1;
    for (let i = row.length - 1; i >= 0; i--) if (row[i] !== padId) return i;
    return 0;
  });
}

/**
 * Loads a model: a Hugging Face directory (config.json + model.safetensors or a sharded
 * model.safetensors.index.json, plus tokenizer.json) or a wgrad base `.safetensors` file. Errors
 * name the file and the field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadModel } from "./families.ts";
 * const m = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
 * assert.equal(m.family.name, "wgrad-gpt");
 * assert.equal(m.config.vocabSize, 260);
 * ```
 */
export async function loadModel(path: string): Promise<LoadedModel> {
  const info = await Deno.stat(path).catch((e: Error) => {
    throw new Error(`cannot read model ${path}: ${e.message}`);
  });
  if (info.isDirectory) {
    return await loadHfModel(path);
  }
  const base = await loadBaseModel(path);
  const config = wgradConfig(base.config, path);
  const dtypes: Record<string, string> = {};
  for (const name of Object.keys(base.weights)) dtypes[name] = "F32";
  return {
    family: wgradGptFamily,
    config,
    weights: base.weights,
    dtypes,
    tokenizer: byteTokenizer(),
    source: { path, kind: "wgrad-file" },
  };
}
