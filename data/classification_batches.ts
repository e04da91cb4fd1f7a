/**
 * Seeded, resumable batches for sequence classification.
 *
 * @module
 */
import { PAD, utf8Bytes } from "./tokenizer.ts";
import { deriveSeed, permutation } from "./random.ts";
import { type BatchState, checkPositiveInt, Cursor } from "./_batching.ts";

/**
 * Anything with a text and an integer label (e.g. a `SpamExample`).
 *
 * @example
 * ```ts
 * import type { ClassificationExample } from "./batches.ts";
 * const ex: ClassificationExample = { text: "buy now", label: 1 };
 * ```
 */
export interface ClassificationExample {
  /** Input text; its UTF-8 bytes are the tokens. */
  text: string;
  /** Class index. */
  label: number;
}

/**
 * Options of {@linkcode classificationBatches}.
 *
 * @example
 * ```ts
 * import type { ClassificationBatchOptions } from "./batches.ts";
 * const opts: ClassificationBatchOptions = { batchSize: 16, seqLen: 128, seed: 1, dropLast: true };
 * ```
 */
export interface ClassificationBatchOptions {
  /** Rows per batch (B). */
  batchSize: number;
  /** Tokens per row (T); longer texts are cut at the end. */
  seqLen: number;
  /** Base seed. Default 0. */
  seed?: number;
  /** Passes over the data; `Infinity` for an endless stream. Default 1. */
  epochs?: number;
  /** Skip the final, smaller batch of each epoch (keeps shapes static). Default false. */
  dropLast?: boolean;
  /** Shuffle each epoch (a fresh permutation per epoch). Default true. */
  shuffle?: boolean;
}

/**
 * One classification batch. Rows are the texts' bytes, left-aligned and
 * padded with `PAD`; there is no CLS token — the classifier reads the state
 * at `lastIndex[b]`, the last real token of row `b`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { classificationBatches, type ClassificationBatch } from "./batches.ts";
 * const it = classificationBatches([{ text: "hi", label: 0 }], { batchSize: 1, seqLen: 4 });
 * const b: ClassificationBatch = it.next().value!;
 * deepStrictEqual(b.tokens, new Int32Array([104, 105, 256, 256])); // "h", "i", then padding
 * deepStrictEqual(b.lastIndex, new Int32Array([1]));
 * deepStrictEqual(b.lengths, new Int32Array([2]));
 * ```
 */
export interface ClassificationBatch {
  /** `[B*T]` token ids, row-major. */
  tokens: Int32Array;
  /** `[B]` class labels. */
  labels: Int32Array;
  /** `[B]` index of the last real token per row (0 for an empty text). */
  lastIndex: Int32Array;
  /** `[B]` number of real tokens per row. */
  lengths: Int32Array;
  /** `[B]` index of each row's example in the input array. */
  indices: Int32Array;
  /** Rows in this batch (B; smaller than `batchSize` only for a final partial batch). */
  batchSize: number;
  /** Tokens per row (T). */
  seqLen: number;
  /** Position this batch was produced at. */
  position: BatchState;
}

/**
 * Seeded, resumable iterator of {@linkcode ClassificationBatch}es; create it
 * with {@linkcode classificationBatches} or {@linkcode ClassificationBatcher.fromState}.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { ClassificationBatcher } from "./batches.ts";
 * const data = [{ text: "a", label: 0 }, { text: "b", label: 1 }];
 * const it = new ClassificationBatcher(data, { batchSize: 1, seqLen: 8, seed: 3 });
 * const labels: number[] = [];
 * for (const batch of it) labels.push(...batch.labels);
 * deepStrictEqual(labels.sort((a, b) => a - b), [0, 1]); // one epoch: each example once, in a seeded order
 * ```
 */
export class ClassificationBatcher implements IterableIterator<ClassificationBatch> {
  readonly #rows: Uint8Array[];
  readonly #labels: Int32Array;
  readonly #batchSize: number;
  readonly #seqLen: number;
  readonly #shuffle: boolean;
  readonly #cursor: Cursor;
  #permEpoch = -1;
  #perm: Int32Array = new Int32Array(0);

