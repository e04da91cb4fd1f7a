// A strict JSON parser over UTF-8 bytes. `JSON.parse` silently keeps the last
// of two duplicate keys, accepts lone surrogates and reports positions in
// UTF-16 units; headers of untrusted files need all three done right, so this
// parser rejects duplicates at every level, bounds nesting depth, keeps the
// exact text of numbers (so callers can demand integers without float
// rounding) and reports byte offsets.

/** A JSON number kept as its source text; `value` converts it on demand. */
export class JsonNumber {
  constructor(readonly text: string) {}
  get value(): number {
    return Number(this.text);
  }
}

/** Parsed JSON: objects are Maps (insertion-ordered, no prototype keys). */
export type JsonValue =
  | null
  | boolean
  | string
  | JsonNumber
  | JsonValue[]
  | Map<string, JsonValue>;

/** Options for {@linkcode parseJsonStrict}. */
export interface StrictJsonOptions {
  /** Deepest allowed nesting of arrays and objects; default 64. */
  maxDepth?: number;
  /** Added to positions in error messages (where the bytes sit in a file). */
  baseOffset?: number;
  /** Prefix for error messages, e.g. "safetensors header". */
  label?: string;
}

const decoder = new TextDecoder("utf-8", { fatal: true });
const SIMPLE_ESCAPES: Record<number, string> = {
  0x22: '"',
  0x5c: "\\",
  0x2f: "/",
  0x62: "\b",
  0x66: "\f",
  0x6e: "\n",
  0x72: "\r",
  0x74: "\t",
};

/** JSON-quote `text` for an error message, shortened if long. */
export function quote(text: string, max = 80): string {
  return text.length > max ? `${JSON.stringify(text.slice(0, max))}...` : JSON.stringify(text);
}

/** Byte index of the first invalid UTF-8 sequence, or -1 when valid. */
export function utf8ErrorOffset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number, min: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    if (i + need >= bytes.length) return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * Parse UTF-8 JSON bytes strictly. Throws an Error naming the byte offset on
 * invalid UTF-8, syntax errors, NaN/Infinity, duplicate keys, lone
 * surrogates, nesting deeper than `maxDepth` or trailing data.
 */
export function parseJsonStrict(bytes: Uint8Array, options: StrictJsonOptions = {}): JsonValue {
  const parser = new StrictParser(bytes, options);
  const bad = utf8ErrorOffset(bytes);
  if (bad >= 0) parser.fail("invalid UTF-8", bad);
  return parser.document();
}

/** A recursive-descent parser over the bytes; `pos` is the next byte to read. */
class StrictParser {
  pos = 0;
  readonly #bytes: Uint8Array;
  readonly #maxDepth: number;
  readonly #base: number;
  readonly #label: string;

  constructor(bytes: Uint8Array, options: StrictJsonOptions) {
    this.#bytes = bytes;
    this.#maxDepth = options.maxDepth ?? 64;
    this.#base = options.baseOffset ?? 0;
    this.#label = options.label ?? "JSON";
  }

  fail(message: string, at: number): never {
    throw new Error(`${this.#label}: ${message} at byte ${this.#base + at}`);
  }

  /** The whole text: one value, surrounded by whitespace only. */
  document(): JsonValue {
    this.#skipWhitespace();
    if (this.pos >= this.#bytes.length) this.fail("empty JSON text", this.pos);
    const value = this.#value(0, "");
    this.#skipWhitespace();
    if (this.pos < this.#bytes.length) {
      this.fail(`unexpected ${this.#describe(this.pos)} after the JSON value`, this.pos);
    }
    return value;
  }

  #skipWhitespace(): void {
    const bytes = this.#bytes;
    while (this.pos < bytes.length) {
      const c = bytes[this.pos];
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  #describe(at: number): string {
    if (at >= this.#bytes.length) return "end of input";
    const c = this.#bytes[at];
    return c >= 0x21 && c < 0x7f
      ? `'${String.fromCharCode(c)}'`
      : `byte 0x${c.toString(16).padStart(2, "0")}`;
  }

  #literal<T>(word: string, value: T): T {
    for (let k = 0; k < word.length; k++) {
      if (this.#bytes[this.pos + k] !== word.charCodeAt(k)) {
        this.fail(`invalid literal, expected '${word}'`, this.pos);
      }
    }
    this.pos += word.length;
    return value;
  }

  #digits(): void {
    const bytes = this.#bytes;
    const from = this.pos;
    while (bytes[this.pos] >= 0x30 && bytes[this.pos] <= 0x39) this.pos++;
    if (this.pos === from) {
      this.fail(`expected a digit, found ${this.#describe(this.pos)}`, this.pos);
    }
  }

