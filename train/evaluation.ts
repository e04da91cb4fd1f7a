/**
 * Batches as feeds, and evaluation: accuracy and loss of a classifier from
 * its logits, mean next-token loss of a language model. Eval graphs have
 * static shapes, so a final partial batch is padded and its padding rows are
 * not counted.
 */
import {
  type ClassificationBatch,
  classificationBatches,
  type ClassificationExample,
  type LmBatch,
  lmBatches,
  permutation,
} from "../data/batches.ts";
import { PAD } from "../data/tokenizer.ts";
import { type DatasetName, datasetTasks } from "../data/registry.ts";
import type { Splits } from "../data/split.ts";
import type { Feed, StepRunner } from "./runner.ts";

/**
 * A source of training batches, as feeds, with a resumable state.
 *
 * @example
 * ```ts
 * import type { BatchSource } from "./evaluation.ts";
 * const fixed: BatchSource = { next: () => ({ x: [1, 2] }), state: null };
 * ```
 */
export interface BatchSource {
  /** Feeds of the next batch, or undefined when the data is exhausted. */
  next(): Readonly<Record<string, Feed>> | undefined;
  /** The position of the next batch (JSON), saved in checkpoints. */
  readonly state: unknown;
}

/**
 * One eval batch: its feeds and how many of its rows are real (the rest is padding).
 *
 * @example
 * ```ts
 * import type { EvalBatch } from "./evaluation.ts";
 * const padded: EvalBatch = { feeds: { tokens: new Int32Array(8), labels: new Int32Array(2), lastIndex: new Int32Array(2) }, rows: 1 };
 * ```
 */
export interface EvalBatch {
  /** Inputs of the eval graph. */
  readonly feeds: Readonly<Record<string, Feed>>;
  /** Real rows (default: all). */
  readonly rows?: number;
}

/**
 * What an evaluation measured.
 *
 * @example
 * ```ts
 * import type { EvalMetrics } from "./evaluation.ts";
 * const m: EvalMetrics = { loss: 0.31, accuracy: 0.92, count: 640 };
 * ```
 */
export interface EvalMetrics {
  /** Mean cross-entropy per example (classifier) or per target token (LM). */
  readonly loss: number;
  /** Share of examples whose argmax logit is the label (classifier only). */
  readonly accuracy?: number;
  /** Examples (classifier) or target tokens (LM) counted. */
  readonly count: number;
}

/**
 * The feeds of a data batch: `tokens` and `targets` (LM) or `tokens`,
 * `labels` and `lastIndex` (classifier).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { lmBatches } from "../data/batches.ts";
 * import { feedsOf } from "./evaluation.ts";
 * const batch = lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 }).next().value!;
 * deepStrictEqual(Object.keys(feedsOf(batch)), ["tokens", "targets"]);
 * ```
 */
export function feedsOf(batch: ClassificationBatch | LmBatch): Record<string, Feed> {
  if ("targets" in batch) return { tokens: batch.tokens, targets: batch.targets };
  return { tokens: batch.tokens, labels: batch.labels, lastIndex: batch.lastIndex };
}

/**
 * A {@link BatchSource} over a resumable batch iterator (`classificationBatches`, `lmBatches`).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { lmBatches } from "../data/batches.ts";
 * import { sourceOf } from "./evaluation.ts";
 * const source = sourceOf(lmBatches(["anna", "bob", "carla"], { batchSize: 1, seqLen: 4 }));
 * source.next();
 * deepStrictEqual(source.state, { epoch: 0, index: 1, seed: 0 });
 * ```
 */
export function sourceOf(
  iterator: Iterator<ClassificationBatch | LmBatch> & { readonly state: unknown },
): BatchSource {
  return {
    next() {
      const r = iterator.next();
      return r.done ? undefined : feedsOf(r.value);
    },
    get state() {
      return iterator.state;
    },
  };
}

/**
 * Eval batches over classification examples, in order, the last one padded
 * to `batchSize` rows; with `limit`, a fixed random sample of that many.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { classifierEvalBatches } from "./evaluation.ts";
 * const data = [{ text: "a", label: 0 }, { text: "b", label: 1 }, { text: "c", label: 0 }];
 * deepStrictEqual([...classifierEvalBatches(data, { batchSize: 2, seqLen: 4 })].map((b) => b.rows), [2, 1]);
 * ```
 */
export function* classifierEvalBatches(
  examples: readonly ClassificationExample[],
  options: { batchSize: number; seqLen: number; limit?: number },
): Generator<EvalBatch> {
  const { batchSize: b, seqLen: t } = options;
  // A limit takes a fixed random sample: the splits are sorted (names) or grouped (spam).
  const limit = options.limit ?? examples.length;
  const subset = limit >= examples.length
    ? examples
    : Array.from(permutation(examples.length, 0).subarray(0, limit), (i) => examples[i]);
  for (const batch of classificationBatches(subset, { ...options, shuffle: false, epochs: 1 })) {
    const rows = batch.batchSize;
    if (rows === b) {
      yield { feeds: feedsOf(batch), rows };
      continue;
    }
    const tokens = new Int32Array(b * t).fill(PAD);
    tokens.set(batch.tokens);
    const pad = (a: Int32Array) => {
      const out = new Int32Array(b);
      out.set(a);
      return out;
    };
    yield { feeds: { tokens, labels: pad(batch.labels), lastIndex: pad(batch.lastIndex) }, rows };
  }
}

