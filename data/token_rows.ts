/**
 * Tokenized rows and seeded, resumable batches of them, for any tokenizer
 * (the byte tokenizer or a Hugging Face one): classification rows read the
 * state at their last real token; language-modelling rows count the loss on
 * the completion only (prompt and padding targets are -1, which the graphs
 * ignore).
 *
 * @module
 */
import type { ClassificationExample } from "./classification_batches.ts";
import type { LmDocument } from "./files.ts";
import { deriveSeed, permutation } from "./random.ts";
import { type BatchState, checkPositiveInt, Cursor } from "./_batching.ts";

/**
 * What rows need of a tokenizer (a subset of `Tokenizer` in hf_tokenizer.ts).
 *
 * @example
 * ```ts
 * import type { RowTokenizer } from "./token_rows.ts";
 * const chars: RowTokenizer = { encode: (t) => [...t].map((c) => c.charCodeAt(0) % 64), vocabSize: 64 };
 * ```
 */
export interface RowTokenizer {
  /** Token ids of `text`; `addSpecialTokens` (default true) adds the tokenizer's own (BOS). */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Number of ids. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, if any. */
  readonly bosId?: number;
  /** End-of-sequence id, if any (appended to LM documents). */
  readonly eosId?: number;
  /** Padding id, if any. */
  readonly padId?: number;
}

/** One tokenized row: up to `seqLen` tokens and its label or next-token targets. */
export interface TokenRow {
  /** Token ids (at most seqLen). */
  readonly tokens: readonly number[];
  /** LM: next token per position, -1 where not counted. */
  readonly targets?: readonly number[];
  /** Classification: class index (-1 when unknown). */
  readonly label?: number;
}

/**
 * Classification rows: each text's tokens, cut to `seqLen` (the start kept).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteTokenizer } from "./hf_tokenizer.ts";
 * import { classificationRows } from "./token_rows.ts";
 * assert.deepEqual(classificationRows([{ text: "abc", label: 1 }], byteTokenizer(), 2), [{ tokens: [97, 98], label: 1 }]);
 * ```
 */
export function classificationRows(
  examples: readonly ClassificationExample[],
  tokenizer: RowTokenizer,
  seqLen: number,
): TokenRow[] {
  return examples.map((e) => {
    // Special tokens as the tokenizer adds them (Llama's BOS, none for GPT-2), as transformers does.
    let tokens = tokenizer.encode(e.text).slice(0, seqLen);
    // A text that tokenizes to nothing still needs one position to classify.
    if (tokens.length === 0) tokens = [tokenizer.eosId ?? tokenizer.padId ?? 0];
    return { tokens, label: e.label };
  });
}

/**
 * Language-modelling rows: the prompt with the tokenizer's special tokens
 * (Llama's BOS; none for GPT-2 or the byte tokenizer), the completion, and
 * EOS where the tokenizer has one, cut into windows of `seqLen + 1` tokens
 * that overlap by one; targets are the next tokens of the completion (and
 * EOS) only. Windows without a counted target are dropped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteTokenizer } from "./hf_tokenizer.ts";
 * import { lmRows } from "./token_rows.ts";
 * const [row] = lmRows([{ prompt: "Q", completion: "A" }], byteTokenizer(), 8);
 * assert.deepEqual(row.tokens, [81, 65]); // Q A
 * assert.deepEqual(row.targets, [65, 258]); // A after Q, then EOS
 * ```
 */
export function lmRows(
  documents: readonly LmDocument[],
  tokenizer: RowTokenizer,
  seqLen: number,
): TokenRow[] {
  const rows: TokenRow[] = [];
  for (const d of documents) {
    const prompt = tokenizer.encode(d.prompt);
    const completion = tokenizer.encode(d.completion, { addSpecialTokens: false });
    const eos = tokenizer.eosId === undefined ? [] : [tokenizer.eosId];
    const ids = [...prompt, ...completion, ...eos];
    const firstCounted = prompt.length; // index of the first token the loss predicts
    for (let s = 0; s + 1 < ids.length; s += seqLen) {
      const window = ids.slice(s, s + seqLen + 1);
      const tokens = window.slice(0, -1);
      const targets = tokens.map((_, j) => s + j + 1 >= firstCounted ? window[j + 1] : -1);
      if (targets.some((t) => t >= 0)) rows.push({ tokens, targets });
    }
  }
  return rows;
}

/** Options of {@link RowBatcher}. */
export interface RowBatchOptions {
  /** Rows per batch (B). */
  readonly batchSize: number;
  /** Tokens per row (T). */
  readonly seqLen: number;
  /** Token id of padding positions (must be a valid id of the model). */
  readonly padId: number;
  /** Seed of the per-epoch shuffles (default 0). */
  readonly seed?: number;
  /** Passes over the rows (default Infinity). */
  readonly epochs?: number;
}

/** Feeds of one batch: `tokens` and `targets` (LM) or `tokens`, `labels`, `lastIndex`. */
export type RowFeeds = Record<string, Int32Array>;

