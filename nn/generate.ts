/**
 * Text generation with a K/V cache: a prefill graph runs the prompt once and leaves every layer's
 * keys and values in cache params; a one-token decode graph then writes the new token's K/V into
 * the cache in place (as a training step updates its params, through `meta.updates`) and attends
 * over the cache, so the cache stays in GPU buffers between steps and a step costs the same at
 * every position. Sampling (greedy at temperature 0, else temperature, top-k, top-p) is on the
 * host from the last position's logits.
 *
 * @module
 */
import { type BackendChoice, compile } from "../backends/compile.ts";
import type { Graph } from "../compiler/ir.ts";
import { makeGraph } from "../compiler/ir.ts";
import { iota, param, type Tensor, trace, where } from "../compiler/trace.ts";
import { mulberry32 } from "../data/random.ts";
import type { Executable } from "../backends/executable.ts";
import type { KvHook, LoadedModel } from "./families.ts";

/**
 * Options of {@link generate}.
 *
 * @example
 * ```ts
 * import type { GenerateOptions } from "./generate.ts";
 * const o: GenerateOptions = { prompt: "Hello", maxNewTokens: 8, temperature: 0 };
 * ```
 */
export interface GenerateOptions {
  /** Text to continue (encoded with the model's tokenizer, special tokens included). */
  readonly prompt: string;
  /** Token ids to continue instead of `prompt`. */
  readonly promptIds?: readonly number[];
  /** Most tokens to add. */
  readonly maxNewTokens: number;
  /** 0: greedy (argmax); otherwise logits are divided by it before sampling. */
  readonly temperature: number;
  /** Sample only among the k most likely tokens. */
  readonly topK?: number;
  /** Sample only among the most likely tokens whose probabilities add up to p. */
  readonly topP?: number;
  /** Sampling seed (default 0). */
  readonly seed?: number;
  /** Where the graphs run (default webgpu). */
  readonly backend?: BackendChoice;
  /** Stop after the tokenizer's end-of-sequence token (default true). */
  readonly stopAtEos?: boolean;
  /** Called with each new piece of text as soon as it decodes to whole characters. */
  readonly onToken?: (text: string, id: number) => void;
}

/**
 * What {@link generate} returns.
 *
 * @example
 * ```ts
 * import type { GenerateResult } from "./generate.ts";
 * const show = (r: GenerateResult) => `${r.ids.length} tokens at ${r.tokensPerS.toFixed(1)}/s`;
 * ```
 */
export interface GenerateResult {
  /** The generated text (the prompt not included). */
  readonly text: string;
  /** The generated token ids. */
  readonly ids: number[];
  /** The prompt's token ids. */
  readonly promptIds: number[];
  /** Generated tokens per second of decoding (prefill and compilation excluded). */
  readonly tokensPerS: number;
  /** Milliseconds of the prefill run (compilation excluded). */
  readonly prefillMs: number;
  /** Milliseconds of each decode step, in order. */
  readonly stepMs: number[];
}

const cacheName = (kind: "k" | "v", layer: number) => `kv_cache.${layer}.${kind}`;

/**
 * The prefill graph: `tokens [1,P]` → `logits [V]` of the last position, and every layer's K/V
 * as outputs `cache:kv_cache.L.k/v [1,Hkv,S,dh]` (positions P.. zero) for the decode graph.
 */
function prefillGraph(model: LoadedModel, promptLen: number, cacheLen: number): Graph {
  const { family, config } = model;
  const caches: Record<string, Tensor> = {};
  const g = trace((tokens: Tensor) => {
    const hook: KvHook = (layer, k, v) => {
      const pad = (x: Tensor) => x.pad([0, 0, 0, 0], [0, 0, cacheLen - promptLen, 0]);
      caches[`cache:${cacheName("k", layer)}`] = pad(k);
      caches[`cache:${cacheName("v", layer)}`] = pad(v);
      return { k, v, offset: 0 };
    };
    const f = family.forward(config, tokens, iota([promptLen], 0), hook);
    const last = f.hidden.narrow(1, promptLen - 1, 1);
    return { logits: f.lmHead(last).reshape([config.vocabSize]), ...caches };
  }, [{ name: "tokens", shape: [1, promptLen], dtype: "i32" }]);
  return g;
}

