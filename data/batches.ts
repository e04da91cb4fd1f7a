/**
 * Seeded, resumable batch iterators for sequence classification and
 * byte-level language modelling.
 *
 * Every iterator is a pure function of `(data, options, state)`: the batch at
 * position `{ epoch, index }` depends only on the seed, the epoch and the
 * index, so an iterator rebuilt with `fromState(…, it.state)` yields exactly
 * the batches the original would have yielded next.
 *
 * @module
 */

import { fmix32 } from "./split.ts";
import { BOS, EOS, PAD, utf8Bytes } from "./tokenizer.ts";

/**
 * Mulberry32: a tiny, fast, deterministic 32-bit PRNG. Returns a function
 * producing floats in `[0, 1)`.
 *
 * @example
 * ```ts
 * import { mulberry32 } from "./batches.ts";
 * const rng = mulberry32(42);
 * const x = rng(); // same value on every run for seed 42
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives an independent 32-bit seed from a base seed and integer parts
 * (e.g. an epoch number), by repeated murmur3 mixing.
 *
 * @example
 * ```ts
 * import { deriveSeed } from "./batches.ts";
 * const epochSeed = deriveSeed(1234, 3); // seed used for epoch 3
 * ```
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = fmix32((seed + 0x9e3779b9) >>> 0);
  for (const p of parts) h = fmix32((h ^ fmix32((p + 0x7f4a7c15) >>> 0)) + 0x6b43a9b5 >>> 0);
  return h;
}

/**
 * Fisher–Yates shuffle of `array` in place using `rng` (values in `[0, 1)`).
 *
 * @example
 * ```ts
 * import { mulberry32, shuffleInPlace } from "./batches.ts";
 * const xs = shuffleInPlace([1, 2, 3, 4], mulberry32(7));
 * ```
 */
export function shuffleInPlace<A extends { length: number; [i: number]: any }>(
  array: A,
  rng: () => number,
): A {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/**
 * A seeded random permutation of `0..n-1`.
 *
 * @example
 * ```ts
 * import { permutation } from "./batches.ts";
 * permutation(5, 1); // e.g. Int32Array [3, 0, 4, 1, 2], identical for every call with seed 1
 * ```
 */
export function permutation(n: number, seed: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, mulberry32(seed));
}

/**
 * Position of a batch iterator: the next batch it yields is batch `index`
 * of epoch `epoch`, shuffled with `seed`. Plain JSON, fit for checkpoints.
 *
 * @example
 * ```ts
 * import type { BatchState } from "./batches.ts";
 * const s: BatchState = { epoch: 2, index: 17, seed: 1234 };
 * const saved = JSON.stringify(s);
 * ```
 */
