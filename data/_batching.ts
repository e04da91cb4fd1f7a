/** What the batch iterators share: their resumable state and epoch bookkeeping. */
/**
 * Position of a batch iterator: the next batch it yields is batch `index`
 * of epoch `epoch`, shuffled with `seed`. Plain JSON, fit for checkpoints.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import type { BatchState } from "./batches.ts";
 * const s: BatchState = { epoch: 2, index: 17, seed: 1234 };
 * const saved = JSON.stringify(s);
 * deepStrictEqual(JSON.parse(saved), s);
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

export function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`);
}

export function checkEpochs(v: number): void {
  if (!(v === Infinity || (Number.isInteger(v) && v >= 0))) {
    throw new RangeError("epochs must be a non-negative integer or Infinity");
  }
}

/** Shared epoch/index bookkeeping of the batch iterators (internal). */
export class Cursor {
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
