/**
 * Seeded, resumable next-token batches for byte-level language modelling.
 *
 * @module
 */
import { BOS, EOS, utf8Bytes } from "./tokenizer.ts";
import { deriveSeed, mulberry32, shuffleInPlace } from "./random.ts";
import { type BatchState, checkPositiveInt, Cursor } from "./_batching.ts";

/**
 * Options of {@linkcode lmBatches}.
 *
 * @example
 * ```ts
 * import type { LmBatchOptions } from "./batches.ts";
 * const opts: LmBatchOptions = { batchSize: 32, seqLen: 64, seed: 7 };
 * ```
 */
export interface LmBatchOptions {
  /** Rows per batch (B). */
  batchSize: number;
  /** Tokens per row (T). */
  seqLen: number;
  /** Base seed. Default 0. */
  seed?: number;
  /** Passes over the corpus. Default `Infinity` (an endless stream). */
  epochs?: number;
  /** Random window phase and order per epoch. Default true. */
  shuffle?: boolean;
}

/**
 * One language-modelling batch: `targets[b*T + t]` is the token following
 * `tokens[b*T + t]` in the corpus.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { lmBatches, type LmBatch } from "./batches.ts";
 * const b: LmBatch = lmBatches(["anna", "bob"], { batchSize: 1, seqLen: 4 }).next().value!;
 * deepStrictEqual(b.targets.subarray(0, 3), b.tokens.subarray(1)); // each target is the next token
 * ```
 */
export interface LmBatch {
  /** `[B*T]` input token ids. */
  tokens: Int32Array;
  /** `[B*T]` next-token targets. */
  targets: Int32Array;
  /** Rows (B). */
  batchSize: number;
  /** Tokens per row (T). */
  seqLen: number;
  /** Position this batch was produced at. */
  position: BatchState;
}

/**
 * Concatenates texts into one token stream: `BOS bytes… EOS` per text.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { lmCorpus } from "./batches.ts";
 * deepStrictEqual(lmCorpus(["ab"]), new Int32Array([257, 97, 98, 258])); // BOS "a" "b" EOS
 * ```
 */
export function lmCorpus(texts: readonly string[]): Int32Array {
  const parts = texts.map(utf8Bytes);
  const out = new Int32Array(parts.reduce((n, p) => n + p.length + 2, 0));
  let o = 0;
  for (const p of parts) {
    out[o++] = BOS;
    out.set(p, o);
    o += p.length;
    out[o++] = EOS;
  }
  return out;
}

/**
 * Seeded, resumable iterator of {@linkcode LmBatch}es over a concatenated
 * corpus. Each epoch cuts the corpus into `W = floor((N - T) / T)`
 * non-overlapping windows of `T + 1` tokens starting at `phase + k*T`
 * (`phase` random in `[0, T)` per epoch), shuffles them, and yields
 * `floor(W / B)` full batches. Create it with {@linkcode lmBatches} or
 * {@linkcode LmBatcher.fromState}.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { LmBatcher } from "./batches.ts";
 * const it = new LmBatcher(["anna", "bob", "carla"], { batchSize: 2, seqLen: 4, seed: 1 });
 * const { tokens, targets } = it.next().value!;
 * strictEqual(tokens.length, 2 * 4);
 * for (const row of [0, 4]) deepStrictEqual(targets.subarray(row, row + 3), tokens.subarray(row + 1, row + 4));
 * ```
 */
export class LmBatcher implements IterableIterator<LmBatch> {
  readonly #corpus: Int32Array;
  readonly #batchSize: number;
  readonly #seqLen: number;
  readonly #shuffle: boolean;
  readonly #windows: number;
  readonly #cursor: Cursor;
  #epochCache = -1;
  #phase = 0;
  #perm: Int32Array = new Int32Array(0);

