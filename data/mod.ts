/**
 * wgrad's data entry point (`@wgrad/wgrad/data`): batching, tokenization,
 * splits, and the built-in data sets. Kept apart from the library entry point
 * because the data sets are npm packages of several megabytes that a program
 * training on its own data never needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classificationTask } from "./mod.ts";
 * assert.ok(classificationTask("names").train.length > 1000);
 * ```
 *
 * @module
 */
export * from "./batches.ts";
export * from "./tokenizer.ts";
export * from "./split.ts";
export * from "./random.ts";
export * from "./names.ts";
export * from "./spam.ts";
export * from "./datasets.ts";
export * from "./registry.ts";
