/**
 * The Llama family (`model_type: llama`, and `qwen2` / `mistral`, whose differences are config
 * fields): RMSNorm, rotary position embeddings (`rope_theta`), SwiGLU MLP, grouped-query attention
 * (`num_key_value_heads`), `head_dim`, optional tied embeddings, q/k/v biases (qwen2, llama's
 * `attention_bias`). Unsupported settings (rope scaling, a sliding window in effect, another
 * activation) are refused with an error naming the field. Tensor names are transformers'
 * (`model.layers.0.self_attn.q_proj.weight`, ...).
 *
 * @module
 */
import { concat, constant, param, scope, type Tensor } from "../compiler/trace.ts";
import type { Forward, KvHook, ModelConfig, ModelFamily } from "./family_types.ts";
import { linear } from "./layers.ts";
import { attend, ConfigReader, decoderGraph, lmHeadOf, splitHeads } from "./_hf_common.ts";

/**
 * The Llama family's fields, read from config.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type LlamaConfig, llamaFamily } from "./llama.ts";
 * const c = llamaFamily.configFromJson({
 *   model_type: "qwen2", vocab_size: 10, max_position_embeddings: 8, hidden_size: 8,
 *   intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2,
 * }, "config.json") as LlamaConfig;
 * assert.equal(c.qkvBias, true);
 * ```
 */
export interface LlamaConfig extends ModelConfig {
  /** Always "llama" (qwen2 and mistral included; see modelType). */
  readonly family: "llama";
  /** config.json's `model_type` (llama, qwen2 or mistral). */
  readonly modelType: string;
  /** `num_attention_heads`. */
  readonly heads: number;
  /** `num_key_value_heads` (default: heads). */
  readonly kvHeads: number;
  /** `head_dim` (default hidden_size / heads). */
  readonly headDim: number;
  /** `intermediate_size`. */
  readonly intermediateSize: number;
  /** `rms_norm_eps`. */
  readonly rmsNormEps: number;
  /** `rope_theta` (or `rope_parameters.rope_theta`). */
  readonly ropeTheta: number;
  /** Biases on q/k/v (qwen2; llama's `attention_bias`). */
  readonly qkvBias: boolean;
  /** Bias on o_proj (llama's `attention_bias`). */
  readonly oBias: boolean;
  /** `mlp_bias`. */
  readonly mlpBias: boolean;
  /** `tie_word_embeddings`. */
  readonly tieWordEmbeddings: boolean;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function configFromJson(json: unknown, where: string): LlamaConfig {
  const r = ConfigReader.of(json, where);
  const j = r.json;
  const modelType = typeof j.model_type === "string" ? j.model_type : "llama";
  const act = j.hidden_act ?? "silu";
  if (act !== "silu" && act !== "swish") {
    r.fail("hidden_act", `${JSON.stringify(act)} is not supported (only silu)`);
  }
  const rp = isRecord(j.rope_parameters) ? j.rope_parameters : undefined;
  const rs = isRecord(j.rope_scaling) ? j.rope_scaling : undefined;
  if (j.rope_scaling !== undefined && j.rope_scaling !== null && !rs) {
    r.fail("rope_scaling", "must be an object or null");
  }
  // transformers 5 writes rope_parameters; older files rope_scaling. Either must be the default.
  for (const [field, o] of [["rope_parameters", rp], ["rope_scaling", rs]] as const) {
    const type = o?.rope_type ?? o?.type ?? "default";
    if (type !== "default") {
      r.fail(
        o === rp ? `${field}.rope_type` : field,
        `${JSON.stringify(type)} is not supported (only default rotary embeddings)`,
      );
    }
  }
  const partial = rp?.partial_rotary_factor ?? j.partial_rotary_factor ?? 1;
  if (partial !== 1) r.fail("partial_rotary_factor", `${partial} is not supported (only 1)`);
  const theta = rp?.rope_theta ?? j.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) {
    r.fail(rp ? "rope_parameters.rope_theta" : "rope_theta", `must be a positive number`);
  }
  if (Array.isArray(j.layer_types) && j.layer_types.some((t) => t !== "full_attention")) {
    r.fail("layer_types", "sliding-window layers are not supported (only full_attention)");
  }
  let maxSeqLen = r.int("max_position_embeddings");
  if (modelType === "qwen2" && j.use_sliding_window === true) {
    r.fail("use_sliding_window", "true is not supported");
  }
  if (modelType === "mistral" && j.sliding_window !== undefined && j.sliding_window !== null) {
    // Within the window sliding-window attention is full attention: cap the positions there.
    maxSeqLen = Math.min(maxSeqLen, r.int("sliding_window"));
  }
  const hiddenSize = r.int("hidden_size");
  const heads = r.int("num_attention_heads");
  const kvHeads = r.int("num_key_value_heads", heads);
  if (heads % kvHeads !== 0) {
    r.fail("num_key_value_heads", `${kvHeads} does not divide num_attention_heads ${heads}`);
  }
  const headDim = j.head_dim === null ? hiddenSize / heads : r.int("head_dim", hiddenSize / heads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    r.fail("head_dim", `must be an even integer, got ${headDim}`);
  }
  const attentionBias = r.bool("attention_bias", false);
  return {
    family: "llama",
    modelType,
    vocabSize: r.int("vocab_size"),
    maxSeqLen,
    hiddenSize,
    layers: r.int("num_hidden_layers"),
    heads,
    kvHeads,
    headDim,
    intermediateSize: r.int("intermediate_size"),
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    ropeTheta: theta as number,
    qkvBias: modelType === "qwen2" || attentionBias,
    oBias: attentionBias,
    mlpBias: r.bool("mlp_bias", false),
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    padTokenId: r.tokenId("pad_token_id"),
  };
}

