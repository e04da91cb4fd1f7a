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
export { deriveSeed, mulberry32, permutation, shuffleInPlace } from "./random.ts";
export type { BatchState } from "./_batching.ts";
export {
  type ClassificationBatch,
  ClassificationBatcher,
  classificationBatches,
  type ClassificationBatchOptions,
  type ClassificationExample,
} from "./classification_batches.ts";
export { type LmBatch, LmBatcher, lmBatches, type LmBatchOptions, lmCorpus } from "./lm_batches.ts";
