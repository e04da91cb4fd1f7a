/**
 * Deterministic, order-independent train/validation/test assignment from a
 * stable hash of an example's id.
 *
 * @module
 */

/**
 * Name of a dataset split.
 *
 * @example
 * ```ts
 * import type { SplitName } from "./split.ts";
 * const s: SplitName = "validation";
 * ```
 */
export type SplitName = "train" | "validation" | "test";

/**
 * The three splits, each holding items of type `T`.
 *
 * @example
 * ```ts
 * import type { Splits } from "./split.ts";
 * const s: Splits<string> = { train: ["a"], validation: [], test: ["b"] };
 * ```
 */
export interface Splits<T> {
  /** ≈80% of the items. */
  train: T[];
  /** ≈10% of the items. */
  validation: T[];
  /** ≈10% of the items. */
  test: T[];
}

/**
 * Percentage of hash buckets given to each split (80/10/10).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { SPLIT_PERCENT } from "./split.ts";
 * deepStrictEqual(SPLIT_PERCENT, { train: 80, validation: 10, test: 10 });
 * ```
 */
export const SPLIT_PERCENT: Readonly<Record<SplitName, number>> = Object.freeze({
  train: 80,
  validation: 10,
  test: 10,
});

const encoder = new TextEncoder();

/**
 * 32-bit FNV-1a hash of the UTF-8 bytes of a string (unsigned result).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { fnv1a32 } from "./split.ts";
 * strictEqual(fnv1a32(""), 2166136261); // the offset basis
 * strictEqual(fnv1a32("a"), 3826002220);
 * ```
 */
export function fnv1a32(text: string): number {
  const bytes = encoder.encode(text);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Murmur3 32-bit finalizer: mixes all bits of `h` (unsigned result).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { fmix32 } from "./split.ts";
 * strictEqual(fmix32(0), 0);
 * strictEqual(fmix32(12345), 1011272156);
 * ```
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Split of an item, from its id alone: `fmix32(fnv1a32(id)) % 100` bucketed
 * 80/10/10. Independent of dataset order and of the other items.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { fmix32, fnv1a32, splitOf } from "./split.ts";
 * const s = splitOf("spam-2/00042"); // always the same answer for this id
 * strictEqual(s, "train");
 * ok(fmix32(fnv1a32("spam-2/00042")) % 100 < 80); // its bucket is one of train's 80
 * ```
 */
export function splitOf(id: string): SplitName {
  const bucket = fmix32(fnv1a32(id)) % 100;
  if (bucket < SPLIT_PERCENT.train) return "train";
  if (bucket < SPLIT_PERCENT.train + SPLIT_PERCENT.validation) return "validation";
  return "test";
}

/**
 * Partitions items into splits by the stable hash of `key(item)`, keeping
 * the input order within each split.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { splitBy, splitOf } from "./split.ts";
 * const names = ["ann", "bob", "cy", "dee", "eve", "flo", "gus", "hal"];
 * const { train, validation, test } = splitBy(names, (s) => s);
 * deepStrictEqual(train, names.filter((s) => splitOf(s) === "train")); // in input order
 * deepStrictEqual([...train, ...validation, ...test].sort(), names);
 * ```
 */
export function splitBy<T>(items: readonly T[], key: (item: T) => string): Splits<T> {
  const out: Splits<T> = { train: [], validation: [], test: [] };
  for (const item of items) out[splitOf(key(item))].push(item);
  return out;
}
