/**
 * Classification metrics from predictions: accuracy, per-class precision,
 * recall and F1, macro-F1 and the confusion matrix.
 *
 * @module
 */

/** Precision, recall and F1 of one class, and how many examples have it (support). */
export interface ClassMetrics {
  /** The class name. */
  readonly label: string;
  /** Of the examples predicted as this class, the share that is. */
  readonly precision: number;
  /** Of the examples of this class, the share predicted as it. */
  readonly recall: number;
  /** Harmonic mean of precision and recall. */
  readonly f1: number;
  /** Examples of this class. */
  readonly support: number;
}

/** What {@link classificationMetrics} measures. */
export interface ClassificationMetrics {
  /** Share of examples predicted right. */
  readonly accuracy: number;
  /** Unweighted mean of the classes' F1. */
  readonly macroF1: number;
  /** One entry per class, in label order. */
  readonly perClass: ClassMetrics[];
  /** `confusion[true][predicted]`: counts of examples. */
  readonly confusion: number[][];
  /** Examples counted. */
  readonly count: number;
}

/**
 * Computes the metrics of `predicted` against `actual` (class indices into
 * `labels`). A class never predicted has precision 0, one never present has
 * recall 0, and F1 is 0 when precision + recall is 0 (scikit-learn's
 * `zero_division=0`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classificationMetrics } from "./metrics_cls.ts";
 * const m = classificationMetrics([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"]);
 * assert.equal(m.accuracy, 0.75);
 * assert.deepEqual(m.confusion, [[1, 0, 0], [0, 1, 1], [0, 0, 1]]);
 * assert.deepEqual(m.perClass[1], { label: "b", precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
 * ```
 */
export function classificationMetrics(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
  labels: readonly string[],
): ClassificationMetrics {
  const k = labels.length;
  if (actual.length !== predicted.length) {
    throw new Error(`metrics: ${actual.length} labels but ${predicted.length} predictions`);
  }
  if (actual.length === 0) throw new Error("metrics: no examples");
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let hits = 0;
  for (let i = 0; i < actual.length; i++) {
    const [a, p] = [actual[i], predicted[i]];
    for (const v of [a, p]) {
      if (!Number.isInteger(v) || v < 0 || v >= k) {
        throw new Error(`metrics: class ${v} at example ${i} is not in 0..${k - 1}`);
      }
    }
    confusion[a][p]++;
    if (a === p) hits++;
  }
  const perClass = labels.map((label, c) => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((s, v) => s + v, 0);
    const predictedC = confusion.reduce((s, row) => s + row[c], 0);
    const precision = predictedC === 0 ? 0 : tp / predictedC;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : 2 * precision * recall / (precision + recall);
    return { label, precision, recall, f1, support };
  });
  const macroF1 = perClass.reduce((s, c) => s + c.f1, 0) / k;
  return { accuracy: hits / actual.length, macroF1, perClass, confusion, count: actual.length };
}

/**
 * Softmax probabilities of one row of logits (numerically stable).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { softmax } from "./metrics_cls.ts";
 * assert.deepEqual(softmax([0, 0]), [0.5, 0.5]);
 * ```
 */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/**
 * The metrics as a few aligned lines of text: accuracy and macro-F1, a
 * per-class table and the confusion matrix (rows: true class).
 *
 * @example
 * ```ts
 * import { classificationMetrics, formatClassificationMetrics } from "./metrics_cls.ts";
 * console.log(formatClassificationMetrics(classificationMetrics([0, 1], [0, 0], ["ham", "spam"])));
 * ```
 */
export function formatClassificationMetrics(m: ClassificationMetrics): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const width = Math.max(5, ...m.perClass.map((c) => c.label.length));
  const lines = [
    `accuracy ${pct(m.accuracy)}  macro-F1 ${m.macroF1.toFixed(4)}  (${m.count} examples)`,
    `${"class".padEnd(width)}  precision  recall      f1  support`,
    ...m.perClass.map((c) =>
      `${c.label.padEnd(width)}  ${c.precision.toFixed(4).padStart(9)}  ${
        c.recall.toFixed(4).padStart(6)
      }  ${c.f1.toFixed(4)}  ${String(c.support).padStart(7)}`
    ),
    `confusion (rows: true, columns: predicted)`,
    `${"".padEnd(width)}  ${m.perClass.map((c) => c.label.padStart(6)).join(" ")}`,
    ...m.confusion.map((row, i) =>
      `${m.perClass[i].label.padEnd(width)}  ${row.map((v) => String(v).padStart(6)).join(" ")}`
    ),
  ];
  return lines.join("\n");
}