/** `weight · x / sqrt(mean(x²) + eps)` over the last axis (transformers' LlamaRMSNorm). */
function rmsNorm(x: Tensor, name: string, eps: number): Tensor {
  const d = x.shape[x.rank - 1];
  return scope(name, () =>
    x.mul(x.square().mean(-1, true).add(eps).rsqrt())
      .mul(param("weight", [d], { init: { kind: "ones" } })));
}

/**
 * cos and sin tables `[maxSeqLen, headDim]` of the default rotary embedding, rounded through f32
 * step by step as transformers computes them in float32.
 */
function ropeTables(c: LlamaConfig): { cos: number[]; sin: number[] } {
  const f = Math.fround;
  const half = c.headDim / 2;
  const inv = Array.from(
    { length: half },
    (_, j) => f(1 / f(Math.pow(c.ropeTheta, f(f(2 * j) / c.headDim)))),
  );
  const cos: number[] = [];
  const sin: number[] = [];
  for (let p = 0; p < c.maxSeqLen; p++) {
    for (let k = 0; k < c.headDim; k++) {
      const angle = f(p * inv[k % half]);
      cos.push(f(Math.cos(angle)));
      sin.push(f(Math.sin(angle)));
    }
  }
  return { cos, sin };
}

/** `x·cos + rotate_half(x)·sin` on `x [B,H,T,dh]`, rotate_half(x) = [-x₂, x₁]. */
function rotate(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const dh = x.shape[3];
  const x1 = x.narrow(3, 0, dh / 2);
  const x2 = x.narrow(3, dh / 2, dh / 2);
  return x.mul(cos).add(concat([x2.neg(), x1], 3).mul(sin));
}

function forward(
  config: ModelConfig,
  tokens: Tensor,
  positions: Tensor,
  kv: KvHook,
  drop: (x: Tensor) => Tensor = (x) => x,
): Forward {
  const c = config as LlamaConfig;
  const d = c.hiddenSize;
  const [, t] = tokens.shape;
  const tables = ropeTables(c);
  const table = (v: number[]) =>
    constant(v, [c.maxSeqLen, c.headDim]).gather(positions).reshape([1, 1, t, c.headDim]);
  const cos = table(tables.cos);
  const sin = table(tables.sin);
  return scope("model", () => {
    const embed = scope("embed_tokens", () => param("weight", [c.vocabSize, d]));
    let h = embed.gather(tokens);
    for (let i = 0; i < c.layers; i++) {
      scope(`layers.${i}`, () => {
        const x = rmsNorm(h, "input_layernorm", c.rmsNormEps);
        h = h.add(drop(scope("self_attn", () => {
          const proj = (name: string, heads: number) =>
            splitHeads(linear(x, name, heads * c.headDim, { bias: c.qkvBias }), heads);
          const q = rotate(proj("q_proj", c.heads), cos, sin);
          const k = rotate(proj("k_proj", c.kvHeads), cos, sin);
          const cached = kv(i, k, proj("v_proj", c.kvHeads));
          const a = attend(q, cached.k, cached.v, cached.offset);
          return linear(a, "o_proj", d, { bias: c.oBias });
        })));
        const y = rmsNorm(h, "post_attention_layernorm", c.rmsNormEps);
        h = h.add(drop(scope("mlp", () => {
          const gate = linear(y, "gate_proj", c.intermediateSize, { bias: c.mlpBias });
          const up = linear(y, "up_proj", c.intermediateSize, { bias: c.mlpBias });
          return linear(gate.mul(gate.sigmoid()).mul(up), "down_proj", d, { bias: c.mlpBias });
        })));
      });
    }
    const hidden = rmsNorm(h, "norm", c.rmsNormEps);
    return { hidden, lmHead: lmHeadOf(c.tieWordEmbeddings, embed, c.vocabSize, d) };
  });
}

/**
 * The Llama family (also reads qwen2 and mistral checkpoints).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { llamaFamily } from "./llama.ts";
 * const c = llamaFamily.configFromJson({
 *   model_type: "llama", vocab_size: 10, max_position_embeddings: 8, hidden_size: 8,
 *   intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,
 * }, "config.json");
 * const g = llamaFamily.graph(c, { batch: 1, seqLen: 4, task: "lm" });
 * assert.deepEqual(g.outputs.logits.shape, [1, 4, 10]);
 * assert.deepEqual(g.params.find((p) => p.name === "model.layers.0.self_attn.k_proj.weight")?.shape, [4, 8]);
 * ```
 */
export const llamaFamily: ModelFamily = {
  name: "llama",
  configFromJson,
  graph: decoderGraph("llama", forward),
  storedLayout: () => ({ transposed: false }),
  classificationHead: "score",
  defaultTargets: ["q_proj", "v_proj"],
  forward,
  kvLayout: (config) => ({
    layers: config.layers,
    kvHeads: (config as LlamaConfig).kvHeads,
    headDim: (config as LlamaConfig).headDim,
  }),
};
