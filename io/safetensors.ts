/**
 * Strict reader and writer for the safetensors format: an 8-byte
 * little-endian header length N, N bytes of JSON header, then the data
 * section. Malformed files raise an Error naming the problem and where it is;
 * they never cause a crash, a hang, a huge allocation or an out-of-bounds read.
 *
 * @example Write and read back a tensor file
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, {
 *   "layer.weight": { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
 * });
 * const { tensors } = await readSafetensors(path);
 * deepStrictEqual(tensors.get("layer.weight")?.data, new Float32Array([1, 2, 3, 4]));
 * ```
 *
 * @module
 */

import { writeFileAtomic } from "./atomic.ts";
import { regularFileSize } from "./read_file.ts";
import {
  decodeElements,
  DTYPES,
  encodeElements,
  isDType,
  type SafetensorsDType,
  type TensorData,
} from "./_dtypes.ts";
import {
  MAX_HEADER_BYTES,
  parseHeader,
  readHeaderLength,
  type SafetensorsHeader,
  type TensorInfo,
} from "./_safetensors_header.ts";

export type { SafetensorsDType, SafetensorsHeader, TensorData, TensorInfo };
export { MAX_HEADER_BYTES, parseHeader };

/**
 * A tensor with its data in a fresh typed array: F32, F16 and BF16 give a
 * Float32Array (half types widened exactly), F64 a Float64Array, I64/U64
 * BigInt64Array/BigUint64Array, BOOL a Uint8Array of 0s and 1s, and each
 * other integer type its matching typed array.
 *
 * @example Inspect a decoded tensor
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ h: { dtype: "F16", shape: [1], data: new Float32Array([0.5]) } });
 * const t = decodeSafetensors(bytes).tensors.get("h")!;
 * strictEqual(t.dtype, "F16");
 * deepStrictEqual(t.shape, [1]);
 * deepStrictEqual(t.data, new Float32Array([0.5]));
 * ```
 */
export interface LoadedTensor {
  /** Element type as stored in the file. */
  dtype: SafetensorsDType;
  /** Dimensions, outermost first. */
  shape: number[];
  /** Elements in row-major order. */
  data: TensorData;
}

/**
 * A tensor to write. `data` must be the typed array that
 * {@linkcode LoadedTensor} uses for `dtype`; F16 and BF16 also accept a
 * Uint16Array of raw bits, and their Float32Array is rounded to nearest even.
 *
 * @example Describe a tensor for writing
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors, type TensorInput } from "./safetensors.ts";
 * const bias: TensorInput = { dtype: "BF16", shape: [3], data: new Float32Array([1, 2, 3.001]) };
 * const back = decodeSafetensors(encodeSafetensors({ bias })).tensors.get("bias")!;
 * deepStrictEqual(back.shape, [3]);
 * deepStrictEqual(back.data, new Float32Array([1, 2, 3])); // 3.001 rounds to the nearest BF16: 3
 * ```
 */
export interface TensorInput {
  /** Element type to store. */
  dtype: SafetensorsDType;
  /** Dimensions; their product must equal `data.length`. */
  shape: readonly number[];
  /** Elements in row-major order. */
  data: TensorData;
}

/**
 * A decoded safetensors file: metadata and tensors in header order.
 *
 * @example Iterate over a decoded file
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const file = decodeSafetensors(encodeSafetensors({}, { step: "3" }));
 * strictEqual(file.metadata.step, "3");
 * strictEqual(file.tensors.size, 0);
 * ```
 */
export interface SafetensorsFile {
  /** The `__metadata__` map. */
  metadata: Record<string, string>;
  /** Tensors by name. */
  tensors: Map<string, LoadedTensor>;
}