  /**
   * Builds the corpus and positions the iterator at epoch 0, batch 0.
   * Throws if the corpus cannot fill a single batch.
   *
   * @example
   * ```ts
   * import { strictEqual, throws } from "node:assert/strict";
   * import { LmBatcher } from "./batches.ts";
   * const it = new LmBatcher(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 });
   * strictEqual(it.corpusLength, 18);
   * throws(() => new LmBatcher(["ab"], { batchSize: 1, seqLen: 4 }), /too small for one batch/);
   * ```
   */
  constructor(texts: readonly string[], options: LmBatchOptions) {
    checkPositiveInt("batchSize", options.batchSize);
    checkPositiveInt("seqLen", options.seqLen);
    this.#batchSize = options.batchSize;
    this.#seqLen = options.seqLen;
    this.#shuffle = options.shuffle ?? true;
    this.#corpus = lmCorpus(texts);
    this.#windows = Math.max(0, Math.floor((this.#corpus.length - this.#seqLen) / this.#seqLen));
    const perEpoch = Math.floor(this.#windows / this.#batchSize);
    if (perEpoch === 0) {
      throw new RangeError(
        `corpus of ${this.#corpus.length} tokens is too small for one batch of ` +
          `${this.#batchSize}x${this.#seqLen}`,
      );
    }
    this.#cursor = new Cursor(options.seed ?? 0, options.epochs ?? Infinity, perEpoch);
  }

  /**
   * Rebuilds an iterator positioned at `state` (from `it.state`); it yields
   * the same batches the original would have yielded next. The seed comes
   * from `state` (and, if also given in `options`, must agree with it).
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { LmBatcher, lmBatches } from "./batches.ts";
   * const texts = ["anna", "bob", "carla", "dave"];
   * const it = lmBatches(texts, { batchSize: 1, seqLen: 4, seed: 5 });
   * it.next();
   * const resumed = LmBatcher.fromState(texts, { batchSize: 1, seqLen: 4 }, it.state);
   * deepStrictEqual(resumed.next().value, it.next().value); // the batch the original yields next
   * ```
   */
  static fromState(
    texts: readonly string[],
    options: LmBatchOptions,
    state: BatchState,
  ): LmBatcher {
    const it = new LmBatcher(texts, { ...options, seed: options.seed ?? state.seed });
    it.#cursor.restore(state);
    return it;
  }

  /**
   * Number of (full) batches in one epoch.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { lmBatches } from "./batches.ts";
   * // 24 tokens: floor((24 - 4) / 4) = 5 windows, so 2 full batches of 2.
   * strictEqual(lmBatches(["anna", "bob", "carla", "dave"], { batchSize: 2, seqLen: 4 }).batchesPerEpoch, 2);
   * ```
   */
  get batchesPerEpoch(): number {
    return this.#cursor.batchesPerEpoch;
  }

  /**
   * Length of the concatenated corpus in tokens.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { lmBatches } from "./batches.ts";
   * // BOS and EOS around each text: 6 + 5 + 7 tokens.
   * strictEqual(lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 }).corpusLength, 18);
   * ```
   */
  get corpusLength(): number {
    return this.#corpus.length;
  }

  /**
   * Position of the next batch (a fresh copy; JSON-serializable).
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { lmBatches } from "./batches.ts";
   * const it = lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4, seed: 2 });
   * it.next();
   * deepStrictEqual(it.state, { epoch: 0, index: 1, seed: 2 });
   * ```
   */
  get state(): BatchState {
    return this.#cursor.state;
  }

  /**
   * Whether every requested epoch has been yielded (never, by default).
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { lmBatches } from "./batches.ts";
   * strictEqual(lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 }).done, false);
   * ```
   */
  get done(): boolean {
    return this.#cursor.done;
  }

  /**
   * Yields the next batch.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { lmBatches } from "./batches.ts";
   * const it = lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 });
   * const { value, done } = it.next();
   * strictEqual(done, false); // endless by default
   * strictEqual(value.tokens.length, 4);
   * ```
   */
  next(): IteratorResult<LmBatch> {
    if (this.#cursor.done) return { done: true, value: undefined };
    return { done: false, value: this.#produce(this.#cursor.advance()) };
  }

  /**
   * Returns the iterator itself.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { lmBatches } from "./batches.ts";
   * const all = [...lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4, epochs: 1 })];
   * strictEqual(all.length, 3); // 18 tokens: floor((18 - 4) / 4) = 3 windows, one per batch
   * ```
   */
  [Symbol.iterator](): LmBatcher {
    return this;
  }

  #prepare(epoch: number): void {
    if (this.#epochCache === epoch) return;
    if (this.#shuffle) {
      const rng = mulberry32(deriveSeed(this.#cursor.seed, epoch));
      this.#phase = Math.floor(rng() * this.#seqLen);
      this.#perm = new Int32Array(this.#windows);
      for (let i = 0; i < this.#windows; i++) this.#perm[i] = i;
      shuffleInPlace(this.#perm, rng);
    } else {
      this.#phase = 0;
      this.#perm = Int32Array.from({ length: this.#windows }, (_, i) => i);
    }
    this.#epochCache = epoch;
  }

  #produce(position: BatchState): LmBatch {
    this.#prepare(position.epoch);
    const B = this.#batchSize;
    const T = this.#seqLen;
    const tokens = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = this.#phase + this.#perm[position.index * B + b] * T;
      tokens.set(this.#corpus.subarray(start, start + T), b * T);
      targets.set(this.#corpus.subarray(start + 1, start + T + 1), b * T);
    }
    return { tokens, targets, batchSize: B, seqLen: T, position };
  }
}

/**
 * Seeded, resumable next-token batches over the concatenation of `texts`
 * with BOS/EOS separators (see {@linkcode LmBatcher}). Endless by default.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { lmBatches } from "./batches.ts";
 * const it = lmBatches(["anna", "bob", "carla", "dave"], { batchSize: 2, seqLen: 4, seed: 1 });
 * const { tokens, targets } = it.next().value!;
 * ok(tokens instanceof Int32Array && targets instanceof Int32Array);
 * strictEqual(tokens.length, 2 * 4);
 * strictEqual(targets.length, 2 * 4);
 * ```
 */
export function lmBatches(texts: readonly string[], options: LmBatchOptions): LmBatcher {
  return new LmBatcher(texts, options);
}
