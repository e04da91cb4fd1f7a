/**
 * The types of a model family: its config, how it builds graphs, and a
 * loaded model. Families (gpt2.ts, llama.ts, wgrad_gpt.ts) implement
 * {@link ModelFamily}; the registry (family_registry.ts) holds them.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { Tensor } from "../compiler/trace.ts";
import type { Tokenizer } from "../data/hf_tokenizer.ts";

/**
 * A family's config: the fields every family has plus its own (kept as read, under their
 * camel-cased names).
 *
 * @example
 * ```ts
 * import type { ModelConfig } from "./family_types.ts";
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
 * import type { GraphOptions } from "./family_types.ts";
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
 * import type { KvHook } from "./family_types.ts";
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
 * import type { Forward } from "./family_types.ts";
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
 * import type { KvLayout } from "./family_types.ts";
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
 * import { getFamily } from "./family_registry.ts";
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
 * import type { LoadedModel } from "./family_types.ts";
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
