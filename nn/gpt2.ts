/**
 * Hugging Face GPT-2 (`model_type: gpt2`): learned positions, pre-LayerNorm blocks, `gelu_new`,
 * fused `c_attn`, Conv1D weights stored `[in, out]` (transposed on load, so PEFT adapters on them
 * need `fan_in_fan_out: true`) and an LM head tied to `transformer.wte`. Tensor names are
 * transformers' (`transformer.h.0.attn.c_attn.weight`, ...).
 *
 * @module
 */
import { param, scope, type Tensor } from "../compiler/trace.ts";
import type { Forward, KvHook, ModelConfig, ModelFamily } from "./family_types.ts";
import { layerNorm, linear } from "./layers.ts";
import { attend, ConfigReader, decoderGraph, lmHeadOf, splitHeads } from "./_hf_common.ts";

/**
 * GPT-2's fields, read from config.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Gpt2Config, gpt2Family } from "./gpt2.ts";
 * const c = gpt2Family.configFromJson(
 *   { vocab_size: 10, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 }, "config.json") as Gpt2Config;
 * assert.equal(c.innerSize, 32);
 * ```
 */
export interface Gpt2Config extends ModelConfig {
  /** Always "gpt2". */
  readonly family: "gpt2";
  /** `n_head`. */
  readonly heads: number;
  /** `n_inner` (default 4·n_embd). */
  readonly innerSize: number;
  /** `layer_norm_epsilon`. */
  readonly layerNormEps: number;
  /** `tie_word_embeddings` (default true). */
  readonly tieWordEmbeddings: boolean;
}

/** Activations whose formula is the tanh GELU that the gelu op computes. */
const TANH_GELU = new Set(["gelu_new", "gelu_pytorch_tanh", "gelu_fast"]);
/** Modules transformers' GPT-2 builds as Conv1D (weights stored [in, out]). */
const CONV1D = /\.(c_attn|c_proj|c_fc|q_attn)\.weight$/;

function configFromJson(json: unknown, where: string): Gpt2Config {
  const r = ConfigReader.of(json, where);
  const act = r.json.activation_function ?? "gelu_new";
  if (typeof act !== "string" || !TANH_GELU.has(act)) {
    r.fail("activation_function", `${JSON.stringify(act)} is not supported (use gelu_new)`);
  }
  if (r.bool("scale_attn_by_inverse_layer_idx", false)) {
    r.fail("scale_attn_by_inverse_layer_idx", "true is not supported");
  }
  if (!r.bool("scale_attn_weights", true)) r.fail("scale_attn_weights", "false is not supported");
  if (r.bool("add_cross_attention", false)) r.fail("add_cross_attention", "true is not supported");
  const hiddenSize = r.int("n_embd");
  const heads = r.int("n_head");
  if (hiddenSize % heads !== 0) r.fail("n_head", `${heads} does not divide n_embd ${hiddenSize}`);
  return {
    family: "gpt2",
    vocabSize: r.int("vocab_size"),
    maxSeqLen: r.int("n_positions"),
    hiddenSize,
    layers: r.int("n_layer"),
    heads,
    innerSize: r.json.n_inner === null ? 4 * hiddenSize : r.int("n_inner", 4 * hiddenSize),
    layerNormEps: r.num("layer_norm_epsilon", 1e-5),
    tieWordEmbeddings: r.bool("tie_word_embeddings", true),
    padTokenId: r.tokenId("pad_token_id"),
  };
}

function forward(
  config: ModelConfig,
  tokens: Tensor,
  positions: Tensor,
  kv: KvHook,
  drop: (x: Tensor) => Tensor = (x) => x,
): Forward {
  const c = config as Gpt2Config;
  const d = c.hiddenSize;
  const [, t] = tokens.shape;
  return scope("transformer", () => {
    const wte = scope("wte", () => param("weight", [c.vocabSize, d]));
    const wpe = scope("wpe", () => param("weight", [c.maxSeqLen, d]));
    let h = wte.gather(tokens).add(wpe.gather(positions).reshape([1, t, d]));
    for (let i = 0; i < c.layers; i++) {
      scope(`h.${i}`, () => {
        const x1 = layerNorm(h, "ln_1", c.layerNormEps);
        const qkv = scope("attn", () => linear(x1, "c_attn", 3 * d));
        const q = splitHeads(qkv.narrow(2, 0, d), c.heads);
        const cached = kv(
          i,
          splitHeads(qkv.narrow(2, d, d), c.heads),
          splitHeads(qkv.narrow(2, 2 * d, d), c.heads),
        );
        const a = attend(q, cached.k, cached.v, cached.offset);
        h = h.add(drop(scope("attn", () => linear(a, "c_proj", d))));
        const x = layerNorm(h, "ln_2", c.layerNormEps);
        h = h.add(
          drop(scope("mlp", () => linear(linear(x, "c_fc", c.innerSize).gelu(), "c_proj", d))),
        );
      });
    }
    const hidden = layerNorm(h, "ln_f", c.layerNormEps);
    return { hidden, lmHead: lmHeadOf(c.tieWordEmbeddings, wte, c.vocabSize, d) };
  });
}

/**
 * The GPT-2 family.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gpt2Family } from "./gpt2.ts";
 * const c = gpt2Family.configFromJson(
 *   { model_type: "gpt2", vocab_size: 10, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 }, "config.json");
 * const g = gpt2Family.graph(c, { batch: 1, seqLen: 4, task: "lm" });
 * assert.deepEqual(g.outputs.logits.shape, [1, 4, 10]);
 * assert.ok(g.params.some((p) => p.name === "transformer.h.0.attn.c_attn.weight"));
 * assert.equal(gpt2Family.storedLayout("transformer.h.0.mlp.c_fc.weight").transposed, true);
 * ```
 */
export const gpt2Family: ModelFamily = {
  name: "gpt2",
  configFromJson,
  graph: decoderGraph("gpt2", forward),
  storedLayout: (name) => ({ transposed: CONV1D.test(name) }),
  classificationHead: "score",
  defaultTargets: ["c_attn"],
  forward,
  kvLayout: (config) => ({
    layers: config.layers,
    kvHeads: (config as Gpt2Config).heads,
    headDim: config.hiddenSize / (config as Gpt2Config).heads,
  }),
};
