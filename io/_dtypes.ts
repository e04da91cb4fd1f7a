// Safetensors element types: sizes, the typed arrays that hold them, exact
// half-precision conversions and byte (de)serialisation. Safetensors data is
// little-endian; typed arrays use the platform order, so both directions
// refuse to run on a big-endian host rather than return swapped values.

/**
 * Element types this package reads and writes.
 *
 * @example Pick a dtype
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors, type SafetensorsDType } from "./safetensors.ts";
 * const dtype: SafetensorsDType = "BF16";
 * const bytes = encodeSafetensors({ w: { dtype, shape: [4], data: new Float32Array(4) } });
 * strictEqual(decodeSafetensors(bytes).tensors.get("w")?.dtype, "BF16");
 * ```
 */
export type SafetensorsDType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/**
 * Typed arrays holding tensor data. F16 and BF16 decode to Float32Array.
 *
 * @example Hold any tensor's elements
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors, type TensorData } from "./safetensors.ts";
 * const data: TensorData = new BigInt64Array([1n, 2n]);
 * const file = decodeSafetensors(encodeSafetensors({ n: { dtype: "I64", shape: [2], data } }));
 * deepStrictEqual(file.tensors.get("n")?.data, data); // I64 comes back as a BigInt64Array
 * ```
 */
export type TensorData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | BigUint64Array
  | Uint32Array
  | Uint16Array
  | Uint8Array;

interface DTypeInfo {
  /** Bytes per element. */
  size: number;
  /** Position in the Rust crate's `Dtype` enum, which orders by alignment. */
  rustOrder: number;
  /** The typed array that `decode` returns for this dtype. */
  array: new (buffer: ArrayBuffer) => TensorData;
}

/** Sizes, Rust enum order and typed arrays, keyed by dtype name. */
export const DTYPES: Readonly<Record<SafetensorsDType, DTypeInfo>> = {
  BOOL: { size: 1, rustOrder: 0, array: Uint8Array },
  U8: { size: 1, rustOrder: 1, array: Uint8Array },
  I8: { size: 1, rustOrder: 2, array: Int8Array },
  I16: { size: 2, rustOrder: 3, array: Int16Array },
  U16: { size: 2, rustOrder: 4, array: Uint16Array },
  F16: { size: 2, rustOrder: 5, array: Float32Array },
  BF16: { size: 2, rustOrder: 6, array: Float32Array },
  I32: { size: 4, rustOrder: 7, array: Int32Array },
  U32: { size: 4, rustOrder: 8, array: Uint32Array },
  F32: { size: 4, rustOrder: 9, array: Float32Array },
  F64: { size: 8, rustOrder: 10, array: Float64Array },
  I64: { size: 8, rustOrder: 11, array: BigInt64Array },
  U64: { size: 8, rustOrder: 12, array: BigUint64Array },
};

/** True for the names in {@linkcode DTYPES}. */
export function isDType(name: string): name is SafetensorsDType {
  return Object.hasOwn(DTYPES, name);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new Error("safetensors: big-endian hosts are not supported");
}

/** IEEE binary16 bits to binary32 bits; exact for every input, NaN payloads kept. */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal: normalise the mantissa; 113 is the f32 biased exponent of 2^-14.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** Binary32 bits to binary16 bits, rounding to nearest even; NaN stays NaN. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant === 0 ? 0 : (mant >>> 13) || 0x200);
  const e16 = exp - 127 + 15;
  if (e16 >= 0x1f) return sign | 0x7c00;
  if (e16 <= 0) {
    if (e16 < -10) return sign; // below half the smallest subnormal: rounds to zero
    mant |= 0x800000;
    const shift = 14 - e16;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e16 << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // may carry into inf: correct
  return sign | h;
}

/** Binary32 bits to bfloat16 bits, rounding to nearest even; NaN stays NaN. */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
    // Truncate the payload; if only low bits were set, set the quiet bit to stay NaN.
    const h = x >>> 16;
    return (h & 0x7f) !== 0 ? h : h | 0x40;
  }
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Decode little-endian element bytes into a fresh, aligned typed array.
 * `bytes.length` must be a multiple of the dtype size (callers validate).
 * A BOOL byte other than 0 or 1 is refused, as the writer refuses it.
 */
export function decodeElements(
  dtype: SafetensorsDType,
  bytes: Uint8Array,
  where = "safetensors",
): TensorData {
  assertLittleEndian();
  if (dtype === "BOOL") {
    const i = bytes.findIndex((v) => v > 1);
    if (i >= 0) throw new Error(`${where}: BOOL element ${i} is ${bytes[i]}, expected 0 or 1`);
  }
  const copy = bytes.slice().buffer; // offsets in a file may be unaligned
  if (dtype === "F16" || dtype === "BF16") {
    const src = new Uint16Array(copy);
    const out = new Float32Array(src.length);
    const bits = new Uint32Array(out.buffer);
    if (dtype === "F16") {
      for (let i = 0; i < src.length; i++) bits[i] = f16BitsToF32Bits(src[i]);
    } else for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
    return out;
  }
  return new DTYPES[dtype].array(copy);
}

const ARRAY_NAMES: Record<SafetensorsDType, string> = {
  F64: "Float64Array",
  F32: "Float32Array",
  F16: "Float32Array or Uint16Array (raw bits)",
  BF16: "Float32Array or Uint16Array (raw bits)",
  I64: "BigInt64Array",
  I32: "Int32Array",
  I16: "Int16Array",
  I8: "Int8Array",
  U64: "BigUint64Array",
  U32: "Uint32Array",
  U16: "Uint16Array",
  U8: "Uint8Array",
  BOOL: "Uint8Array of 0s and 1s",
};

/**
 * Little-endian bytes of `data` stored as `dtype`. F16/BF16 accept a
 * Float32Array (rounded to nearest even) or a Uint16Array of raw bits; every
 * other dtype needs exactly the typed array that decoding returns.
 */
export function encodeElements(
  dtype: SafetensorsDType,
  data: TensorData,
  where: string,
): Uint8Array {
  assertLittleEndian();
  const half = dtype === "F16" || dtype === "BF16";
  const ok = half
    ? data instanceof Float32Array || data instanceof Uint16Array
    : data.constructor === DTYPES[dtype].array;
  if (!ok) {
    throw new Error(
      `${where}: dtype ${dtype} needs a ${ARRAY_NAMES[dtype]}, got ${data.constructor.name}`,
    );
  }
  if (dtype === "BOOL") {
    const i = (data as Uint8Array).findIndex((v) => v > 1);
    if (i >= 0) throw new Error(`${where}: BOOL element ${i} is ${data[i]}, expected 0 or 1`);
  }
  if (half && data instanceof Float32Array) {
    // Read the float bits through an integer view so NaN payloads survive.
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    const out = new Uint16Array(data.length);
    const convert = dtype === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
    for (let i = 0; i < bits.length; i++) out[i] = convert(bits[i]);
    return new Uint8Array(out.buffer);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
