/**
 * Hugging Face PEFT adapter directories, exactly as PEFT 0.21 writes them:
 * `adapter_config.json` (every field of `VeraConfig` / `LoraConfig`) and
 * `adapter_model.safetensors` with `base_model.model.<module>.vera_lambda_b`,
 * `...vera_lambda_d`, `base_model.vera_A`, `base_model.vera_B` (VeRA) or
 * `...lora_A.weight`, `...lora_B.weight` (LoRA), all F32; `modules_to_save`
 * weights as `base_model.model.<name>`.
 *
 * PEFT draws its projections from PyTorch's CPU generator, which this project
 * does not reproduce, so exports always carry `vera_A`/`vera_B`
 * (`save_projection: true`). Reading and importing: `peft_import.ts`.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { encodeSafetensors, type TensorInput } from "../io/safetensors.ts";
import { writeDirAtomic } from "../io/atomic.ts";
import { uniformSymmetric } from "../prng/threefry.ts";
import {
  lambdaBName,
  lambdaDName,
  VERA_STREAM_A,
  VERA_STREAM_B,
  type VeraAdapter,
  veraProjections,
} from "./vera.ts";
import { type LoraAdapter, loraAName, loraBName, loraRank } from "./lora.ts";
import type { Adapter } from "./merge.ts";
import { matchesModule } from "./targets.ts";

/** The prefix PEFT puts before module paths in adapter state dicts. */
export const PEFT_PREFIX = "base_model.model.";

/** The PEFT version whose field set and layout these files follow. */
export const PEFT_VERSION = "0.21.0";

function targetList(targetModules: readonly string[] | string): string[] | string {
  return typeof targetModules === "string" ? targetModules : [...new Set(targetModules)].sort();
}

/**
 * The `adapter_config.json` object PEFT would write for this adapter.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { vera } from "./vera.ts";
 * import { peftConfig } from "./peft.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * strictEqual(peftConfig(vera(g, { r: 2, targetModules: ["q_proj"] }).adapter).peft_type, "VERA");
 * ```
 */
