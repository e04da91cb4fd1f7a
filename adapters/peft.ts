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
 * (`save_projection: true`) and imports use the stored projections.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import {
  encodeSafetensors,
  type LoadedTensor,
  readSafetensors,
  type TensorInput,
} from "../io/safetensors.ts";
import { writeDirAtomic } from "../io/atomic.ts";
import { uniformSymmetric } from "../runtime/threefry.ts";
import {
  lambdaBName,
  lambdaDName,
  vera,
  VERA_STREAM_A,
  VERA_STREAM_B,
  type VeraAdapter,
  type VeraConfig,
  veraProjections,
} from "./vera.ts";
import { lora, type LoraAdapter, loraAName, loraBName, type LoraConfig } from "./lora.ts";
import { isAdapterParam } from "./_adapt.ts";
import type { Adapter } from "./merge.ts";
import { matchesModule, type TargetConfig } from "./targets.ts";

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
 * import { gptGraph } from "../nn/gpt.ts";
 * import { vera } from "./vera.ts";
 * import { peftConfig } from "./peft.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * console.log(peftConfig(vera(g, { r: 2, targetModules: ["q_proj"] }).adapter).peft_type); // "VERA"
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
    fan_in_fan_out: false,
    inference_mode: true,
    layers_pattern: c.layersPattern ?? null,
    layers_to_transform: c.layersToTransform ? [...c.layersToTransform] : null,
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
    alpha_pattern: {},
    arrow_config: null,
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
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
    rank_pattern: {},
    target_parameters: null,
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
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
      const r = adapter.config.r;
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
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { exportPeft } from "./peft.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(g, { r: 2, targetModules: ["q_proj"] });
 * const dir = await Deno.makeTempDir();
 * await exportPeft(`${dir}/adapter`, adapter, initParams(graph), { graph });
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

/** An adapter read from a PEFT directory, before it is applied to a graph. */
export interface PeftAdapterFiles {
  /** `"vera"` or `"lora"`. */
  readonly kind: "vera" | "lora";
  /** The raw `adapter_config.json`. */
  readonly config: Record<string, unknown>;
  /** Tensors keyed by module path (the `base_model.model.` prefix removed; `vera_A`, `vera_B`). */
  readonly tensors: Record<string, Float32Array>;
  /** Shapes of the same tensors. */
  readonly shapes: Record<string, number[]>;
}

function fail(dir: string, message: string): never {
  throw new Error(`PEFT adapter ${dir}: ${message}`);
}

/**
 * Reads and checks a PEFT adapter directory (VeRA or LoRA).
 *
 * @example
 * ```ts
 * import { readPeft } from "./peft.ts";
 * await readPeft("/nonexistent").catch((e) => console.log(e.message.includes("adapter_config.json"))); // true
 * ```
 */
export async function readPeft(dir: string): Promise<PeftAdapterFiles> {
  let configText: string;
  try {
    configText = await Deno.readTextFile(`${dir}/adapter_config.json`);
  } catch (e) {
    fail(dir, `cannot read adapter_config.json (${(e as Error).message})`);
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(configText);
  } catch (e) {
    fail(dir, `adapter_config.json is not valid JSON (${(e as Error).message})`);
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    fail(dir, "adapter_config.json is not an object");
  }
  const type = config.peft_type;
  if (type !== "VERA" && type !== "LORA") {
    fail(dir, `peft_type ${JSON.stringify(type)} is not supported (VERA or LORA)`);
  }
  if (!Number.isInteger(config.r) || (config.r as number) < 1) {
    fail(dir, `r must be a positive integer, got ${config.r}`);
  }
  const file = await readSafetensors(`${dir}/adapter_model.safetensors`).catch((e: Error) =>
    fail(dir, e.message)
  );
  const tensors: Record<string, Float32Array> = {};
  const shapes: Record<string, number[]> = {};
  for (const [key, t] of file.tensors as Map<string, LoadedTensor>) {
    if (!(t.data instanceof Float32Array)) {
      fail(dir, `tensor ${key} is ${t.dtype}, expected F32 (or F16/BF16)`);
    }
    const name = key.startsWith(PEFT_PREFIX)
      ? key.slice(PEFT_PREFIX.length)
      : key.startsWith("base_model.")
      ? key.slice("base_model.".length)
      : fail(dir, `unexpected tensor name ${key}`);
    tensors[name] = t.data;
    shapes[name] = [...t.shape];
  }
  return { kind: type === "VERA" ? "vera" : "lora", config, tensors, shapes };
}

function configTargets(files: PeftAdapterFiles, dir: string): string[] | string {
  const t = files.config.target_modules;
  if (typeof t === "string") return t;
  if (Array.isArray(t) && t.every((x) => typeof x === "string")) return t as string[];
  fail(dir, `target_modules must be a list of names or a regex string, got ${JSON.stringify(t)}`);
}

