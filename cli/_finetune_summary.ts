/**
 * What `finetune` reports once it has trained: summary.json (also its `--json` line) and the one
 * line a person reads, from the metrics measured before and after training.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { permutation } from "../data/random.ts";
import type { TokenRow } from "../data/token_rows.ts";
import type { Json } from "../train/checkpoint.ts";
import { classificationMetrics } from "../train/metrics_cls.ts";
import type { TrainResult } from "../train/trainer.ts";

/**
 * A fixed random sample of at most `limit` rows (the splits may be sorted or grouped).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { sample } from "./_finetune_summary.ts";
 * const rows = [1, 2, 3, 4].map((t) => ({ tokens: [t] }));
 * strictEqual(sample(rows, undefined), rows);
 * deepStrictEqual(sample(rows, 2), sample(rows, 2));
 * strictEqual(sample(rows, 2).length, 2);
 * ```
 */
export function sample(rows: TokenRow[], limit: number | undefined): TokenRow[] {
  if (limit === undefined || limit >= rows.length) return rows;
  return Array.from(permutation(rows.length, 0).subarray(0, limit), (i) => rows[i]);
}

/**
 * The per-class metrics of predicted class indices, as summary.json names them.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { testMetricsJson } from "./_finetune_summary.ts";
 * const m = testMetricsJson([0, 1], [0, 0], ["ham", "spam"]) as Record<string, unknown>;
 * deepStrictEqual(m.confusion, [[1, 0], [1, 0]]);
 * ```
 */
export function testMetricsJson(
  actual: readonly number[],
  predicted: readonly number[],
  labels: readonly string[],
): Json {
  const m = classificationMetrics(actual, predicted, labels);
  return {
    accuracy: m.accuracy,
    macro_f1: m.macroF1,
    per_class: m.perClass.map((c) => ({ ...c })),
    confusion: m.confusion,
  };
}

/** A split's loss and (classifier) accuracy. */
export interface SplitMetric {
  readonly loss: number;
  readonly accuracy?: number;
}

/** The validation and test metrics at one point of the run (a split left empty is undefined). */
export interface SplitMetrics {
  readonly validation?: SplitMetric;
  readonly test?: SplitMetric;
}

/** What a finetune run measured and wrote, for {@link finetuneSummary}. */
export interface FinetuneOutcome {
  readonly method: string;
  /** The trained graph: its trainable params are counted. */
  readonly graph: Graph;
  readonly params: Readonly<Record<string, Float32Array>>;
  /** Class names: a classifier reports accuracy, a language model loss only. */
  readonly labels?: readonly string[];
  readonly before: SplitMetrics;
  readonly after: SplitMetrics;
  readonly result: Pick<TrainResult, "loss" | "stepMs" | "tokensPerS">;
  readonly testMetrics: Json;
  readonly adapterBytes: number | null;
  /** The run's settings (the checkpoint's config), appended to the summary. */
  readonly runConfig: { readonly [key: string]: Json };
}

/**
 * summary.json's object: parameter counts, accuracy and loss before → after, the test split's
 * per-class metrics, speed and the run's settings (snake_case, as in metrics.jsonl).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { finetuneSummary } from "./_finetune_summary.ts";
 * const graph = trace((x) => ({ loss: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const summary = finetuneSummary({
 *   method: "full",
 *   graph,
 *   params: { w: new Float32Array(2) },
 *   before: { validation: { loss: 2 } },
 *   after: { validation: { loss: 1 } },
 *   result: { loss: 1.5, stepMs: 3, tokensPerS: 100 },
 *   testMetrics: null,
 *   adapterBytes: null,
 *   runConfig: { steps: 10 },
 * });
 * strictEqual(summary.total_params, 2);
 * deepStrictEqual(summary.loss, {
 *   train: 1.5,
 *   validation: { before: 2, after: 1 },
 *   test: { before: null, after: null },
 * });
 * strictEqual(JSON.parse(JSON.stringify(summary)).steps, 10); // the run's settings follow
 * ```
 */
export function finetuneSummary(o: FinetuneOutcome) {
  const { graph, params, labels, before, after, result } = o;
  const trainable = graph.params.filter((p) => p.attrs.role === "trainable");
  const at = (
    split: "validation" | "test",
    key: "accuracy" | "loss",
  ) => ({ before: before[split]?.[key] ?? null, after: after[split]?.[key] ?? null });
  return {
    method: o.method,
    trainable_params: trainable.reduce((n, p) => n + params[p.name!].length, 0),
    total_params: graph.params.reduce((n, p) => n + params[p.name!].length, 0),
    accuracy: labels
      ? { validation: at("validation", "accuracy"), test: at("test", "accuracy") }
      : null,
    loss: { train: result.loss, validation: at("validation", "loss"), test: at("test", "loss") },
    test_metrics: o.testMetrics,
    adapter_bytes: o.adapterBytes,
    step_ms: result.stepMs,
    tokens_per_s: result.tokensPerS,
    ...o.runConfig,
  };
}

const percent = (v: number | undefined) => v === undefined ? "?" : `${(100 * v).toFixed(1)}%`;

/**
 * The line `finetune` prints: trainable params, validation and test accuracy (a classifier) or
 * loss before → after, and the step time (or the checkpoint a finished run was completed from).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { finetuneLine } from "./_finetune_summary.ts";
 * const line = finetuneLine({
 *   method: "vera",
 *   trainableParams: 1234,
 *   classifier: true,
 *   before: { validation: { loss: 0.7, accuracy: 0.5 } },
 *   after: { validation: { loss: 0.3, accuracy: 0.9 } },
 *   result: { stepMs: 12.34, step: 20 },
 *   out: "runs/a",
 * });
 * strictEqual(
 *   line,
 *   "finetune vera: 1,234 trainable params; validation accuracy 50.0% → 90.0%, test ? → ?; 12.3 ms/step → runs/a",
 * );
 * ```
 */
export function finetuneLine(o: {
  readonly method: string;
  readonly trainableParams: number;
  readonly classifier: boolean;
  readonly before: SplitMetrics;
  readonly after: SplitMetrics;
  readonly result: Pick<TrainResult, "stepMs" | "step">;
  readonly out: string;
}): string {
  const { before, after, result } = o;
  const change = (key: "accuracy" | "loss", split: "validation" | "test") => {
    const show = key === "accuracy" ? percent : (v?: number) => v?.toFixed(4) ?? "?";
    return `${show(before[split]?.[key])} → ${show(after[split]?.[key])}`;
  };
  const key = o.classifier ? "accuracy" : "loss";
  return `finetune ${o.method}: ${o.trainableParams.toLocaleString("en-US")} trainable params; ` +
    `validation ${key} ${change(key, "validation")}, test ${change(key, "test")}; ` +
    `${
      Number.isFinite(result.stepMs)
        ? `${result.stepMs.toFixed(1)} ms/step`
        : `finished from its step-${result.step} checkpoint`
    } → ${o.out}`;
}
