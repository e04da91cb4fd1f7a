// Strict validation of a safetensors header. Everything a file claims is
// checked against the file size before any tensor byte is touched, with
// BigInt arithmetic for sizes so no product can wrap around.

import { DTYPES, isDType, type SafetensorsDType } from "./_dtypes.ts";
import {
  JsonNumber,
  jsonTypeName,
  type JsonValue,
  parseJsonStrict,
  quote,
  short,
} from "./_json_strict.ts";

/**
 * Largest header accepted, in bytes; the Rust crate's `MAX_HEADER_SIZE`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { MAX_HEADER_BYTES } from "./safetensors.ts";
 * strictEqual(MAX_HEADER_BYTES, 100000000);
 * ```
 */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * One tensor's entry in a safetensors header. `begin` and `end` are byte
 * offsets relative to the start of the data section (as stored in the file);
 * add {@linkcode SafetensorsHeader.dataStart} for absolute file offsets.
 *
 * @example Absolute file range of a tensor
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseHeader } from "./safetensors.ts";
 * const json = '{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}';
 * const head = new TextEncoder().encode(json);
 * const file = new Uint8Array(8 + head.length + 2);
 * new DataView(file.buffer).setBigUint64(0, BigInt(head.length), true);
 * file.set(head, 8);
 * const header = parseHeader(file, file.length);
 * const w = header.tensors[0];
 * strictEqual(header.dataStart + w.begin, 8 + head.length); // after the length prefix and the JSON
 * strictEqual(header.dataStart + w.end, file.length);
 * ```
 */
export interface TensorInfo {
  /** Tensor name, the header key. */
  name: string;
  /** Element type. */
  dtype: SafetensorsDType;
  /** Dimensions, outermost first; `[]` for a scalar. */
  shape: number[];
  /** First byte, relative to the data section. */
  begin: number;
  /** One past the last byte, relative to the data section. */
  end: number;
}

/**
 * A validated safetensors header.
 *
 * @example List a header's tensors
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { encodeSafetensors, parseHeader } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ b: { dtype: "F32", shape: [2], data: new Float32Array(2) } });
 * const header = parseHeader(bytes, bytes.length);
 * deepStrictEqual(header.tensors.map((t) => [t.name, t.dtype, t.shape]), [["b", "F32", [2]]]);
 * strictEqual(header.metadata.format, "pt");
 * strictEqual(header.dataStart, bytes.length - 8); // the data: two f32
 * ```
 */
export interface SafetensorsHeader {
  /** Tensors in header order. */
  tensors: TensorInfo[];
  /** The `__metadata__` string map, `{}` when absent. */
  metadata: Record<string, string>;
  /** Absolute file offset of the data section: 8 + header length. */
  dataStart: number;
}

const TENSOR_FIELDS = new Set(["dtype", "shape", "data_offsets"]);
const MAX_DIM = 2n ** 53n;
const PRODUCT_CAP = 2n ** 128n;

function fail(message: string): never {
  throw new Error(`safetensors: ${message}`);
}