  #number(): JsonNumber {
    const bytes = this.#bytes;
    const start = this.pos;
    if (bytes[this.pos] === 0x2d) this.pos++;
    if (bytes[this.pos] === 0x49) this.fail("Infinity is not valid JSON", start);
    if (bytes[this.pos] === 0x30) {
      this.pos++;
      if (bytes[this.pos] >= 0x30 && bytes[this.pos] <= 0x39) {
        this.fail("numbers must not have leading zeros", start);
      }
    } else this.#digits();
    if (bytes[this.pos] === 0x2e) {
      this.pos++;
      this.#digits();
    }
    if (bytes[this.pos] === 0x65 || bytes[this.pos] === 0x45) {
      this.pos++;
      if (bytes[this.pos] === 0x2b || bytes[this.pos] === 0x2d) this.pos++;
      this.#digits();
    }
    return new JsonNumber(decoder.decode(bytes.subarray(start, this.pos)));
  }

  #hex4(at: number): number {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.#bytes[at + k];
      const d = c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
        ? c - 0x57
        : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : -1;
      if (d < 0) this.fail("invalid \\u escape, expected 4 hex digits", at - 2);
      v = v * 16 + d;
    }
    return v;
  }

  /** A `\u` escape at `pos` (with its low surrogate when it starts a pair). */
  #unicodeEscape(): string {
    const bytes = this.#bytes;
    const at = this.pos;
    const unit = this.#hex4(at + 2);
    if (unit >= 0xdc00 && unit <= 0xdfff) this.fail("lone low surrogate in \\u escape", at);
    if (unit < 0xd800 || unit > 0xdbff) {
      this.pos += 6;
      return String.fromCharCode(unit);
    }
    if (bytes[at + 6] !== 0x5c || bytes[at + 7] !== 0x75) {
      this.fail("lone high surrogate in \\u escape", at);
    }
    const low = this.#hex4(at + 8);
    if (low < 0xdc00 || low > 0xdfff) this.fail("lone high surrogate in \\u escape", at);
    this.pos += 12;
    return String.fromCharCode(unit, low);
  }

  #string(): string {
    const bytes = this.#bytes;
    this.pos++; // opening quote
    let out = "";
    let chunkStart = this.pos;
    for (;;) {
      if (this.pos >= bytes.length) this.fail("unterminated string", chunkStart - 1);
      const c = bytes[this.pos];
      if (c === 0x22) break;
      if (c < 0x20) this.fail("unescaped control character in string", this.pos);
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += decoder.decode(bytes.subarray(chunkStart, this.pos));
      const e = bytes[this.pos + 1];
      if (e in SIMPLE_ESCAPES) {
        out += SIMPLE_ESCAPES[e];
        this.pos += 2;
      } else if (e === 0x75) {
        out += this.#unicodeEscape();
      } else {
        this.fail(
          `invalid escape, backslash followed by ${this.#describe(this.pos + 1)}`,
          this.pos,
        );
      }
      chunkStart = this.pos;
    }
    out += decoder.decode(bytes.subarray(chunkStart, this.pos));
    this.pos++; // closing quote
    return out;
  }

  #value(depth: number, path: string): JsonValue {
    this.#skipWhitespace();
    const c = this.#bytes[this.pos];
    if (c === 0x7b || c === 0x5b) {
      if (depth >= this.#maxDepth) {
        this.fail(`nesting deeper than ${this.#maxDepth} levels`, this.pos);
      }
      return c === 0x7b ? this.#object(depth + 1, path) : this.#array(depth + 1, path);
    }
    if (c === 0x22) return this.#string();
    if (c === 0x74) return this.#literal("true", true);
    if (c === 0x66) return this.#literal("false", false);
    if (c === 0x6e) return this.#literal("null", null);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.#number();
    if (c === 0x4e) this.fail("NaN is not valid JSON", this.pos);
    if (c === 0x49) this.fail("Infinity is not valid JSON", this.pos);
    return this.fail(`expected a JSON value, found ${this.#describe(this.pos)}`, this.pos);
  }

  #array(depth: number, path: string): JsonValue[] {
    const bytes = this.#bytes;
    this.pos++;
    const items: JsonValue[] = [];
    this.#skipWhitespace();
    if (bytes[this.pos] === 0x5d) {
      this.pos++;
      return items;
    }
    for (;;) {
      items.push(this.#value(depth, `${path}/${items.length}`));
      this.#skipWhitespace();
      if (bytes[this.pos] === 0x2c) this.pos++;
      else if (bytes[this.pos] === 0x5d) return this.pos++, items;
      else this.fail(`expected ',' or ']' in array, found ${this.#describe(this.pos)}`, this.pos);
    }
  }

  #object(depth: number, path: string): Map<string, JsonValue> {
    const bytes = this.#bytes;
    this.pos++;
    const map = new Map<string, JsonValue>();
    this.#skipWhitespace();
    if (bytes[this.pos] === 0x7d) {
      this.pos++;
      return map;
    }
    for (;;) {
      this.#skipWhitespace();
      if (bytes[this.pos] !== 0x22) {
        this.fail(`expected a string key, found ${this.#describe(this.pos)}`, this.pos);
      }
      const keyAt = this.pos;
      const key = this.#string();
      if (map.has(key)) {
        this.fail(`duplicate key ${quote(key)} in object ${path.slice(0, 200) || "/"}`, keyAt);
      }
      this.#skipWhitespace();
      if (bytes[this.pos] !== 0x3a) {
        this.fail(`expected ':' after key, found ${this.#describe(this.pos)}`, this.pos);
      }
      this.pos++;
      map.set(key, this.#value(depth, `${path}/${key}`));
      this.#skipWhitespace();
      if (bytes[this.pos] === 0x2c) this.pos++;
      else if (bytes[this.pos] === 0x7d) return this.pos++, map;
      else this.fail(`expected ',' or '}' in object, found ${this.#describe(this.pos)}`, this.pos);
    }
  }
}

/** Convert a parsed tree to plain JS values (numbers become `number`). */
export function toPlainJson(value: JsonValue): unknown {
  if (value instanceof JsonNumber) return value.value;
  if (Array.isArray(value)) return value.map(toPlainJson);
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) {
      // defineProperty so a "__proto__" key stays an own data property.
      Object.defineProperty(out, k, {
        value: toPlainJson(v),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

/** Shorten raw text (e.g. a number's digits) for an error message. */
export function short(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}

/** Name a parsed value's JSON type for error messages. */
export function jsonTypeName(value: JsonValue | undefined): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (value instanceof JsonNumber) return `number ${short(value.text)}`;
  if (Array.isArray(value)) return "array";
  if (value instanceof Map) return "object";
  return typeof value === "string" ? `string ${quote(value)}` : `${value}`;
}
