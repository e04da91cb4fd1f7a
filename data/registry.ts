/**
 * The built-in data sets, reached without importing them. The corpora are npm
 * packages of several megabytes; the trainer and the library entry point
 * (`mod.ts`) must not download them, yet the CLI's synchronous task lookups
 * live in the trainer's evaluation module. So the data sets register
 * themselves here when `data/datasets.ts` (or `data/mod.ts`) is imported, and
 * callers look them up at call time.
 *
 * @module
 */
import type { ClassificationExample } from "./batches.ts";
import type { Splits } from "./split.ts";

/** The name of a built-in data set. */
export type DatasetName = "spam" | "names";

/**
 * What the built-in data sets provide.
 *
 * @example
 * ```ts
 * import type { DatasetTasks } from "./registry.ts";
 * const empty: DatasetTasks = {
 *   lmTexts: () => ({ train: [], validation: [], test: [] }),
 *   classificationTask: () => ({ train: [], validation: [], test: [] }),
 * };
 * ```
 */
export interface DatasetTasks {
  /** Texts a language model is pretrained on. */
  lmTexts(data: DatasetName): Splits<string>;
  /** Labelled texts of the data set's classification task. */
  classificationTask(data: DatasetName): Splits<ClassificationExample>;
}

let registered: DatasetTasks | undefined;

/**
 * Makes the data sets available to {@link datasetTasks}; called by `data/datasets.ts` on import.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { datasetTasks, registerDatasets } from "./registry.ts";
 * import { lmTexts, classificationTask } from "./datasets.ts";
 * registerDatasets({ lmTexts, classificationTask });
 * ok(datasetTasks().lmTexts("names").train.length > 0);
 * ```
 */
export function registerDatasets(tasks: DatasetTasks): void {
  registered = tasks;
}

/**
 * The registered data sets; throws, naming the module to import, when none are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "./datasets.ts";
 * import { datasetTasks } from "./registry.ts";
 * assert.ok(datasetTasks().classificationTask("names").train.length > 0);
 * ```
 */
export function datasetTasks(): DatasetTasks {
  if (registered === undefined) {
    throw new Error(
      "the built-in data sets are not loaded: import wgrad's data/mod.ts (the ./data entry point) first",
    );
  }
  return registered;
}