/**
 * Read and check the little-endian u64 header length in the first 8 bytes,
 * before anything is allocated for the header.
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8) {
    fail(`file is ${fileSize} bytes, shorter than the 8-byte header length at byte 0`);
  }
  if (prefix.length < 8) fail(`need the first 8 bytes of the file, got ${prefix.length}`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n) fail("header length at byte 0 is 0; a header is at least '{}'");
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${n} at byte 0 exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (n > BigInt(fileSize - 8)) {
    fail(`header length ${n} at byte 0 exceeds the ${fileSize - 8} bytes after it in the file`);
  }
  return Number(n);
}

function readIndex(value: JsonValue | undefined, what: string): number {
  if (!(value instanceof JsonNumber)) {
    return fail(`${what} must be a non-negative integer, found ${jsonTypeName(value)}`);
  }
  const text = value.text;
  if (text.startsWith("-")) fail(`${what} must be non-negative, found ${short(text)}`);
  if (!/^(0|[1-9][0-9]*)$/.test(text)) fail(`${what} must be an integer, found ${short(text)}`);
  // 2^53 has 16 digits; checking length first keeps BigInt off megabyte-long numbers.
  if (text.length > 16 || BigInt(text) > MAX_DIM) {
    fail(`${what} is ${short(text)}, larger than 2^53`);
  }
  return Number(text);
}

function readTensor(name: string, entry: JsonValue, dataSize: number): TensorInfo {
  const where = `tensor ${quote(name)}`;
  if (name === "") fail("a tensor has an empty name");
  if (!(entry instanceof Map)) {
    fail(`${where}: entry must be an object, found ${jsonTypeName(entry)}`);
  }
  for (const key of entry.keys()) {
    if (!TENSOR_FIELDS.has(key)) fail(`${where}: unknown field ${quote(key)}`);
  }
  for (const key of TENSOR_FIELDS) {
    if (!entry.has(key)) fail(`${where}: missing field "${key}"`);
  }
  const dtype = entry.get("dtype");
  if (typeof dtype !== "string") {
    fail(`${where}: dtype must be a string, found ${jsonTypeName(dtype)}`);
  }
  if (!isDType(dtype)) {
    fail(
      `${where}: unknown dtype ${quote(dtype)}; expected one of ${Object.keys(DTYPES).join(", ")}`,
    );
  }
  const rawShape = entry.get("shape");
  if (!Array.isArray(rawShape)) {
    fail(`${where}: shape must be an array, found ${jsonTypeName(rawShape)}`);
  }
  const shape = rawShape.map((d, i) => readIndex(d, `${where}: shape[${i}]`));
  const offsets = entry.get("data_offsets");
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    const found = Array.isArray(offsets) ? `${offsets.length} items` : jsonTypeName(offsets);
    fail(`${where}: data_offsets must be an array [begin, end], found ${found}`);
  }
  const begin = readIndex(offsets[0], `${where}: data_offsets[0]`);
  const end = readIndex(offsets[1], `${where}: data_offsets[1]`);
  if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] has begin > end`);
  // Exact BigInt product, clamped so a long shape cannot build a huge integer.
  let elements = shape.includes(0) ? 0n : 1n;
  for (let i = 0; i < shape.length && elements > 0n && elements <= PRODUCT_CAP; i++) {
    elements *= BigInt(shape[i]);
  }
  const bytes = elements * BigInt(DTYPES[dtype].size);
  const shown = shape.length > 8 ? `${shape.slice(0, 8)},... (${shape.length} dims)` : `${shape}`;
  const needs = elements > PRODUCT_CAP ? "more than 2^128" : `${bytes}`;
  const described = `shape [${shown}] of ${dtype} needs ${needs} bytes`;
  if (bytes > BigInt(dataSize)) {
    fail(`${where}: ${described}, larger than the whole data section (${dataSize} bytes)`);
  }
  if (bytes !== BigInt(end - begin)) {
    fail(`${where}: ${described} but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
  if (end > dataSize) {
    fail(`${where}: data_offsets [${begin}, ${end}] end past the data section (${dataSize} bytes)`);
  }
  return { name, dtype, shape, begin, end };
}

function readMetadata(value: JsonValue): Record<string, string> {
  if (!(value instanceof Map)) fail(`__metadata__ must be an object, found ${jsonTypeName(value)}`);
  const entries: [string, string][] = [];
  for (const [key, v] of value) {
    if (typeof v !== "string") {
      fail(`__metadata__[${quote(key)}] must be a string, found ${jsonTypeName(v)}`);
    }
    entries.push([key, v]);
  }
  return Object.fromEntries(entries);
}

/** Tensors must tile the data section exactly: no overlap, hole or tail. */
function checkLayout(tensors: TensorInfo[], dataStart: number, dataSize: number): void {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: TensorInfo | undefined;
  for (const t of sorted) {
    if (t.begin < covered) {
      fail(
        `tensors ${quote(previous!.name)} [${previous!.begin}, ${previous!.end}] and ` +
          `${quote(t.name)} [${t.begin}, ${t.end}] overlap`,
      );
    }
    if (t.begin > covered) {
      fail(
        `data bytes ${covered}..${t.begin} (file offset ${dataStart + covered}) belong to no ` +
          `tensor: a hole before ${quote(t.name)}`,
      );
    }
    covered = t.end;
    previous = t;
  }
  if (covered !== dataSize) {
    const after = previous ? ` after tensor ${quote(previous.name)}` : "";
    fail(
      `${dataSize - covered} trailing bytes at file offset ${dataStart + covered}${after}; ` +
        `the data section must end where the last tensor ends`,
    );
  }
}

/**
 * Parse and strictly validate a safetensors header.
 *
 * `bytes` starts at file offset 0 and holds at least the 8-byte length and
 * the header (the whole file also works); `fileSize` is the full file size,
 * against which every offset is checked. Throws an Error naming the tensor
 * and/or byte offset of the first problem found.
 *
 * @example Read a header without touching tensor data
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { encodeSafetensors, parseHeader } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ x: { dtype: "I32", shape: [3], data: new Int32Array(3) } });
 * const header = parseHeader(bytes, bytes.length);
 * deepStrictEqual(header.tensors[0], { name: "x", dtype: "I32", shape: [3], begin: 0, end: 12 });
 * ```
 */
export function parseHeader(bytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const n = readHeaderLength(bytes, fileSize);
  if (bytes.length < 8 + n) fail(`need ${8 + n} bytes to parse the header, got ${bytes.length}`);
  const root = parseJsonStrict(bytes.subarray(8, 8 + n), {
    baseOffset: 8,
    label: "safetensors: header",
  });
  if (!(root instanceof Map)) fail(`header must be a JSON object, found ${jsonTypeName(root)}`);
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [key, value] of root) {
    if (key === "__metadata__") metadata = readMetadata(value);
    else tensors.push(readTensor(key, value, dataSize));
  }
  checkLayout(tensors, dataStart, dataSize);
  return { tensors, metadata, dataStart };
}
