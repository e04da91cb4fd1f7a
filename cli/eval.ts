/** The `eval` command: loss and perplexity of a language model, or a classifier's metrics. */
import type { TrainCommandOptions } from "./_train_common.ts";
import { UsageError } from "./_args.ts";
import { scoreDataFile, SCORING_FLAGS } from "./_scoring.ts";
import { classificationMetrics, formatClassificationMetrics } from "../train/metrics_cls.ts";

/**
 * The flags of `eval`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { flagHelp } from "./_args.ts";
 * import { EVAL_FLAGS } from "./eval.ts";
 * strictEqual(flagHelp(EVAL_FLAGS).includes("--data"), true);
 * ```
 */
export const EVAL_FLAGS = SCORING_FLAGS;

/**
 * `eval`: measures the base model (with `--adapter`) on `--data`: mean
 * next-token loss and perplexity for a language model; accuracy, per-class
 * precision/recall/F1, macro-F1, the confusion matrix and the mean
 * cross-entropy for a classifier. `--json` prints one JSON document.
 *
 * @example
 * ```ts
 * import { evalCommand } from "./eval.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/d.txt`, "Anna and Bob");
 * await evalCommand(["--base", "models/gpt-spam-2L-d64-t128.safetensors", "--data", `${dir}/d.txt`, "--backend", "cpu", "--json"]);
 * ```
 */
export async function evalCommand(
  args: readonly string[],
  options: TrainCommandOptions = {},
): Promise<void> {
  const { values, model, data, scores } = await scoreDataFile("eval", args, EVAL_FLAGS, {
    ...options,
    unlabelled: false,
  });
  if (model.labels) {
    const probabilities = data.spans.map((s) => scores[s.start].probabilities!);
    const predicted = probabilities.map((p) => p.indexOf(Math.max(...p)));
    const m = classificationMetrics(data.actual, predicted, model.labels);
    const loss = probabilities.reduce((n, p, i) => n - Math.log(p[data.actual[i]]), 0) /
      probabilities.length;
    if (values.json) {
      console.log(JSON.stringify({
        task: "classification",
        count: m.count,
        loss,
        accuracy: m.accuracy,
        macro_f1: m.macroF1,
        labels: model.labels,
        per_class: m.perClass,
        confusion: m.confusion,
      }));
      return;
    }
    console.log(`${formatClassificationMetrics(m)}\nloss ${loss.toFixed(4)}`);
    return;
  }
  const tokens = scores.reduce((n, s) => n + s.tokens!, 0);
  if (tokens === 0) throw new UsageError(`eval: ${values.data}: no tokens to predict`);
  const loss = scores.reduce((n, s) => n + s.nll!, 0) / tokens;
  const result = {
    task: "lm",
    loss,
    perplexity: Math.exp(loss),
    tokens,
    documents: data.texts.length,
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `loss ${loss.toFixed(4)}  perplexity ${result.perplexity.toFixed(2)}  ` +
        `(${tokens} tokens, ${result.documents} documents)`,
    );
  }
}