/**
 * The decode graph: `token [1,1]` at `position [1]` → `logits [V]`; each layer's new K/V replaces
 * row `position` of its cache param (an in-place update) and attention runs over the whole cache,
 * masked to positions ≤ `position`.
 */
function decodeGraph(model: LoadedModel, cacheLen: number): Graph {
  const { family, config } = model;
  const { layers, kvHeads, headDim } = family.kvLayout(config);
  const shape = [1, kvHeads, cacheLen, headDim];
  const updates: Record<string, Tensor> = {};
  const g = trace((token: Tensor, position: Tensor) => {
    const row = iota(shape, 2).eq(position.reshape([1, 1, 1, 1]));
    // Declared here, outside the family's module scopes, so the names stay kv_cache.L.k/v.
    const params = new Map<string, Tensor>();
    for (let layer = 0; layer < layers; layer++) {
      for (const kind of ["k", "v"] as const) {
        const name = cacheName(kind, layer);
        params.set(name, param(name, shape, { role: "frozen" }));
      }
    }
    const hook: KvHook = (layer, k, v) => {
      const write = (kind: "k" | "v", x: Tensor) => {
        const name = cacheName(kind, layer);
        const next = where(row, x, params.get(name)!);
        updates[`update:${name}`] = next;
        return next;
      };
      return { k: write("k", k), v: write("v", v), offset: position };
    };
    const f = family.forward(config, token, position, hook);
    return { logits: f.lmHead(f.hidden).reshape([config.vocabSize]), ...updates };
  }, [{ name: "token", shape: [1, 1], dtype: "i32" }, {
    name: "position",
    shape: [1],
    dtype: "i32",
  }]);
  return withUpdates(g);
}

/** Marks each `update:NAME` output as replacing param NAME after every run. */
function withUpdates(g: Graph): Graph {
  const updates: Record<string, string> = {};
  for (const out of Object.keys(g.outputs)) {
    if (out.startsWith("update:")) updates[out] = out.slice("update:".length);
  }
  return makeGraph({ ...g, meta: { ...g.meta, updates } });
}

function setWeights(exe: Executable, graph: Graph, model: LoadedModel): void {
  const values: Record<string, Float32Array> = {};
  for (const p of graph.params) {
    const name = p.name!;
    if (name.startsWith("kv_cache.")) continue;
    const w = model.weights[name];
    if (!w) throw new Error(`generate: the model has no weight "${name}"`);
    values[name] = w;
  }
  exe.setParams(values);
}

/**
 * Picks the next token from `logits`: argmax at temperature 0 (the first of equal maxima, as
 * torch.argmax), else a sample from softmax(logits / temperature) restricted to the top-k tokens
 * and then to the smallest set whose probability reaches top-p (transformers' order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pickToken } from "./generate.ts";
 * assert.equal(pickToken([0.1, 2, 2, -1], { temperature: 0 }, Math.random), 1);
 * assert.equal(pickToken([0, 5, 1], { temperature: 1, topK: 1 }, Math.random), 1);
 * ```
 */
export function pickToken(
  logits: ArrayLike<number>,
  options: { temperature: number; topK?: number; topP?: number },
  random: () => number,
): number {
  const n = logits.length;
  if (options.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
    logits[b] - logits[a] || a - b
  );
  const k = Math.min(n, Math.max(1, options.topK ?? n));
  let kept = order.slice(0, k);
  const scaled = kept.map((i) => logits[i] / options.temperature);
  const top = scaled[0];
  let probs = scaled.map((s) => Math.exp(s - top));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  if (options.topP !== undefined && options.topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length && (keep === 0 || cum < options.topP)) cum += probs[keep++];
    kept = kept.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  let r = random();
  for (let i = 0; i < kept.length; i++) {
    r -= probs[i];
    if (r < 0) return kept[i];
  }
  return kept[kept.length - 1];
}