export interface BatchState {
  /** Epoch of the next batch (0-based). */
  epoch: number;
  /** Index of the next batch within its epoch (0-based). */
  index: number;
  /** Base seed of the iterator. */
  seed: number;
}

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
 * import { classificationBatches, type ClassificationBatch } from "./batches.ts";
 * const it = classificationBatches([{ text: "hi", label: 0 }], { batchSize: 1, seqLen: 4 });
 * const b: ClassificationBatch = it.next().value!;
 * // b.tokens = [104, 105, 256, 256], b.lastIndex = [1], b.lengths = [2]
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
 * import { lmBatches, type LmBatch } from "./batches.ts";
 * const b: LmBatch = lmBatches(["anna", "bob"], { batchSize: 1, seqLen: 4 }).next().value!;
 * b.tokens[1] === b.targets[0]; // true
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

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`);
}

function checkEpochs(v: number): void {
  if (!(v === Infinity || (Number.isInteger(v) && v >= 0))) {
    throw new RangeError("epochs must be a non-negative integer or Infinity");
  }
}

/** Shared epoch/index bookkeeping of the batch iterators (internal). */
class Cursor {
  epoch = 0;
  index = 0;
  readonly seed: number;
  readonly epochs: number;

  constructor(seed: number, epochs: number, readonly batchesPerEpoch: number) {
    if (!Number.isInteger(seed)) throw new RangeError("seed must be an integer");
    checkEpochs(epochs);
    this.seed = seed >>> 0;
    this.epochs = epochs;
  }

  get state(): BatchState {
    return { epoch: this.epoch, index: this.index, seed: this.seed };
  }

  get done(): boolean {
    return this.batchesPerEpoch === 0 || this.epoch >= this.epochs;
  }

  restore(state: BatchState): void {
    const { epoch, index, seed } = state;
    if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError("state.epoch is invalid");
    if (!Number.isInteger(index) || index < 0) throw new RangeError("state.index is invalid");
    if (!Number.isInteger(seed) || (seed >>> 0) !== this.seed) {
      throw new Error(`state.seed ${seed} does not match the iterator seed ${this.seed}`);
    }
    if (index > 0 && index >= this.batchesPerEpoch) {
      throw new RangeError(`state.index ${index} >= batchesPerEpoch ${this.batchesPerEpoch}`);
    }
    this.epoch = epoch;
    this.index = index;
  }

  /** Returns the current position and moves to the next one. */
  advance(): BatchState {
    const at = this.state;
    if (++this.index >= this.batchesPerEpoch) {
      this.index = 0;
      this.epoch++;
    }
    return at;
  }
}

/**
 * Seeded, resumable iterator of {@linkcode ClassificationBatch}es; create it
 * with {@linkcode classificationBatches} or {@linkcode ClassificationBatcher.fromState}.
 *
 * @example
 * ```ts
 * import { ClassificationBatcher } from "./batches.ts";
 * const data = [{ text: "a", label: 0 }, { text: "b", label: 1 }];
 * const it = new ClassificationBatcher(data, { batchSize: 1, seqLen: 8, seed: 3 });
 * for (const batch of it) console.log(batch.labels);
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
   * import { ClassificationBatcher } from "./batches.ts";
   * const it = new ClassificationBatcher([{ text: "x", label: 1 }], { batchSize: 4, seqLen: 8 });
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
   * import { ClassificationBatcher, classificationBatches } from "./batches.ts";
   * const data = [{ text: "a", label: 0 }, { text: "b", label: 1 }, { text: "c", label: 0 }];
   * const opts = { batchSize: 1, seqLen: 4, seed: 9, epochs: 2 };
   * const it = classificationBatches(data, opts);
   * it.next();
   * const resumed = ClassificationBatcher.fromState(data, opts, it.state);
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
   * import { classificationBatches } from "./batches.ts";
   * const data = Array.from({ length: 10 }, (_, i) => ({ text: `${i}`, label: i % 2 }));
   * classificationBatches(data, { batchSize: 4, seqLen: 2 }).batchesPerEpoch; // 3
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
   * import { classificationBatches } from "./batches.ts";
   * const it = classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2, seed: 4 });
   * it.state; // { epoch: 0, index: 0, seed: 4 }
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
   * import { classificationBatches } from "./batches.ts";
   * const it = classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2 });
   * it.next();
   * it.done; // true
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
   * import { classificationBatches } from "./batches.ts";
   * const it = classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2 });
   * const { value, done } = it.next();
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
   * import { classificationBatches } from "./batches.ts";
   * const all = [...classificationBatches([{ text: "a", label: 0 }], { batchSize: 1, seqLen: 2 })];
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
 * Concatenates texts into one token stream: `BOS bytes… EOS` per text.
 *
 * @example
 * ```ts
 * import { lmCorpus } from "./batches.ts";
 * lmCorpus(["ab"]); // Int32Array [257, 97, 98, 258]
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
 * import { LmBatcher } from "./batches.ts";
 * const it = new LmBatcher(["anna", "bob", "carla"], { batchSize: 2, seqLen: 4, seed: 1 });
 * const { tokens, targets } = it.next().value!;
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
   * import { LmBatcher } from "./batches.ts";
   * const it = new LmBatcher(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 });
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
   * import { LmBatcher, lmBatches } from "./batches.ts";
   * const texts = ["anna", "bob", "carla", "dave"];
   * const it = lmBatches(texts, { batchSize: 1, seqLen: 4, seed: 5 });
   * it.next();
   * const resumed = LmBatcher.fromState(texts, { batchSize: 1, seqLen: 4 }, it.state);
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
   * import { lmBatches } from "./batches.ts";
   * lmBatches(["anna", "bob", "carla", "dave"], { batchSize: 2, seqLen: 4 }).batchesPerEpoch; // 2
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
   * import { lmBatches } from "./batches.ts";
   * lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 }).corpusLength; // 18
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
   * import { lmBatches } from "./batches.ts";
   * const it = lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4, seed: 2 });
   * it.next();
   * it.state; // { epoch: 0, index: 1, seed: 2 }
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
   * import { lmBatches } from "./batches.ts";
   * lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 }).done; // false
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
   * import { lmBatches } from "./batches.ts";
   * const it = lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 });
   * const { value } = it.next();
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
   * import { lmBatches } from "./batches.ts";
   * const two = [...lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4, epochs: 1 })];
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
 * Seeded, resumable classification batches (see {@linkcode ClassificationBatcher}).
 *
 * @example
 * ```ts
 * import { classificationBatches } from "./batches.ts";
 * const data = [{ text: "hello", label: 0 }, { text: "WIN $$$", label: 1 }];
 * const it = classificationBatches(data, { batchSize: 2, seqLen: 16, seed: 1 });
 * for (const { tokens, labels, lastIndex } of it) {
 *   // tokens: Int32Array [2*16], labels: [2], lastIndex: [2]
 * }
 * const checkpoint = it.state; // { epoch: 1, index: 0, seed: 1 }
 * ```
 */
export function classificationBatches(
  examples: readonly ClassificationExample[],
  options: ClassificationBatchOptions,
): ClassificationBatcher {
  return new ClassificationBatcher(examples, options);
}

/**
 * Seeded, resumable next-token batches over the concatenation of `texts`
 * with BOS/EOS separators (see {@linkcode LmBatcher}). Endless by default.
 *
 * @example
 * ```ts
 * import { lmBatches } from "./batches.ts";
 * const it = lmBatches(["anna", "bob", "carla", "dave"], { batchSize: 2, seqLen: 4, seed: 1 });
 * const { tokens, targets } = it.next().value!; // each Int32Array [2*4]
 * ```
 */
export function lmBatches(texts: readonly string[], options: LmBatchOptions): LmBatcher {
  return new LmBatcher(texts, options);
}