/**
 * Eval batches of next-token prediction over `texts` (the same fixed
 * random windows every time), at most `limit` batches.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { lmEvalBatches } from "./evaluation.ts";
 * const batches = [...lmEvalBatches(["anna", "bob", "carla", "dave"], { batchSize: 1, seqLen: 4 })];
 * ok(batches.length > 0);
 * ```
 */
export function* lmEvalBatches(
  texts: readonly string[],
  options: { batchSize: number; seqLen: number; limit?: number },
): Generator<EvalBatch> {
  const it = lmBatches(texts, { ...options, seed: 0, epochs: 1 });
  let n = 0;
  for (const batch of it) {
    if (options.limit !== undefined && n++ >= options.limit) return;
    yield { feeds: feedsOf(batch) };
  }
}

function rowCrossEntropy(logits: Float32Array, row: number, classes: number, label: number) {
  let max = -Infinity, best = 0;
  for (let c = 0; c < classes; c++) {
    const v = logits[row * classes + c];
    if (v > max) [max, best] = [v, c];
  }
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(logits[row * classes + c] - max);
  return { loss: Math.log(sum) + max - logits[row * classes + label], predicted: best };
}

/**
 * Evaluates a model graph (no updates) on `batches`: for a classifier
 * (`labels` input) reads `logits` and counts argmax hits and the
 * cross-entropy of the real rows; for a language model reads `loss` and
 * averages it over target tokens.
 *
 * @example
 * ```ts
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { cpuRunner } from "./runner.ts";
 * import { classifierEvalBatches, evaluateModel } from "./evaluation.ts";
 * const g = gptGraph({ vocabSize: 260, maxSeqLen: 4, dModel: 8, heads: 2, layers: 1, head: "classifier" }, { batch: 2, seqLen: 4 });
 * const runner = cpuRunner(g);
 * await runner.setParams(initParams(g));
 * const data = [{ text: "ab", label: 0 }, { text: "cd", label: 1 }, { text: "e", label: 1 }];
 * console.log(await evaluateModel(runner, classifierEvalBatches(data, { batchSize: 2, seqLen: 4 })));
 * ```
 */
export async function evaluateModel(
  runner: StepRunner,
  batches: Iterable<EvalBatch>,
): Promise<EvalMetrics> {
  const graph = runner.graph;
  const classifier = graph.inputs.some((n) => n.name === "labels");
  let loss = 0, count = 0, hits = 0;
  for (const { feeds, rows } of batches) {
    if (classifier) {
      const { logits } = await runner.run(feeds, { read: ["logits"] });
      const [b, classes] = graph.outputs.logits.shape;
      const labels = feeds.labels as ArrayLike<number>;
      for (let i = 0; i < (rows ?? b); i++) {
        const r = rowCrossEntropy(logits as Float32Array, i, classes, labels[i]);
        loss += r.loss;
        hits += r.predicted === labels[i] ? 1 : 0;
        count++;
      }
    } else {
      const { loss: l } = await runner.run(feeds, { read: ["loss"] });
      const targets = Array.from(feeds.targets as ArrayLike<number>);
      const counted = targets.filter((v) => v >= 0).length;
      loss += l[0] * counted;
      count += counted;
    }
  }
  if (count === 0) throw new Error("evaluate: no examples to evaluate");
  return classifier
    ? { loss: loss / count, accuracy: hits / count, count }
    : { loss: loss / count, count };
}

/**
 * The texts a language model is pretrained on: the spam-assassin messages or
 * the first names. The data sets must be loaded (import `data/mod.ts` or
 * `data/datasets.ts`); this module does not import them, so the trainer does
 * not download them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "../data/datasets.ts";
 * import { lmTexts } from "./evaluation.ts";
 * assert.ok(lmTexts("names").train.length > 0);
 * ```
 */
export function lmTexts(data: DatasetName): Splits<string> {
  return datasetTasks().lmTexts(data);
}

/**
 * The classification task of a dataset: spam-assassin ham (0) vs spam (1),
 * or female (0) vs male (1) first names (the data sets must be loaded, as for
 * {@link lmTexts}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "../data/datasets.ts";
 * import { classificationTask } from "./evaluation.ts";
 * assert.ok(classificationTask("names").validation.length > 0);
 * ```
 */
export function classificationTask(data: DatasetName): Splits<ClassificationExample> {
  return datasetTasks().classificationTask(data);
}
