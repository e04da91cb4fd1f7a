/**
 * Byte-level tokenizer: every UTF-8 byte is a token (ids 0..255), plus four
 * special tokens (PAD, BOS, EOS, CLS) at ids 256..259.
 *
 * @module
 */

/**
 * Padding token id.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { PAD } from "./tokenizer.ts";
 * strictEqual(PAD, 256);
 * ```
 */
export const PAD = 256;

/**
 * Beginning-of-sequence token id.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { BOS, encode } from "./tokenizer.ts";
 * strictEqual(encode("a", { addBos: true })[0], BOS);
 * strictEqual(BOS, 257);
 * ```
 */
export const BOS = 257;

/**
 * End-of-sequence token id.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encode, EOS } from "./tokenizer.ts";
 * strictEqual(encode("a", { addEos: true })[1], EOS);
 * strictEqual(EOS, 258);
 * ```
 */
export const EOS = 258;

/**
 * Classification token id (reserved; the data pipeline itself does not insert it).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { CLS } from "./tokenizer.ts";
 * strictEqual(CLS, 259);
 * ```
 */
export const CLS = 259;

/**
 * Number of distinct byte tokens (ids `0..BYTE_VOCAB-1` are raw bytes).
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { BYTE_VOCAB, encode } from "./tokenizer.ts";
 * const isByte = (id: number) => id >= 0 && id < BYTE_VOCAB;
 * ok(encode("ÿ€").every(isByte)); // without specials, every id is a byte
 * ```
 */
export const BYTE_VOCAB = 256;

/**
 * Total vocabulary size: 256 bytes + 4 special tokens.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { BYTE_VOCAB, SPECIAL_TOKENS, vocabSize } from "./tokenizer.ts";
 * const embedRows = vocabSize;
 * strictEqual(embedRows, 260);
 * strictEqual(vocabSize, BYTE_VOCAB + Object.keys(SPECIAL_TOKENS).length);
 * ```
 */
export const vocabSize = 260;

/**
 * Names of the special tokens, keyed by id.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { PAD, SPECIAL_TOKENS } from "./tokenizer.ts";
 * strictEqual(SPECIAL_TOKENS[PAD], "<pad>");
 * ```
 */
export const SPECIAL_TOKENS: Readonly<Record<number, string>> = Object.freeze({
  [PAD]: "<pad>",
  [BOS]: "<bos>",
  [EOS]: "<eos>",
  [CLS]: "<cls>",
});

/**
 * Options of {@linkcode encode}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encode, type EncodeOptions } from "./tokenizer.ts";
 * const opts: EncodeOptions = { maxLength: 8, addBos: true, pad: true };
 * strictEqual(encode("hi", opts).length, 8); // BOS, "h", "i", then 5 PADs
 * ```
 */
export interface EncodeOptions {
  /** Maximum number of tokens (specials included). Unlimited when omitted. */
  maxLength?: number;
  /** Prepend {@linkcode BOS}. Default false. */
  addBos?: boolean;
  /** Append {@linkcode EOS}. Default false. */
  addEos?: boolean;
  /** Pad with {@linkcode PAD} up to `maxLength` (requires `maxLength`). Default false. */
  pad?: boolean;
  /**
   * What to do when the sequence is longer than `maxLength`: `"end"` (default)
   * drops bytes from the end, `"start"` drops bytes from the start, `"error"`
   * throws. BOS/EOS are kept whenever `maxLength` leaves room for them.
   */
  truncate?: "end" | "start" | "error";
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * UTF-8 bytes of a string.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { utf8Bytes } from "./tokenizer.ts";
 * deepStrictEqual(utf8Bytes("é"), new Uint8Array([0xc3, 0xa9])); // 2 bytes
 * ```
 */
export function utf8Bytes(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/**
 * Encodes text as UTF-8 byte tokens, optionally with BOS/EOS, truncation and padding.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { encode, PAD } from "./tokenizer.ts";
 * const ids = encode("hey", { maxLength: 5, pad: true });
 * deepStrictEqual(ids, new Int32Array([104, 101, 121, 256, 256]));
 * strictEqual(ids[4], PAD);
 * ```
 */
export function encode(text: string, options: EncodeOptions = {}): Int32Array {
  const { maxLength, addBos = false, addEos = false, pad = false, truncate = "end" } = options;
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 0)) {
    throw new RangeError(`maxLength must be a non-negative integer, got ${maxLength}`);
  }
  if (pad && maxLength === undefined) throw new Error("pad requires maxLength");
  let bytes = utf8Encoder.encode(text);
  const specials = (addBos ? 1 : 0) + (addEos ? 1 : 0);
  const total = bytes.length + specials;
  if (maxLength !== undefined && total > maxLength) {
    if (truncate === "error") {
      throw new RangeError(`sequence of ${total} tokens exceeds maxLength ${maxLength}`);
    }
    const room = Math.max(0, maxLength - specials);
    bytes = truncate === "start" ? bytes.subarray(bytes.length - room) : bytes.subarray(0, room);
  }
  const natural = bytes.length + specials;
  const length = pad ? maxLength! : Math.min(natural, maxLength ?? natural);
  const out = new Int32Array(length);
  if (pad) out.fill(PAD);
  let p = 0;
  if (addBos && p < length) out[p++] = BOS;
  for (let i = 0; i < bytes.length && p < length; i++) out[p++] = bytes[i];
  if (addEos && p < length) out[p++] = EOS;
  return out;
}

/**
 * Decodes token ids back to text. Special tokens are skipped; byte sequences
 * that are not valid UTF-8 become U+FFFD. Throws on ids outside the vocabulary.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decode, encode } from "./tokenizer.ts";
 * strictEqual(decode(encode("héllo", { addBos: true, addEos: true })), "héllo"); // BOS and EOS are skipped
 * ```
 */
export function decode(ids: ArrayLike<number>): string {
  const bytes = new Uint8Array(ids.length);
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`token id ${id} outside vocabulary [0, ${vocabSize})`);
    }
    if (id < BYTE_VOCAB) bytes[n++] = id;
  }
  return utf8Decoder.decode(bytes.subarray(0, n));
}

/**
 * Truncates a string so that its UTF-8 encoding fits in `maxBytes`, never
 * splitting a code point.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { truncateUtf8 } from "./tokenizer.ts";
 * strictEqual(truncateUtf8("aé", 2), "a"); // é needs 2 bytes
 * strictEqual(truncateUtf8("aé", 3), "aé");
 * ```
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = utf8Encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  // Step back over continuation bytes (10xxxxxx) so we cut at a code point boundary.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return utf8Decoder.decode(bytes.subarray(0, end));
}