export function peftConfig(
  adapter: Adapter,
  baseModel: string | null = null,
): Record<string, unknown> {
  const c = adapter.config;
  const common = {
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: "none",
    fan_in_fan_out: c.fanInFanOut,
    inference_mode: true,
    layers_pattern: c.layersPattern ?? null,
    layers_to_transform: c.layersToTransform === undefined
      ? null
      : typeof c.layersToTransform === "number"
      ? c.layersToTransform
      : [...c.layersToTransform],
    modules_to_save: c.modulesToSave.length > 0 ? [...c.modulesToSave] : null,
    peft_version: PEFT_VERSION,
    r: c.r,
    revision: null,
    target_modules: targetList(c.targetModules),
    task_type: null,
  };
  if (adapter.kind === "vera") {
    const v = adapter.config;
    return sortKeys({
      ...common,
      d_initial: v.dInitial,
      init_weights: true,
      peft_type: "VERA",
      projection_prng_key: v.projectionPrngKey,
      save_projection: true,
      vera_dropout: v.dropout,
    });
  }
  const l = adapter.config;
  return sortKeys({
    ...common,
    alora_invocation_tokens: null,
    alpha_pattern: { ...l.alphaPattern },
    arrow_config: null,
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: l.excludeModules === undefined
      ? null
      : typeof l.excludeModules === "string"
      ? l.excludeModules
      : [...l.excludeModules],
    init_lora_weights: true,
    kasa_config: null,
    layer_replication: null,
    loftq_config: {},
    lora_alpha: l.alpha,
    lora_bias: false,
    lora_dropout: l.dropout,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: "megatron.core",
    monteclora_config: null,
    peft_type: "LORA",
    qalora_group_size: 16,
    rank_pattern: { ...l.rankPattern },
    target_parameters: null,
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: l.useRslora,
    velora_config: null,
  });
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

/** The projections of a seeded VeRA adapter as f32 arrays (what `save_projection` stores). */
export function projectionValues(adapter: VeraAdapter): { a: Float32Array; b: Float32Array } {
  const { a, b } = veraProjections({ ...adapter, projections: "seed" });
  const gen = (n: typeof a, stream: number) =>
    uniformSymmetric(
      adapter.config.projectionPrngKey,
      stream,
      n.shape[0] * n.shape[1],
      n.attrs.bound as number,
    );
  return { a: gen(a, VERA_STREAM_A), b: gen(b, VERA_STREAM_B) };
}

function need(
  params: Readonly<Record<string, Float32Array>>,
  name: string,
  length: number,
): Float32Array {
  const v = params[name];
  if (v === undefined) throw new Error(`export: missing tensor "${name}"`);
  if (v.length !== length) {
    throw new Error(`export: "${name}" has ${v.length} elements, expected ${length}`);
  }
  return v;
}

/** Params under `modulesToSave` (e.g. the classifier head), which PEFT saves beside the adapter. */
export function savedModuleParams(
  adapter: Adapter,
  graph: Graph,
): { name: string; shape: number[] }[] {
  const keep = adapter.config.modulesToSave;
  if (keep.length === 0) return [];
  return graph.params
    .filter((p) => matchesModule(p.name!.slice(0, p.name!.lastIndexOf(".")), keep))
    .map((p) => ({ name: p.name!, shape: [...p.shape] }));
}

/**
 * The tensors of `adapter_model.safetensors`, keyed as PEFT keys them.
 * `graph` (the adapted graph) is needed only for `modulesToSave` params.
 */
export function peftTensors(
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  graph?: Graph,
): Record<string, TensorInput> {
  const out: Record<string, TensorInput> = {};
  const put = (name: string, shape: number[], data: Float32Array) => {
    out[name] = { dtype: "F32", shape, data };
  };
  for (const t of adapter.targets) {
    if (adapter.kind === "vera") {
      const r = adapter.config.r;
      put(
        PEFT_PREFIX + lambdaBName(t.module),
        [t.outFeatures],
        need(params, lambdaBName(t.module), t.outFeatures),
      );
      put(PEFT_PREFIX + lambdaDName(t.module), [r], need(params, lambdaDName(t.module), r));
    } else {
      const r = loraRank(adapter.config, t.module);
      put(
        PEFT_PREFIX + loraAName(t.module),
        [r, t.inFeatures],
        need(params, loraAName(t.module), r * t.inFeatures),
      );
      put(
        PEFT_PREFIX + loraBName(t.module),
        [t.outFeatures, r],
        need(params, loraBName(t.module), r * t.outFeatures),
      );
    }
  }
  if (adapter.kind === "vera") {
    const r = adapter.config.r;
    const stored = adapter.projections === "stored";
    const { a, b } = stored
      ? {
        a: need(params, "vera_A", r * adapter.maxIn),
        b: need(params, "vera_B", r * adapter.maxOut),
      }
      : projectionValues(adapter);
    put("base_model.vera_A", [r, adapter.maxIn], a);
    put("base_model.vera_B", [adapter.maxOut, r], b);
  }
  for (const p of graph ? savedModuleParams(adapter, graph) : []) {
    put(PEFT_PREFIX + p.name, p.shape, need(params, p.name, p.shape.reduce((x, y) => x * y, 1)));
  }
  return out;
}

/**
 * Writes a PEFT adapter directory atomically (`adapter_config.json`,
 * `adapter_model.safetensors`).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { readSafetensors } from "../io/safetensors.ts";
 * import { vera } from "./vera.ts";
 * import { exportPeft } from "./peft.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(g, { r: 2, targetModules: ["q_proj"] });
 * const dir = await Deno.makeTempDir();
 * await exportPeft(`${dir}/adapter`, adapter, initParams(graph), { graph });
 * const config = JSON.parse(await Deno.readTextFile(`${dir}/adapter/adapter_config.json`));
 * strictEqual(config.peft_type, "VERA");
 * strictEqual(config.r, 2);
 * const weights = await readSafetensors(`${dir}/adapter/adapter_model.safetensors`);
 * deepStrictEqual([...weights.tensors.keys()], [
 *   "base_model.model.layers.0.attn.q_proj.vera_lambda_b",
 *   "base_model.model.layers.0.attn.q_proj.vera_lambda_d",
 *   "base_model.vera_A",
 *   "base_model.vera_B",
 * ]);
 * ```
 */
export async function exportPeft(
  dir: string,
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  options: { graph?: Graph; baseModel?: string } = {},
): Promise<void> {
  const files = peftFiles(adapter, params, options);
  await writeDirAtomic(dir, files);
}

/** The two files of a PEFT adapter directory, as bytes. */
export function peftFiles(
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  options: { graph?: Graph; baseModel?: string } = {},
): Record<string, Uint8Array | string> {
  return {
    "adapter_config.json": JSON.stringify(peftConfig(adapter, options.baseModel ?? null), null, 2) +
      "\n",
    "adapter_model.safetensors": encodeSafetensors(peftTensors(adapter, params, options.graph)),
  };
}

/** Re-export for callers that only need the LoRA type here. */
export type { LoraAdapter, VeraAdapter };
