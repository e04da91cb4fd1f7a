/**
 * wgrad's reference GPT (nn/gpt.ts) as a model family, `wgrad-gpt`: byte vocabulary, its own
 * tensor names (`embed.weight`, `layers.0.attn.q_proj.weight`, ...), classifier head `classifier`.
 *
 * @module
 */
import { param, scope, type Tensor } from "../compiler/trace.ts";
import type { Forward, KvHook, ModelConfig, ModelFamily } from "./family_types.ts";
import { type GptConfig, gptGraph } from "./gpt.ts";
import { layerNorm, linear, mlp } from "./layers.ts";
import { attend, splitHeads } from "./_hf_common.ts";

/** The same computation as gptBody (no dropout), with attention through `kv`, for generation. */
function forward(config: ModelConfig, tokens: Tensor, positions: Tensor, kv: KvHook): Forward {
  const c = config as unknown as GptConfig;
  const d = c.dModel;
  const [, t] = tokens.shape;
  const embed = scope("embed", () => param("weight", [c.vocabSize, d]));
  const pos = scope("pos", () => param("weight", [c.maxSeqLen, d]));
  let h = embed.gather(tokens).add(pos.gather(positions).reshape([1, t, d]));
  for (let i = 0; i < c.layers; i++) {
    scope(`layers.${i}`, () => {
      const x = layerNorm(h, "ln1");
      const a = scope("attn", () => {
        const q = splitHeads(linear(x, "q_proj", d), c.heads);
        const cached = kv(
          i,
          splitHeads(linear(x, "k_proj", d), c.heads),
          splitHeads(linear(x, "v_proj", d), c.heads),
        );
        return linear(attend(q, cached.k, cached.v, cached.offset), "o_proj", d);
      });
      h = h.add(a);
      h = h.add(mlp(layerNorm(h, "ln2"), "mlp", c.mlpHidden ?? 4 * d));
    });
  }
  const hidden = layerNorm(h, "ln_f");
  return {
    hidden,
    lmHead: (y) => linear(y, "lm_head", c.vocabSize, { bias: false }),
  };
}

/**
 * The wgrad-gpt config from a `wgrad.gpt` metadata object; a config that does not build is an
 * error naming `where`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wgradConfig } from "./wgrad_gpt.ts";
 * const c = wgradConfig({ vocabSize: 16, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1, head: "lm" }, "x");
 * assert.equal(c.hiddenSize, 8);
 * assert.throws(() => wgradConfig({ vocabSize: 16, maxSeqLen: 8, dModel: 8, heads: 3, layers: 1 }, "f"), /^Error: f: /);
 * ```
 */
export function wgradConfig(json: unknown, where: string): ModelConfig {
  const c = json as GptConfig;
  if (typeof c !== "object" || c === null) throw new Error(`${where}: config is not an object`);
  try {
    gptGraph({ ...c, head: "lm", dropout: 0 }, { batch: 1, seqLen: 1 });
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  return { ...c, family: "wgrad-gpt", hiddenSize: c.dModel, layers: c.layers };
}

/**
 * wgrad's reference GPT (nn/gpt.ts) as a family: byte vocabulary, its own tensor names
 * (`embed.weight`, `layers.0.attn.q_proj.weight`, ...), classifier head `classifier`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wgradGptFamily } from "./wgrad_gpt.ts";
 * const c = wgradGptFamily.configFromJson(
 *   { vocabSize: 16, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1, head: "lm" }, "x");
 * const g = wgradGptFamily.graph(c, { batch: 1, seqLen: 4, task: "classification" });
 * assert.deepEqual(g.outputs.logits.shape, [1, 2]);
 * ```
 */
export const wgradGptFamily: ModelFamily = {
  name: "wgrad-gpt",
  configFromJson: wgradConfig,
  graph(config, options) {
    const c = config as unknown as GptConfig;
    return gptGraph({
      vocabSize: c.vocabSize,
      maxSeqLen: c.maxSeqLen,
      dModel: c.dModel,
      heads: c.heads,
      layers: c.layers,
      mlpHidden: c.mlpHidden,
      head: options.task === "lm" ? "lm" : "classifier",
      numClasses: options.numClasses,
      dropout: options.dropout,
    }, { batch: options.batch, seqLen: options.seqLen });
  },
  storedLayout: () => ({ transposed: false }),
  classificationHead: "classifier",
  defaultTargets: ["q_proj", "v_proj"],
  forward,
  kvLayout: (config) => ({
    layers: config.layers,
    kvHeads: (config as unknown as GptConfig).heads,
    headDim: config.hiddenSize / (config as unknown as GptConfig).heads,
  }),
};
