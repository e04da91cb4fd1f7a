/**
 * Pieces the Hugging Face families share: reading config.json fields with errors that name them,
 * the LM / sequence-classification heads, and attention over a (possibly cached) K/V.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import {
  type InputSpec,
  iota,
  nextStream,
  param,
  scope,
  type Tensor,
  trace,
  where,
} from "../compiler/trace.ts";
import type { Forward, GraphOptions, KvHook, ModelConfig } from "./family_types.ts";
import { linear } from "./layers.ts";

/** Reads typed fields of a config.json object; errors name the file and the field. */
export class ConfigReader {
  constructor(readonly json: Record<string, unknown>, readonly where: string) {}

  static of(json: unknown, where: string): ConfigReader {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new Error(`${where}: expected a JSON object`);
    }
    return new ConfigReader(json as Record<string, unknown>, where);
  }

  fail(field: string, why: string): never {
    throw new Error(`${this.where}: field "${field}" ${why}`);
  }

  int(field: string, fallback?: number): number {
    const v = this.json[field] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      this.fail(field, `must be a positive integer, got ${JSON.stringify(this.json[field])}`);
    }
    return v;
  }

  num(field: string, fallback?: number): number {
    const v = this.json[field] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.fail(field, `must be a number, got ${JSON.stringify(this.json[field])}`);
    }
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.json[field] ?? fallback;
    if (typeof v !== "boolean") this.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A token id, or undefined when absent or null (a list takes its first entry, as HF does). */
  tokenId(field: string): number | undefined {
    let v = this.json[field];
    if (Array.isArray(v)) v = v[0];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      this.fail(field, `must be a token id, got ${JSON.stringify(this.json[field])}`);
    }
    return v;
  }
}

/** The graph inputs of a task. */
export function taskInputs(options: GraphOptions): InputSpec[] {
  const { batch: b, seqLen: t } = options;
  const specs: InputSpec[] = [{ name: "tokens", shape: [b, t], dtype: "i32" }];
  if (options.task === "lm") specs.push({ name: "targets", shape: [b, t], dtype: "i32" });
  else {
    specs.push({ name: "labels", shape: [b], dtype: "i32" });
    specs.push({ name: "lastIndex", shape: [b], dtype: "i32" });
  }
  if ((options.dropout ?? 0) > 0) specs.push({ name: "dropoutSeed", shape: [], dtype: "u32" });
  return specs;
}

/** Checks the graph sizes against the config. */
export function checkOptions(family: string, config: ModelConfig, options: GraphOptions): void {
  for (const [k, v] of [["batch", options.batch], ["seqLen", options.seqLen]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`${family}: ${k} must be a positive integer`);
    }
  }
  if (options.seqLen > config.maxSeqLen) {
    throw new Error(
      `${family}: seqLen ${options.seqLen} exceeds the ${config.maxSeqLen} positions`,
    );
  }
  if (options.task !== "lm" && options.task !== "classification") {
    throw new Error(`${family}: unknown task ${options.task}`);
  }
  const p = options.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`${family}: dropout must be in [0, 1), got ${p}`);
}

/**
 * Traces a task graph from `forward` (tokens → final hidden states [B,T,D] and the LM head) with
 * the task's loss: mean cross-entropy over non-negative targets, or the `score` head (no
 * bias) on the hidden state at `lastIndex`, as transformers' *ForSequenceClassification.
 */
export function traceTask(
  options: GraphOptions,
  meta: Record<string, unknown>,
  forward: (tokens: Tensor, drop?: (x: Tensor) => Tensor) => Forward,
): Graph {
  const { batch: b, seqLen: t } = options;
  const p = options.dropout ?? 0;
  return trace(
    (...inputs: Tensor[]) => {
      const seed = p > 0 ? inputs[inputs.length - 1] : undefined;
      const drop = seed ? (x: Tensor) => x.dropout(p, seed, nextStream()) : undefined;
      const { hidden: h, lmHead } = forward(inputs[0], drop);
      if (options.task === "lm") {
        const targets = inputs[1];
        const logits = lmHead(h);
        const counted = targets.ge(0).cast("f32").sum().maximum(1);
        return { loss: logits.crossEntropy(targets).sum().div(counted), logits };
      }
      const [, labels, lastIndex] = inputs;
      const rows = iota([b], 0).mul(t).add(lastIndex);
      const last = h.reshape([b * t, h.shape[2]]).gather(rows);
      const logits = linear(last, "score", options.numClasses ?? 2, { bias: false });
      return { loss: logits.crossEntropy(labels).mean(), logits };
    },
    taskInputs(options),
    meta,
  );
}

/**
 * Scaled-dot-product attention of `q [B,H,Tq,dh]` over `k, v [B,Hkv,Tk,dh]` (grouped-query: each
 * K/V head serves H/Hkv query heads, as transformers' repeat_kv), causal with query i at absolute
 * position `offset + i`. Returns `[B,Tq,H·dh]`.
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, offset: Tensor | number = 0): Tensor {
  const [b, h, tq, dh] = q.shape;
  const [, hkv, tk] = k.shape;
  const rep = h / hkv;
  const expand = (x: Tensor) =>
    rep === 1 ? x : x.reshape([b, hkv, 1, tk, dh]).broadcastTo([b, hkv, rep, tk, dh])
      .reshape([b, h, tk, dh]);
  const scores = q.matmul(expand(k).T).mul(1 / Math.sqrt(dh));
  const rowPos = iota([tq, tk], 0).add(offset);
  const causal = rowPos.ge(iota([tq, tk], 1));
  const probs = where(causal, scores, -1e9).softmax(-1);
  return probs.matmul(expand(v)).permute([0, 2, 1, 3]).reshape([b, tq, h * dh]);
}

/** The training hook: attend over this call's own keys and values. */
export const noCache: KvHook = (_layer, k, v) => ({ k, v, offset: 0 });

/** `[B,T,H·dh]` → `[B,H,T,dh]`. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, t, d] = x.shape;
  return x.reshape([b, t, heads, d / heads]).permute([0, 2, 1, 3]);
}

/** A family's forward pass: tokens and their positions → hidden states and the LM head. */
export type ForwardFn = (
  config: ModelConfig,
  tokens: Tensor,
  positions: Tensor,
  kv: KvHook,
  drop?: (x: Tensor) => Tensor,
) => Forward;

/**
 * `graph` of a decoder family: the task graph of `forward` over positions
 * `0..seqLen-1` with no K/V cache, checked and named as the family.
 */
export function decoderGraph(
  family: string,
  forward: ForwardFn,
): (config: ModelConfig, options: GraphOptions) => Graph {
  return (config, options) => {
    checkOptions(family, config, options);
    return traceTask(
      options,
      { model: family, config, shape: { batch: options.batch, seqLen: options.seqLen } },
      (tokens, drop) => forward(config, tokens, iota([options.seqLen], 0), noCache, drop),
    );
  };
}

/**
 * The LM head of a Hugging Face decoder: the token embedding itself when
 * the weights are tied, else its own `lm_head.weight` `[vocab, d]`.
 */
export function lmHeadOf(
  tied: boolean,
  embedding: Tensor,
  vocabSize: number,
  d: number,
): (x: Tensor) => Tensor {
  return (x) =>
    tied
      ? x.matmul(embedding.T)
      // Called from the task's top level, so the name is "lm_head.weight", outside the body's scope.
      : scope("lm_head", () => x.matmul(param("weight", [vocabSize, d]).T));
}
