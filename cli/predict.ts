/** The `predict` command: one line per example with its label and probabilities. */
import type { TrainCommandOptions } from "./_train_common.ts";
import { scoreDataFile, SCORING_FLAGS } from "./_scoring.ts";

/**
 * The flags of `predict`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { flagHelp } from "./_args.ts";
 * import { PREDICT_FLAGS } from "./predict.ts";
 * strictEqual(flagHelp(PREDICT_FLAGS).includes("--adapter"), true);
 * ```
 */
export const PREDICT_FLAGS = SCORING_FLAGS;

const preview = (text: string) => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 60 ? `${flat.slice(0, 57)}...` : flat;
};

/**
 * `predict`: runs the base model (with `--adapter`) over `--data` and prints,
 * per example, the predicted label and every class's probability (a
 * classifier) or the loss and perplexity of the text (a language model).
 * `--json` prints one JSON document instead.
 *
 * @example
 * ```ts
 * import { predictCommand } from "./predict.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/d.txt`, "Anna");
 * await predictCommand(["--base", "models/gpt-spam-2L-d64-t128.safetensors", "--data", `${dir}/d.txt`, "--backend", "cpu"]);
 * ```
 */
export async function predictCommand(
  args: readonly string[],
  options: TrainCommandOptions = {},
): Promise<void> {
  const { values, model, data, scores } = await scoreDataFile("predict", args, PREDICT_FLAGS, {
    ...options,
    unlabelled: true,
  });
  const predictions = data.texts.map((text, i) => {
    const { start, count } = data.spans[i];
    if (model.labels) {
      const p = scores[start].probabilities!;
      const best = p.indexOf(Math.max(...p));
      return {
        text,
        label: model.labels[best],
        probabilities: Object.fromEntries(model.labels.map((l, c) => [l, p[c]])),
        ...(data.actual[i] >= 0 ? { true_label: model.labels[data.actual[i]] } : {}),
      };
    }
    const mine = scores.slice(start, start + count);
    const tokens = mine.reduce((n, s) => n + s.tokens!, 0);
    const loss = tokens === 0 ? null : mine.reduce((n, s) => n + s.nll!, 0) / tokens;
    return { text, loss, perplexity: loss === null ? null : Math.exp(loss), tokens };
  });
  if (values.json) {
    console.log(JSON.stringify({ task: model.task, labels: model.labels ?? null, predictions }));
    return;
  }
  for (const p of predictions) {
    if ("label" in p) {
      const probs = Object.entries(p.probabilities).map(([l, v]) => `${l}=${v.toFixed(4)}`);
      console.log(`${p.label}\t${probs.join(" ")}\t${preview(p.text)}`);
    } else {
      const loss = p.loss === null ? "?" : p.loss.toFixed(4);
      const ppl = p.perplexity === null ? "?" : p.perplexity.toFixed(2);
      console.log(`loss ${loss}\tperplexity ${ppl}\ttokens ${p.tokens}\t${preview(p.text)}`);
    }
  }
}
