/**
 * The model-family registry: a family is a traced graph function plus how its tensors are named
 * and stored, so adding one touches no compiler code. wgrad's own GPT is one family among the
 * others (`wgrad-gpt`), next to Hugging Face's GPT-2 (`gpt2`) and the Llama family (`llama`, which
 * also reads `qwen2` and `mistral` checkpoints).
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { Tensor } from "../compiler/trace.ts";
import { loadBaseModel } from "../train/checkpoint.ts";
import { byteTokenizer, type Tokenizer } from "../data/hf_tokenizer.ts";
import { loadHfModel } from "../io/hf_model.ts";
import { gpt2Family } from "./gpt2.ts";
import { llamaFamily } from "./llama.ts";
import { wgradConfig, wgradGptFamily } from "./wgrad_gpt.ts";

/**
 * A family's config: the fields every family has plus its own (kept as read, under their
 * camel-cased names).
 *
 * @example
 * ```ts
 * import type { ModelConfig } from "./families.ts";
 * const c: ModelConfig = { family: "gpt2", vocabSize: 10, maxSeqLen: 8, hiddenSize: 4, layers: 1 };
 * ```
 */
export interface ModelConfig {
  /** The registry name of the family that reads this config. */
  readonly family: string;
  /** Vocabulary size V (rows of the token embedding). */
  readonly vocabSize: number;
  /** Most positions the model takes. */
  readonly maxSeqLen: number;
  /** Model width. */
  readonly hiddenSize: number;
  /** Number of blocks. */
  readonly layers: number;
  /** `pad_token_id` from config.json: sequence classification pools at the last non-pad token. */
  readonly padTokenId?: number;
  /** Family-specific fields. */
  readonly [field: string]: unknown;
}

/**
 * Sizes and task of one traced graph.
 *
 * @example
 * ```ts
 * import type { GraphOptions } from "./families.ts";
 * const o: GraphOptions = { batch: 2, seqLen: 16, task: "classification", numClasses: 2 };
 * ```
 */
export interface GraphOptions {
  /** Batch size B. */
  readonly batch: number;
  /** Sequence length T (≤ maxSeqLen). */
  readonly seqLen: number;
  /** `lm`: inputs tokens, targets; `classification`: inputs tokens, labels, lastIndex. */
  readonly task: "lm" | "classification";
  /** Classes of the classification head (default 2). */
  readonly numClasses?: number;
  /**
   * Dropout probability on each block's attention and MLP outputs before the residual add
   * (default 0). When > 0 the graph takes a `dropoutSeed` input (u32 scalar).
   */
  readonly dropout?: number;
}

/**
 * Where a layer's attention gets its keys and values: given this call's `k, v [B,Hkv,T,dh]`, the
 * K/V to attend over and the absolute position of the first query row. Training passes them
 * through; generation writes them into a cache and attends over the whole cache.
 *
 * @example
 * ```ts
 * import type { KvHook } from "./families.ts";
 * const passThrough: KvHook = (_layer, k, v) => ({ k, v, offset: 0 });
 * ```
 */
export type KvHook = (
  layer: number,
  k: Tensor,
  v: Tensor,
) => { k: Tensor; v: Tensor; offset: Tensor | number };

/**
 * What a family's forward pass gives: the final hidden states `[B,T,D]` and its LM head.
 *
 * @example
 * ```ts
 * import type { Forward } from "./families.ts";
 * const logitsOf = (f: Forward) => f.lmHead(f.hidden);
 * ```
 */
export interface Forward {
  /** Hidden states after the final norm. */
  readonly hidden: Tensor;
  /** Hidden states → logits `[B,T,V]` (tied heads reuse the embedding). */
  lmHead(hidden: Tensor): Tensor;
}

/**
 * How big a family's K/V cache is.
 *
 * @example
 * ```ts
 * import type { KvLayout } from "./families.ts";
 * const floatsPerPosition = (l: KvLayout) => 2 * l.layers * l.kvHeads * l.headDim;
 * ```
 */
export interface KvLayout {
  /** Blocks with attention. */
  readonly layers: number;
  /** Key/value heads. */
  readonly kvHeads: number;
  /** Width of one head. */
  readonly headDim: number;
}

/**
 * One model family.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getFamily } from "./families.ts";
 * const f = getFamily("wgrad-gpt");
 * assert.equal(f.classificationHead, "classifier");
 * ```
 */
