/**
 * The reference model (docs/ARCHITECTURE.md §9): a GPT-style pre-LayerNorm decoder with
 * learned positions, causal multi-head attention and a GELU MLP, ending in a
 * language-model head or a sequence classifier on the last real token.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import {
  type InputSpec,
  iota,
  nextStream,
  param,
  type ParamInit,
  scope,
  type Tensor,
  trace,
} from "../compiler/trace.ts";
import { causalSelfAttention, layerNorm, linear, mlp } from "./layers.ts";

/** The shape of a GPT model. */
export interface GptConfig {
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Longest sequence T (rows of `pos.weight`). */
  readonly maxSeqLen: number;
  /** Model width D. */
  readonly dModel: number;
  /** Attention heads (divides D). */
  readonly heads: number;
  /** Number of blocks L. */
  readonly layers: number;
  /** `lm` (next-token loss) or `classifier` (sequence classification). */
  readonly head: "lm" | "classifier";
  /** Classes of the classifier head (default 2). */
  readonly numClasses?: number;
  /** Dropout on the residual branches during training (default 0: none, no seed input). */
  readonly dropout?: number;
  /** MLP width (default 4·D). */
  readonly mlpHidden?: number;
}

/** Sizes of one traced step. */
export interface GptShape {
  /** Batch size B. */
  readonly batch: number;
  /** Sequence length T (≤ maxSeqLen). */
  readonly seqLen: number;
}

const WEIGHT_INIT: ParamInit = { kind: "normal", std: 0.02 };

function checkConfig(c: GptConfig, s: GptShape): void {
  const positive = (v: number | undefined, what: string) => {
    if (v === undefined || !Number.isInteger(v) || v < 1) {
      throw new Error(`gpt: ${what} must be a positive integer, got ${v}`);
    }
  };
  positive(c.vocabSize, "vocabSize");
  positive(c.maxSeqLen, "maxSeqLen");
  positive(c.dModel, "dModel");
  positive(c.heads, "heads");
  positive(c.layers, "layers");
  positive(s.batch, "batch");
  positive(s.seqLen, "seqLen");
  if (s.seqLen > c.maxSeqLen) {
    throw new Error(`gpt: seqLen ${s.seqLen} exceeds maxSeqLen ${c.maxSeqLen}`);
  }
  if (c.dModel % c.heads !== 0) {
    throw new Error(`gpt: ${c.heads} heads do not divide dModel ${c.dModel}`);
  }
  if (c.head !== "lm" && c.head !== "classifier") throw new Error(`gpt: unknown head ${c.head}`);
}

/** The inputs a GPT graph takes, in order. */
export function gptInputs(config: GptConfig, shape: GptShape): InputSpec[] {
  const { batch: b, seqLen: t } = shape;
  const specs: InputSpec[] = [{ name: "tokens", shape: [b, t], dtype: "i32" }];
  if (config.head === "lm") specs.push({ name: "targets", shape: [b, t], dtype: "i32" });
  else {
    specs.push({ name: "labels", shape: [b], dtype: "i32" });
    specs.push({ name: "lastIndex", shape: [b], dtype: "i32" });
  }
  if ((config.dropout ?? 0) > 0) specs.push({ name: "dropoutSeed", shape: [], dtype: "u32" });
  return specs;
}

/** The hidden states `[B, T, D]` after the final LayerNorm. */
export function gptBody(config: GptConfig, tokens: Tensor, dropoutSeed?: Tensor): Tensor {
  const t = tokens.shape[1];
  const d = config.dModel;
  const p = config.dropout ?? 0;
  const drop = (x: Tensor) => (p > 0 && dropoutSeed ? x.dropout(p, dropoutSeed, nextStream()) : x);
  const embed = scope("embed", () => param("weight", [config.vocabSize, d], { init: WEIGHT_INIT }));
  const pos = scope("pos", () => param("weight", [config.maxSeqLen, d], { init: WEIGHT_INIT }));
  let h = embed.gather(tokens).add(pos.narrow(0, 0, t).reshape([1, t, d]));
  for (let i = 0; i < config.layers; i++) {
    scope(`layers.${i}`, () => {
      const a = causalSelfAttention(layerNorm(h, "ln1"), "attn", {
        heads: config.heads,
        init: WEIGHT_INIT,
      });
      h = h.add(drop(a));
      const m = mlp(layerNorm(h, "ln2"), "mlp", config.mlpHidden ?? 4 * d, WEIGHT_INIT);
      h = h.add(drop(m));
    });
  }
  return layerNorm(h, "ln_f");
}

/**
 * Traces the model's training graph: outputs `loss` (mean cross-entropy) and
 * `logits` (`[B, T, V]` for `lm`, `[B, C]` for `classifier`). Inputs are
 * `tokens` (and `targets`, or `labels` and `lastIndex`, and `dropoutSeed`
 * when dropout is on); negative targets are ignored.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { gptGraph } from "./gpt.ts";
 * const g = gptGraph(
 *   { vocabSize: 16, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1, head: "lm" },
 *   { batch: 2, seqLen: 4 },
 * );
 * deepStrictEqual(g.outputs.logits.shape, [2, 4, 16]);
 * ```
 */
export function gptGraph(config: GptConfig, shape: GptShape): Graph {
  checkConfig(config, shape);
  const { batch: b, seqLen: t } = shape;
  return trace(
    (...inputs: Tensor[]) => {
      const [tokens] = inputs;
      const seed = (config.dropout ?? 0) > 0 ? inputs[inputs.length - 1] : undefined;
      const h = gptBody(config, tokens, seed);
      if (config.head === "lm") {
        const targets = inputs[1];
        const logits = linear(h, "lm_head", config.vocabSize, { bias: false, init: WEIGHT_INIT });
        const losses = logits.crossEntropy(targets);
        const counted = targets.ge(0).cast("f32").sum().maximum(1);
        return { loss: losses.sum().div(counted), logits };
      }
      const [, labels, lastIndex] = inputs;
      const rows = iota([b], 0).mul(t).add(lastIndex);
      const last = h.reshape([b * t, config.dModel]).gather(rows);
      const logits = linear(last, "classifier", config.numClasses ?? 2, { init: WEIGHT_INIT });
      return { loss: logits.crossEntropy(labels).mean(), logits };
    },
    gptInputs(config, shape),
    { model: "gpt", config, shape },
  );
}
