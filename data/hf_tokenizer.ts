/**
 * Tokenizers behind one interface: Hugging Face `tokenizer.json` files (byte-level BPE as in GPT-2,
 * BPE with byte fallback as in Llama) through `@huggingface/tokenizers`, and wgrad's own byte
 * tokenizer. No BPE is written here: the library runs the `tokenizer.json` pipeline.
 *
 * @module
 */
import { Tokenizer as HfTokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import {
  BOS,
  decode as byteDecode,
  encode as byteEncode,
  EOS,
  PAD,
  vocabSize,
} from "./tokenizer.ts";

/**
 * What models and the data pipeline need from a tokenizer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteTokenizer, type Tokenizer } from "./hf_tokenizer.ts";
 * const t: Tokenizer = byteTokenizer();
 * assert.deepEqual(t.encode("hi"), [104, 105]);
 * ```
 */
export interface Tokenizer {
  /** Token ids of `text`; `addSpecialTokens` (default true) applies the post-processor (e.g. BOS). */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; `skipSpecialTokens` (default false) drops special tokens. */
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Number of ids, added tokens included. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, if the tokenizer has one. */
  readonly bosId?: number;
  /** End-of-sequence id, if the tokenizer has one. */
  readonly eosId?: number;
  /** Padding id, if the tokenizer has one. */
  readonly padId?: number;
}

/**
 * wgrad's byte tokenizer (UTF-8 bytes 0..255, then PAD, BOS, EOS, CLS) as a {@link Tokenizer}.
 * `addSpecialTokens` adds nothing: the byte models are trained on bare bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteTokenizer } from "./hf_tokenizer.ts";
 * const t = byteTokenizer();
 * assert.equal(t.decode(t.encode("héllo")), "héllo");
 * assert.equal(t.vocabSize, 260);
 * ```
 */
export function byteTokenizer(): Tokenizer {
  return {
    encode: (text) => [...byteEncode(text)],
    decode: (ids, options) =>
      byteDecode(options?.skipSpecialTokens ? ids.filter((i) => i < 256) : ids),
    vocabSize,
    bosId: BOS,
    eosId: EOS,
    padId: PAD,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The content of a special token as tokenizer_config.json writes it (string or AddedToken dict). */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isRecord(v) && typeof v.content === "string") return v.content;
  return undefined;
}

/**
 * A {@link Tokenizer} from the parsed contents of `tokenizer.json` and (optionally)
 * `tokenizer_config.json`, whose `bos_token` / `eos_token` / `pad_token` name the special ids.
 * `where` names the file in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenizerFromJson } from "./hf_tokenizer.ts";
 * const json = {
 *   version: "1.0", added_tokens: [{ id: 3, content: "<eos>", special: true, single_word: false,
 *     lstrip: false, rstrip: false, normalized: false }],
 *   normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null,
 *   model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2 }, merges: [["a", "b"]], unk_token: null },
 * };
 * const t = tokenizerFromJson(json, { eos_token: "<eos>" });
 * assert.deepEqual(t.encode("ab"), [2]);
 * assert.equal(t.eosId, 3);
 * ```
 */
export function tokenizerFromJson(
  json: unknown,
  config: unknown = {},
  where = "tokenizer.json",
): Tokenizer {
  if (!isRecord(json) || !isRecord(json.model)) {
    throw new Error(`${where}: not a tokenizer.json (no "model" object)`);
  }
  const cfg = isRecord(config) ? config : {};
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(json, cfg);
  } catch (e) {
    throw new Error(`${where}: cannot build the tokenizer: ${(e as Error).message}`);
  }
  const idOf = (key: string): number | undefined => {
    const text = tokenText(cfg[key]);
    return text === undefined ? undefined : tok.token_to_id(text);
  };
  const size = Math.max(
    ...[...tok.get_vocab(true).values()].map((id) => id + 1),
    0,
  );
  return {
    encode: (text, options) =>
      tok.encode(text, { add_special_tokens: options?.addSpecialTokens ?? true }).ids,
    // The library refuses an empty list; Python's decodes it to "".
    decode: (ids, options) =>
      ids.length === 0
        ? ""
        : tok.decode([...ids], { skip_special_tokens: options?.skipSpecialTokens ?? false }),
    vocabSize: size,
    bosId: idOf("bos_token"),
    eosId: idOf("eos_token"),
    padId: idOf("pad_token"),
  };
}

async function readJson(path: string): Promise<unknown> {
  const text = await Deno.readTextFile(path).catch((e: Error) => {
    throw new Error(`cannot read ${path}: ${e.message}`);
  });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${(e as Error).message}`);
  }
}

/**
 * Loads `DIR/tokenizer.json` (and `DIR/tokenizer_config.json` when present).
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { loadHfTokenizer } from "./hf_tokenizer.ts";
 * await rejects(loadHfTokenizer("no-such-dir"), { message: /^cannot read no-such-dir\/tokenizer\.json: / });
 * ```
 */
export async function loadHfTokenizer(dir: string): Promise<Tokenizer> {
  const path = `${dir}/tokenizer.json`;
  const json = await readJson(path);
  let config: unknown = {};
  const configPath = `${dir}/tokenizer_config.json`;
  try {
    await Deno.stat(configPath);
    config = await readJson(configPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return tokenizerFromJson(json, config, path);
}
