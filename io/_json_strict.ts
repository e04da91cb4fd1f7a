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
  const maxDepth = options.maxDepth ?? 64;
  const base = options.baseOffset ?? 0;
  const label = options.label ?? "JSON";
  const fail = (message: string, at: number): never => {
    throw new Error(`${label}: ${message} at byte ${base + at}`);
  };
  const bad = utf8ErrorOffset(bytes);
  if (bad >= 0) fail("invalid UTF-8", bad);
  let pos = 0;

  const skipWhitespace = () => {
    while (pos < bytes.length) {
      const c = bytes[pos];
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      pos++;
    }
  };
  const describe = (at: number) => {
    if (at >= bytes.length) return "end of input";
    const c = bytes[at];
    return c >= 0x21 && c < 0x7f
      ? `'${String.fromCharCode(c)}'`
      : `byte 0x${c.toString(16).padStart(2, "0")}`;
  };

  const parseLiteral = <T>(word: string, value: T): T => {
    for (let k = 0; k < word.length; k++) {
      if (bytes[pos + k] !== word.charCodeAt(k)) fail(`invalid literal, expected '${word}'`, pos);
    }
    pos += word.length;
    return value;
  };

  const parseNumber = (): JsonNumber => {
    const start = pos;
    const digits = () => {
      const from = pos;
      while (bytes[pos] >= 0x30 && bytes[pos] <= 0x39) pos++;
      if (pos === from) fail(`expected a digit, found ${describe(pos)}`, pos);
    };
    if (bytes[pos] === 0x2d) pos++;
    if (bytes[pos] === 0x49) fail("Infinity is not valid JSON", start);
    if (bytes[pos] === 0x30) {
      pos++;
      if (bytes[pos] >= 0x30 && bytes[pos] <= 0x39) {
        fail("numbers must not have leading zeros", start);
      }
    } else digits();
    if (bytes[pos] === 0x2e) {
      pos++;
      digits();
    }
    if (bytes[pos] === 0x65 || bytes[pos] === 0x45) {
      pos++;
      if (bytes[pos] === 0x2b || bytes[pos] === 0x2d) pos++;
      digits();
    }
    return new JsonNumber(decoder.decode(bytes.subarray(start, pos)));
  };

  const hex4 = (at: number): number => {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = bytes[at + k];
      const d = c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
        ? c - 0x57
        : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : -1;
      if (d < 0) fail("invalid \\u escape, expected 4 hex digits", at - 2);
      v = v * 16 + d;
    }
    return v;
  };

  const parseString = (): string => {
    pos++; // opening quote
    let out = "";
    let chunkStart = pos;
    for (;;) {
      if (pos >= bytes.length) fail("unterminated string", chunkStart - 1);
      const c = bytes[pos];
      if (c === 0x22) break;
      if (c < 0x20) fail("unescaped control character in string", pos);
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += decoder.decode(bytes.subarray(chunkStart, pos));
      const e = bytes[pos + 1];
      if (e in SIMPLE_ESCAPES) {
        out += SIMPLE_ESCAPES[e];
        pos += 2;
      } else if (e === 0x75) {
        const unit = hex4(pos + 2);
        if (unit >= 0xdc00 && unit <= 0xdfff) fail("lone low surrogate in \\u escape", pos);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (bytes[pos + 6] !== 0x5c || bytes[pos + 7] !== 0x75) {
            fail("lone high surrogate in \\u escape", pos);
          }
          const low = hex4(pos + 8);
          if (low < 0xdc00 || low > 0xdfff) fail("lone high surrogate in \\u escape", pos);
          out += String.fromCharCode(unit, low);
          pos += 12;
        } else {
          out += String.fromCharCode(unit);
          pos += 6;
        }
      } else fail(`invalid escape, backslash followed by ${describe(pos + 1)}`, pos);
      chunkStart = pos;
    }
    out += decoder.decode(bytes.subarray(chunkStart, pos));
    pos++; // closing quote
    return out;
  };

  const parseValue = (depth: number, path: string): JsonValue => {
    skipWhitespace();
    const c = bytes[pos];
    if (c === 0x7b || c === 0x5b) {
      if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth} levels`, pos);
      return c === 0x7b ? parseObject(depth + 1, path) : parseArray(depth + 1, path);
    }
    if (c === 0x22) return parseString();
    if (c === 0x74) return parseLiteral("true", true);
    if (c === 0x66) return parseLiteral("false", false);
    if (c === 0x6e) return parseLiteral("null", null);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return parseNumber();
    if (c === 0x4e) fail("NaN is not valid JSON", pos);
    if (c === 0x49) fail("Infinity is not valid JSON", pos);
    return fail(`expected a JSON value, found ${describe(pos)}`, pos);
  };

  const parseArray = (depth: number, path: string): JsonValue[] => {
    pos++;
    const items: JsonValue[] = [];
    skipWhitespace();
    if (bytes[pos] === 0x5d) {
      pos++;
      return items;
    }
    for (;;) {
      items.push(parseValue(depth, `${path}/${items.length}`));
      skipWhitespace();
      if (bytes[pos] === 0x2c) pos++;
      else if (bytes[pos] === 0x5d) return pos++, items;
      else fail(`expected ',' or ']' in array, found ${describe(pos)}`, pos);
    }
  };

  const parseObject = (depth: number, path: string): Map<string, JsonValue> => {
    pos++;
    const map = new Map<string, JsonValue>();
    skipWhitespace();
    if (bytes[pos] === 0x7d) {
      pos++;
      return map;
    }
    for (;;) {
      skipWhitespace();
      if (bytes[pos] !== 0x22) fail(`expected a string key, found ${describe(pos)}`, pos);
      const keyAt = pos;
      const key = parseString();
      if (map.has(key)) {
        fail(`duplicate key ${quote(key)} in object ${path.slice(0, 200) || "/"}`, keyAt);
      }
      skipWhitespace();
      if (bytes[pos] !== 0x3a) fail(`expected ':' after key, found ${describe(pos)}`, pos);
      pos++;
      map.set(key, parseValue(depth, `${path}/${key}`));
      skipWhitespace();
      if (bytes[pos] === 0x2c) pos++;
      else if (bytes[pos] === 0x7d) return pos++, map;
      else fail(`expected ',' or '}' in object, found ${describe(pos)}`, pos);
    }
  };

  skipWhitespace();
  if (pos >= bytes.length) fail("empty JSON text", pos);
  const value = parseValue(0, "");
  skipWhitespace();
  if (pos < bytes.length) fail(`unexpected ${describe(pos)} after the JSON value`, pos);
  return value;
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