export interface ModelFamily {
  /** Registry name: "gpt2" | "llama" | "wgrad-gpt" | ... */
  readonly name: string;
  /** The config from config.json (or wgrad metadata); `where` names the file in errors. */
  configFromJson(json: unknown, where: string): ModelConfig;
  /**
   * Training / scoring graph. Inputs: `tokens [B,T]` i32 and either `targets [B,T]` i32 (negative
   * = ignored) for `lm`, or `labels [B]` + `lastIndex [B]` i32 for `classification`. Outputs
   * `loss` and `logits` (`[B,T,V]` or `[B,C]`). Param names are the checkpoint's tensor names.
   */
  graph(config: ModelConfig, options: GraphOptions): Graph;
  /** How a tensor is stored in the file: `transposed` ones are `[in, out]` there (GPT-2 Conv1D). */
  storedLayout(name: string): { transposed: boolean };
  /** Module name of the classification head ("score" for HF families, "classifier" for wgrad-gpt). */
  readonly classificationHead: string;
  /** Default adapter targets (module name suffixes). */
  readonly defaultTargets: readonly string[];
  /**
   * The forward pass inside a trace: `tokens [B,T]` at absolute `positions [T]` (i32), attention
   * through `kv`; `drop` (training with dropout) is applied to each residual branch. Generation
   * builds its prefill and cached one-token graphs from it.
   */
  forward(
    config: ModelConfig,
    tokens: Tensor,
    positions: Tensor,
    kv: KvHook,
    drop?: (x: Tensor) => Tensor,
  ): Forward;
  /** The K/V cache layout of generation. */
  kvLayout(config: ModelConfig): KvLayout;
}

/**
 * A model ready to run: family, config, f32 weights in graph layout, and its tokenizer.
 *
 * @example
 * ```ts
 * import type { LoadedModel } from "./families.ts";
 * const describe = (m: LoadedModel) => `${m.family.name}: ${Object.keys(m.weights).length} tensors`;
 * ```
 */
export interface LoadedModel {
  /** The family that builds its graphs. */
  readonly family: ModelFamily;
  /** Its config (vocabSize, maxSeqLen and family fields). */
  readonly config: ModelConfig;
  /** Weights by tensor name, in graph layout (already transposed where storedLayout says so). */
  readonly weights: Record<string, Float32Array>;
  /** Stored dtype per tensor ("F32" | "F16" | "BF16"). */
  readonly dtypes: Record<string, string>;
  /** From tokenizer.json, or the byte tokenizer for wgrad-gpt. */
  readonly tokenizer: Tokenizer;
  /** Where it came from; `configJson` is config.json as read for HF directories. */
  readonly source: {
    readonly path: string;
    readonly kind: "hf-dir" | "wgrad-file";
    readonly configJson?: Record<string, unknown>;
  };
}

const REGISTRY = new Map<string, ModelFamily>();
/** config.json `model_type` → registry name, for types another family reads. */
const ALIASES = new Map<string, string>();

/**
 * Adds a family (and the `model_type` values it also reads) to the registry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { familyNames, getFamily, registerFamily } from "./families.ts";
 * registerFamily({ ...getFamily("wgrad-gpt"), name: "my-gpt" });
 * assert.ok(familyNames().includes("my-gpt"));
 * ```
 */
export function registerFamily(family: ModelFamily, aliases: readonly string[] = []): void {
  REGISTRY.set(family.name, family);
  for (const a of aliases) ALIASES.set(a, family.name);
}

/**
 * The registered family names and aliases, sorted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { familyNames } from "./families.ts";
 * assert.ok(familyNames().includes("wgrad-gpt"));
 * ```
 */
export function familyNames(): string[] {
  return [...REGISTRY.keys(), ...ALIASES.keys()].sort();
}

/**
 * The family registered as `name` (or reading `model_type` `name`); an error lists the known ones.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getFamily } from "./families.ts";
 * assert.throws(() => getFamily("bert"), /unsupported model_type "bert"/);
 * ```
 */
export function getFamily(name: string): ModelFamily {
  const family = REGISTRY.get(ALIASES.get(name) ?? name);
  if (!family) {
    throw new Error(`unsupported model_type "${name}" (supported: ${familyNames().join(", ")})`);
  }
  return family;
}

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

registerFamily(wgradGptFamily);
registerFamily(gpt2Family);
registerFamily(llamaFamily, ["qwen2", "mistral"]);

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