/**
 * Packs rows `[start, start + batchSize)` of `order` (wrapping around) into feeds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packRows } from "./token_rows.ts";
 * const f = packRows([{ tokens: [5, 6], label: 1 }], [0], 0, { batchSize: 1, seqLen: 3, padId: 0 });
 * assert.deepEqual([...f.tokens], [5, 6, 0]);
 * assert.deepEqual([...f.lastIndex], [1]);
 * ```
 */
export function packRows(
  rows: readonly TokenRow[],
  order: ArrayLike<number>,
  start: number,
  options: { batchSize: number; seqLen: number; padId: number },
  count = options.batchSize,
): RowFeeds {
  const { batchSize: b, seqLen: t, padId } = options;
  const lm = rows[0]?.targets !== undefined;
  const tokens = new Int32Array(b * t).fill(padId);
  const targets = new Int32Array(lm ? b * t : 0).fill(-1);
  const labels = new Int32Array(lm ? 0 : b);
  const lastIndex = new Int32Array(lm ? 0 : b);
  for (let i = 0; i < Math.min(b, count); i++) {
    const row = rows[order[(start + i) % order.length]];
    const n = Math.min(row.tokens.length, t);
    for (let j = 0; j < n; j++) tokens[i * t + j] = row.tokens[j];
    if (lm) { for (let j = 0; j < n; j++) targets[i * t + j] = row.targets![j]; }
    else {
      labels[i] = Math.max(0, row.label ?? 0);
      lastIndex[i] = Math.max(0, n - 1);
    }
  }
  return lm ? { tokens, targets } : { tokens, labels, lastIndex };
}

/**
 * Seeded, resumable, endless batches of rows: each epoch is a fresh
 * permutation; a last partial batch wraps around to the epoch's start, so
 * even fewer rows than `batchSize` make full batches.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { RowBatcher } from "./token_rows.ts";
 * const rows = [{ tokens: [1], label: 0 }, { tokens: [2], label: 1 }, { tokens: [3], label: 1 }];
 * const it = new RowBatcher(rows, { batchSize: 2, seqLen: 2, padId: 0, seed: 1 });
 * it.next();
 * const again = RowBatcher.fromState(rows, { batchSize: 2, seqLen: 2, padId: 0, seed: 1 }, it.state);
 * strictEqual(again.next().value.tokens.length, 4);
 * ```
 */
export class RowBatcher implements Iterator<RowFeeds> {
  readonly #cursor: Cursor;
  #permEpoch = -1;
  #perm: Int32Array = new Int32Array(0);

  /** Batches over `rows`, at epoch 0, batch 0. */
  constructor(readonly rows: readonly TokenRow[], readonly options: RowBatchOptions) {
    checkPositiveInt("batchSize", options.batchSize);
    checkPositiveInt("seqLen", options.seqLen);
    if (rows.length === 0) throw new Error("no rows to batch");
    const perEpoch = Math.ceil(rows.length / options.batchSize);
    this.#cursor = new Cursor(options.seed ?? 0, options.epochs ?? Infinity, perEpoch);
  }

  /** An iterator positioned at `state` (from `it.state`). */
  static fromState(
    rows: readonly TokenRow[],
    options: RowBatchOptions,
    state: BatchState,
  ): RowBatcher {
    const it = new RowBatcher(rows, { ...options, seed: options.seed ?? state.seed });
    it.#cursor.restore(state);
    return it;
  }

  /** Position of the next batch (JSON, for checkpoints). */
  get state(): BatchState {
    return this.#cursor.state;
  }

  /** The next batch's feeds. */
  next(): IteratorResult<RowFeeds> {
    if (this.#cursor.done) return { done: true, value: undefined };
    const { epoch, index } = this.#cursor.advance();
    if (epoch !== this.#permEpoch) {
      this.#perm = permutation(this.rows.length, deriveSeed(this.#cursor.seed, epoch));
      this.#permEpoch = epoch;
    }
    return {
      done: false,
      value: packRows(this.rows, this.#perm, index * this.options.batchSize, this.options),
    };
  }
}

/**
 * Eval batches over rows in order; the last one is padded and reports how
 * many of its rows are real.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { rowEvalBatches } from "./token_rows.ts";
 * const rows = [{ tokens: [1], label: 0 }, { tokens: [2], label: 1 }, { tokens: [3], label: 1 }];
 * deepStrictEqual([...rowEvalBatches(rows, { batchSize: 2, seqLen: 2, padId: 0 })].map((b) => b.rows), [2, 1]);
 * ```
 */
export function* rowEvalBatches(
  rows: readonly TokenRow[],
  options: { batchSize: number; seqLen: number; padId: number },
): Generator<{ feeds: RowFeeds; rows: number }> {
  const order = Array.from(rows, (_, i) => i);
  for (let s = 0; s < rows.length; s += options.batchSize) {
    const count = Math.min(options.batchSize, rows.length - s);
    yield { feeds: packRows(rows, order, s, options, count), rows: count };
  }
}