/**
 * Decode a whole safetensors file held in memory, validating it strictly.
 * Tensor data is copied out, so `bytes` may be released afterwards.
 *
 * @example Decode bytes
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ n: { dtype: "I64", shape: [], data: new BigInt64Array([7n]) } });
 * strictEqual(decodeSafetensors(bytes).tensors.get("n")?.data[0], 7n);
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  const header = parseHeader(bytes, bytes.length);
  const tensors = new Map<string, LoadedTensor>();
  for (const t of header.tensors) {
    const raw = bytes.subarray(header.dataStart + t.begin, header.dataStart + t.end);
    const data = decodeElements(t.dtype, raw, `safetensors: tensor ${JSON.stringify(t.name)}`);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data });
  }
  return { metadata: header.metadata, tensors };
}

/**
 * An open safetensors file whose tensors are read on demand.
 *
 * @example Stream one tensor
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { openSafetensors, writeSafetensors } from "./safetensors.ts";
 * const path = await Deno.makeTempFile();
 * await writeSafetensors(path, { a: { dtype: "U8", shape: [2], data: new Uint8Array([1, 2]) } });
 * const file = await openSafetensors(path);
 * try {
 *   deepStrictEqual((await file.read("a")).data, new Uint8Array([1, 2]));
 * } finally {
 *   file.close();
 * }
 * ```
 */
export interface SafetensorsReader {
  /** The validated header. */
  header: SafetensorsHeader;
  /** Read one tensor by name; throws if the name is not in the header. */
  read(name: string): Promise<LoadedTensor>;
  /** Close the file handle. */
  close(): void;
}

async function readExactly(file: Deno.FsFile, at: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(at, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const got = await file.read(out.subarray(filled));
    if (got === null) {
      throw new Error(
        `safetensors: file ended at byte ${
          at + filled
        }, expected ${length} bytes from byte ${at} ` +
          `(was it modified while being read?)`,
      );
    }
    filled += got;
  }
  return out;
}

function withPath<T>(path: string | URL, work: () => Promise<T>): Promise<T> {
  return work().catch((e: unknown) => {
    if (e instanceof Error && e.message.startsWith("safetensors:")) {
      throw new Error(`${e.message} (in ${path})`, { cause: e });
    }
    throw e;
  });
}

/**
 * Open a safetensors file, validate its header, and read tensors one at a
 * time with seeks. The header length is checked against the file size and
 * the 100 MB cap before the header is allocated.
 *
 * @example Read only the tensors you need
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { openSafetensors, writeSafetensors } from "./safetensors.ts";
 * const path = await Deno.makeTempFile();
 * await writeSafetensors(path, { w: { dtype: "F64", shape: [1], data: new Float64Array([2]) } });
 * const file = await openSafetensors(path);
 * deepStrictEqual(file.header.tensors.map((t) => t.name), ["w"]);
 * file.close();
 * ```
 */
export function openSafetensors(path: string | URL): Promise<SafetensorsReader> {
  return withPath(path, async () => {
    // A FIFO or device is refused before open: opening a FIFO blocks, a device never ends.
    await regularFileSize(path, "safetensors file");
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      const prefix = size >= 8 ? await readExactly(file, 0, 8) : new Uint8Array(0);
      const n = readHeaderLength(prefix, size);
      const headerBytes = new Uint8Array(8 + n);
      headerBytes.set(prefix);
      headerBytes.set(await readExactly(file, 8, n), 8);
      const header = parseHeader(headerBytes, size);
      const byName = new Map(header.tensors.map((t) => [t.name, t]));
      const read = (name: string) =>
        withPath(path, async () => {
          const t = byName.get(name);
          if (!t) {
            const known = [...byName.keys()].slice(0, 10).join(", ");
            throw new Error(
              `safetensors: tensor ${JSON.stringify(name)} not found (has: ${known})`,
            );
          }
          const raw = await readExactly(file, header.dataStart + t.begin, t.end - t.begin);
          const where = `safetensors: tensor ${JSON.stringify(name)}`;
          return { dtype: t.dtype, shape: t.shape, data: decodeElements(t.dtype, raw, where) };
        });
      return { header, read, close: () => file.close() };
    } catch (e) {
      file.close();
      throw e;
    }
  });
}