  /**
   * Pre-encodes every example (UTF-8 bytes cut to `seqLen`) and positions
   * the iterator at epoch 0, batch 0.
   *
   * @example
   * ```ts
   * import { deepStrictEqual, strictEqual } from "node:assert/strict";
   * import { ClassificationBatcher } from "./batches.ts";
   * const it = new ClassificationBatcher([{ text: "xylophone", label: 1 }], { batchSize: 4, seqLen: 8 });
   * deepStrictEqual(it.state, { epoch: 0, index: 0, seed: 0 });
   * const { tokens, lengths } = it.next().value!;
   * deepStrictEqual(tokens, Int32Array.from(new TextEncoder().encode("xylophon"))); // cut to seqLen bytes
   * strictEqual(lengths[0], 8);
   * ```
   */
  constructor(examples: readonly ClassificationExample[], options: ClassificationBatchOptions) {
    checkPositiveInt("batchSize", options.batchSize);
    checkPositiveInt("seqLen", options.seqLen);
    this.#batchSize = options.batchSize;
    this.#seqLen = options.seqLen;
    this.#shuffle = options.shuffle ?? true;
    this.#labels = new Int32Array(examples.length);
    this.#rows = examples.map((e, i) => {
      if (!Number.isInteger(e.label)) throw new TypeError(`example ${i} has a non-integer label`);
      this.#labels[i] = e.label;
      return utf8Bytes(e.text).subarray(0, this.#seqLen);
    });
    const n = examples.length;
    const perEpoch = options.dropLast
      ? Math.floor(n / this.#batchSize)
      : Math.ceil(n / this.#batchSize);
    this.#cursor = new Cursor(options.seed ?? 0, options.epochs ?? 1, perEpoch);
  }

  /**
   * Rebuilds an iterator positioned at `state` (from `it.state`); it yields
   * the same batches the original would have yielded next. `options` must
   * match the original's; the seed comes from `state` (and, if also given in
   * `options`, must agree with it).
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { ClassificationBatcher, classificationBatches } from "./batches.ts";
   * const data = [{ text: "a", label: 0 }, { text: "b", label: 1 }, { text: "c", label: 0 }];
   * const opts = { batchSize: 1, seqLen: 4, seed: 9, epochs: 2 };
   * const it = classificationBatches(data, opts);
   * it.next();
   * const resumed = ClassificationBatcher.fromState(data, opts, it.state);
   * deepStrictEqual([...resumed], [...it]); // the same remaining batches
   * ```
   */
  static fromState(
    examples: readonly ClassificationExample[],
    options: ClassificationBatchOptions,
    state: BatchState,
  ): ClassificationBatcher {
    const it = new ClassificationBatcher(examples, {
      ...options,
      seed: options.seed ?? state.seed,
    });
    it.#cursor.restore(state);
    return it;
  }

  /**
   * Number of batches in one epoch.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { classificationBatches } from "./batches.ts";
   * const data = Array.from({ length: 10 }, (_, i) => ({ text: `${i}`, label: i % 2 }));
   * strictEqual(classificationBatches(data, { batchSize: 4, seqLen: 2 }).batchesPerEpoch, 3); // 4 + 4 + 2
   * strictEqual(classificationBatches(data, { batchSize: 4, seqLen: 2, dropLast: true }).batchesPerEpoch, 2);
   * ```
   */
  get batchesPerEpoch(): number {
    return this.#cursor.batchesPerEpoch;
  }

  /**
   * Position of the next batch (a fresh copy; JSON-serializable).
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { classificationBatches } from "./batches.ts";
   * const it = classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2, seed: 4 });
   * deepStrictEqual(it.state, { epoch: 0, index: 0, seed: 4 });
   * ```
   */
  get state(): BatchState {
    return this.#cursor.state;
  }

  /**
   * Whether every requested epoch has been yielded.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { classificationBatches } from "./batches.ts";
   * const it = classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2 });
   * strictEqual(it.done, false);
   * it.next(); // the only batch of the only epoch
   * strictEqual(it.done, true);
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
   * import { deepStrictEqual, strictEqual } from "node:assert/strict";
   * import { classificationBatches } from "./batches.ts";
   * const it = classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2 });
   * const { value, done } = it.next();
   * strictEqual(done, false);
   * deepStrictEqual(value.tokens, new Int32Array([97, 256])); // "a", then PAD
   * strictEqual(it.next().done, true); // one epoch by default
   * ```
   */
  next(): IteratorResult<ClassificationBatch> {
    if (this.#cursor.done) return { done: true, value: undefined };
    return { done: false, value: this.#produce(this.#cursor.advance()) };
  }

  /**
   * Returns the iterator itself.
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { classificationBatches } from "./batches.ts";
   * const all = [...classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2 })];
   * strictEqual(all.length, 1);
   * ```
   */
  [Symbol.iterator](): ClassificationBatcher {
    return this;
  }

  #order(epoch: number): Int32Array {
    if (this.#permEpoch !== epoch) {
      const n = this.#rows.length;
      this.#perm = this.#shuffle
        ? permutation(n, deriveSeed(this.#cursor.seed, epoch))
        : Int32Array.from({ length: n }, (_, i) => i);
      this.#permEpoch = epoch;
    }
    return this.#perm;
  }

  #produce(position: BatchState): ClassificationBatch {
    const order = this.#order(position.epoch);
    const start = position.index * this.#batchSize;
    const B = Math.min(this.#batchSize, order.length - start);
    const T = this.#seqLen;
    const tokens = new Int32Array(B * T).fill(PAD);
    const labels = new Int32Array(B);
    const lastIndex = new Int32Array(B);
    const lengths = new Int32Array(B);
    const indices = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const ex = order[start + b];
      const row = this.#rows[ex];
      tokens.set(row, b * T);
      labels[b] = this.#labels[ex];
      lengths[b] = row.length;
      lastIndex[b] = Math.max(0, row.length - 1);
      indices[b] = ex;
    }
    return { tokens, labels, lastIndex, lengths, indices, batchSize: B, seqLen: T, position };
  }
}

/**
 * Seeded, resumable classification batches (see {@linkcode ClassificationBatcher}).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { classificationBatches } from "./batches.ts";
 * const data = [{ text: "hello", label: 0 }, { text: "WIN $$$", label: 1 }];
 * const it = classificationBatches(data, { batchSize: 2, seqLen: 16, seed: 1 });
 * for (const { tokens, labels, lastIndex } of it) {
 *   strictEqual(tokens.length, 2 * 16);
 *   strictEqual(labels.length, 2);
 *   strictEqual(lastIndex.length, 2);
 * }
 * const checkpoint = it.state;
 * deepStrictEqual(checkpoint, { epoch: 1, index: 0, seed: 1 }); // after the one epoch
 * ```
 */
export function classificationBatches(
  examples: readonly ClassificationExample[],
  options: ClassificationBatchOptions,
): ClassificationBatcher {
  return new ClassificationBatcher(examples, options);
}