/**
 * The targeting fields of a PEFT config, camel-cased (`target_modules`,
 * `layers_to_transform`, `layers_pattern`, `modules_to_save`).
 *
 * @example
 * ```ts
 * import { peftTargetConfig } from "./peft.ts";
 * const files = { kind: "lora" as const, config: { target_modules: ["q_proj"] }, tensors: {}, shapes: {} };
 * console.log(peftTargetConfig(files).targetModules); // ["q_proj"]
 * ```
 */
export function peftTargetConfig(
  files: PeftAdapterFiles,
  dir = "<memory>",
): TargetConfig & { modulesToSave: string[] } {
  const c = files.config;
  return {
    targetModules: configTargets(files, dir),
    layersToTransform: (c.layers_to_transform as number[] | null) ?? undefined,
    layersPattern: (c.layers_pattern as string | null) ?? undefined,
    modulesToSave: (c.modules_to_save as string[] | null) ?? [],
  };
}

/**
 * The adapter config a PEFT `adapter_config.json` describes, camel-cased:
 * VeRA's `r`, `projection_prng_key`, `d_initial`, `vera_dropout` or LoRA's
 * `r`, `lora_alpha`, `lora_dropout`, plus the targeting fields.
 *
 * @example
 * ```ts
 * import { adapterConfigFromPeft } from "./peft.ts";
 * const files = { kind: "lora" as const, config: { r: 4, lora_alpha: 8, target_modules: ["q_proj"] }, tensors: {}, shapes: {} };
 * console.log(adapterConfigFromPeft(files).config); // { targetModules: [...], ..., r: 4, alpha: 8, dropout: 0 }
 * ```
 */
export function adapterConfigFromPeft(
  files: PeftAdapterFiles,
  dir = "<memory>",
): { kind: "vera"; config: VeraConfig } | { kind: "lora"; config: LoraConfig } {
  const c = files.config;
  const targets = peftTargetConfig(files, dir);
  if (files.kind === "vera") {
    return {
      kind: "vera",
      config: {
        ...targets,
        r: c.r as number,
        projectionPrngKey: (c.projection_prng_key as number) ?? 0,
        dInitial: (c.d_initial as number) ?? 0.1,
        dropout: (c.vera_dropout as number) ?? 0,
      },
    };
  }
  return {
    kind: "lora",
    config: {
      ...targets,
      r: c.r as number,
      alpha: (c.lora_alpha as number) ?? 8,
      dropout: (c.lora_dropout as number) ?? 0,
    },
  };
}

/**
 * Applies a PEFT adapter to a base graph: rewrites it (VeRA with the stored
 * projections as frozen params `vera_A`/`vera_B`) and returns the params the
 * adapter brings, keyed by graph param name. Shapes are checked against the
 * graph; missing or unexpected tensors are errors.
 *
 * @example
 * ```ts
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { exportPeft, importPeft, readPeft } from "./peft.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * const dir = await Deno.makeTempDir();
 * await exportPeft(`${dir}/a`, adapter, initParams(graph));
 * const imported = importPeft(base, await readPeft(`${dir}/a`));
 * console.log(imported.adapter.kind === "vera" && imported.adapter.projections); // "stored"
 * ```
 */
export function importPeft(
  base: Graph,
  files: PeftAdapterFiles,
  dir = "<memory>",
): { graph: Graph; adapter: Adapter; params: Record<string, Float32Array> } {
  // An imported adapter is for inference and merging: no dropout input.
  const described = adapterConfigFromPeft(files, dir);
  const result = described.kind === "vera"
    ? vera(base, { ...described.config, dropout: 0 }, { projections: "stored" })
    : lora(base, { ...described.config, dropout: 0 });
  const expected = new Map<string, number[]>();
  for (const p of result.graph.params) {
    const adapterParam = isAdapterParam(p.name!) ||
      p.name === "vera_A" ||
      p.name === "vera_B";
    if (adapterParam) expected.set(p.name!, [...p.shape]);
  }
  for (const p of savedModuleParams(result.adapter, result.graph)) expected.set(p.name, p.shape);
  const params: Record<string, Float32Array> = {};
  for (const [name, shape] of expected) {
    const have = files.shapes[name];
    if (have === undefined) fail(dir, `missing tensor ${name} [${shape}]`);
    if (have.join() !== shape.join()) {
      fail(dir, `tensor ${name} has shape [${have}], the model needs [${shape}]`);
    }
    params[name] = files.tensors[name];
  }
  const extra = Object.keys(files.tensors).filter((k) => !expected.has(k));
  if (extra.length > 0) fail(dir, `unexpected tensors: ${extra.join(", ")}`);
  return { ...result, params };
}

/** Re-export for callers that only need the LoRA type here. */
export type { LoraAdapter, VeraAdapter };