/**
 * Read and strictly validate a whole safetensors file, tensor by tensor in
 * file order (the file is never held in memory twice).
 *
 * @example Load every tensor
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * const path = await Deno.makeTempFile();
 * await writeSafetensors(path, { b: { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) } });
 * const { metadata, tensors } = await readSafetensors(path);
 * strictEqual(metadata.format, "pt");
 * deepStrictEqual(tensors.get("b")?.data, new Uint8Array([1, 0]));
 * ```
 */
export async function readSafetensors(path: string | URL): Promise<SafetensorsFile> {
  const file = await openSafetensors(path);
  try {
    const tensors = new Map<string, LoadedTensor>();
    const inFileOrder = [...file.header.tensors].sort((a, b) => a.begin - b.begin);
    for (const t of inFileOrder) tensors.set(t.name, await file.read(t.name));
    // Report tensors in header order, like decodeSafetensors.
    const ordered = new Map(file.header.tensors.map((t) => [t.name, tensors.get(t.name)!]));
    return { metadata: file.header.metadata, tensors: ordered };
  } finally {
    file.close();
  }
}

/** Compare by Unicode code point, which is UTF-8 byte order (Rust's `str` order). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * Serialise tensors into safetensors bytes. Layout matches the Rust crate:
 * tensors sorted by dtype alignment (its `Dtype` enum order, descending),
 * then by name; header keys in that order after `__metadata__`; header padded
 * with spaces to a multiple of 8; data contiguous. `__metadata__.format` is
 * "pt" unless `metadata` sets it; metadata keys are sorted for determinism.
 *
 * @example Encode to bytes
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(
 *   { w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } },
 *   { note: "demo" },
 * );
 * strictEqual(bytes.length % 8, 0); // header and data are 8-byte aligned
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, TensorInput> | Map<string, TensorInput>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const meta: Record<string, string> = { format: "pt", ...metadata };
  for (const [key, value] of Object.entries(meta)) {
    if (typeof value !== "string" || !value.isWellFormed() || !key.isWellFormed()) {
      throw new Error(`safetensors: metadata ${JSON.stringify(key)} must be a well-formed string`);
    }
  }
  const prepared = entries.map(([name, t]) => {
    const where = `safetensors: tensor ${JSON.stringify(name)}`;
    if (name === "" || name === "__metadata__" || !name.isWellFormed()) {
      throw new Error(`${where}: invalid tensor name`);
    }
    if (!isDType(t.dtype)) throw new Error(`${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
    let count = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${where}: bad shape [${t.shape}]`);
      count *= d;
    }
    if (count !== t.data.length) {
      throw new Error(
        `${where}: shape [${t.shape}] has ${count} elements, data has ${t.data.length}`,
      );
    }
    return {
      name,
      dtype: t.dtype,
      shape: [...t.shape],
      bytes: encodeElements(t.dtype, t.data, where),
    };
  });
  prepared.sort((a, b) =>
    DTYPES[b.dtype].rustOrder - DTYPES[a.dtype].rustOrder || compareCodePoints(a.name, b.name)
  );
  const metaKeys = Object.keys(meta).sort(compareCodePoints);
  const parts = [
    `"__metadata__":{${metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(meta[k])}`)}}`,
  ];
  let offset = 0;
  for (const t of prepared) {
    const span = `[${offset},${offset + t.bytes.length}]`;
    parts.push(
      `${
        JSON.stringify(t.name)
      }:{"dtype":"${t.dtype}","shape":[${t.shape}],"data_offsets":${span}}`,
    );
    offset += t.bytes.length;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_BYTES) {
    throw new Error(`safetensors: header of ${headerLength} bytes exceeds ${MAX_HEADER_BYTES}`);
  }
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of prepared) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

/**
 * Encode tensors (see {@linkcode encodeSafetensors}) and write them to `path`
 * atomically: readers see the old file or the complete new one, never a mix.
 *
 * @example Save a checkpoint
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, { step: { dtype: "I32", shape: [], data: new Int32Array([10]) } });
 * deepStrictEqual((await readSafetensors(path)).tensors.get("step")?.data, new Int32Array([10]));
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorInput> | Map<string, TensorInput>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