function checkOptions(model: LoadedModel, o: GenerateOptions, promptLen: number): void {
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) {
    throw new Error(`generate: max new tokens must be a positive integer, got ${o.maxNewTokens}`);
  }
  if (!(o.temperature >= 0)) {
    throw new Error(`generate: temperature must be ≥ 0, got ${o.temperature}`);
  }
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 1)) {
    throw new Error(`generate: top-k must be a positive integer, got ${o.topK}`);
  }
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) {
    throw new Error(`generate: top-p must be in (0, 1], got ${o.topP}`);
  }
  if (promptLen < 1) throw new Error("generate: the prompt encodes to no tokens");
  if (promptLen + o.maxNewTokens > model.config.maxSeqLen) {
    throw new Error(
      `generate: prompt (${promptLen} tokens) + max new tokens (${o.maxNewTokens}) exceeds the ` +
        `model's ${model.config.maxSeqLen} positions`,
    );
  }
}

/**
 * Continues a prompt with a K/V cache; see the module doc.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadModel } from "./families.ts";
 * import { generate } from "./generate.ts";
 * const model = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
 * const r = await generate(model, { prompt: "Free ", maxNewTokens: 4, temperature: 0, backend: "cpu" });
 * assert.equal(r.ids.length, 4);
 * ```
 */
export async function generate(
  model: LoadedModel,
  options: GenerateOptions,
): Promise<GenerateResult> {
  const tok = model.tokenizer;
  let promptIds = options.promptIds ? [...options.promptIds] : tok.encode(options.prompt);
  if (promptIds.length === 0 && tok.bosId !== undefined) promptIds = [tok.bosId];
  checkOptions(model, options, promptIds.length);
  const backend = options.backend ?? "webgpu";
  const cacheLen = promptIds.length + options.maxNewTokens;
  const random = mulberry32(options.seed ?? 0);
  const stopAtEos = options.stopAtEos ?? true;

  const pre = prefillGraph(model, promptIds.length, cacheLen);
  const dec = decodeGraph(model, cacheLen);
  const [preExe, decExe] = await Promise.all([
    compile(pre, { backend }),
    compile(dec, { backend }),
  ]);
  try {
    setWeights(preExe, pre, model);
    setWeights(decExe, dec, model);
    const t0 = performance.now();
    const cacheOutputs = Object.keys(pre.outputs).filter((o) => o.startsWith("cache:"));
    const run = await preExe.run({ tokens: promptIds }, { read: ["logits", ...cacheOutputs] });
    let logits = await run.read("logits");
    // The prompt's K/V move into the decode executable's cache params once; after that the
    // cache is only written on the device.
    const caches: Record<string, Float32Array> = {};
    for (const o of cacheOutputs) {
      caches[o.slice("cache:".length)] = Float32Array.from(await run.read(o));
    }
    decExe.setParams(caches);
    const prefillMs = performance.now() - t0;

    const ids: number[] = [];
    const stepMs: number[] = [];
    let emitted = "";
    const decodeStart = performance.now();
    for (let i = 0; i < options.maxNewTokens; i++) {
      const id = pickToken(logits, options, random);
      ids.push(id);
      if (options.onToken) {
        const text = tok.decode(ids, { skipSpecialTokens: true });
        // Hold back a trailing partial character (a byte token mid-UTF-8 sequence).
        if (!text.endsWith("\uFFFD") && text.startsWith(emitted)) {
          if (text.length > emitted.length) options.onToken(text.slice(emitted.length), id);
          emitted = text;
        }
      }
      if (i === options.maxNewTokens - 1 || (stopAtEos && id === tok.eosId)) break;
      const s = performance.now();
      const step = await decExe.run(
        { token: [id], position: [promptIds.length + i] },
        { read: ["logits"] },
      );
      logits = await step.read("logits");
      stepMs.push(performance.now() - s);
    }
    const seconds = (performance.now() - decodeStart) / 1000;
    const text = tok.decode(ids, { skipSpecialTokens: true });
    if (options.onToken && text.length > emitted.length && text.startsWith(emitted)) {
      options.onToken(text.slice(emitted.length), ids[ids.length - 1]);
    }
    return {
      text,
      ids,
      promptIds,
      tokensPerS: seconds > 0 ? ids.length / seconds : Infinity,
      prefillMs,
      stepMs,
    };
  } finally {
    preExe.destroy();
    decExe.destroy();
  }
}
