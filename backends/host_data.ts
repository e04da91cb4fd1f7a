/**
 * Tensor data on the host, as every backend takes and returns it: fed values
 * ({@link TensorData}), the arrays results come back in ({@link HostArray}),
 * and the storage layout of a device buffer (4 bytes an element, bool as u32).
 *
 * @module
 */
import type { CpuTensor, DType, Node } from "../compiler/ir.ts";

/** Values a caller may feed for a tensor: a typed array, a plain array, or a CpuTensor. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint32Array
  | Uint8Array
  | readonly number[]
  | CpuTensor;

/**
 * Host arrays results come back as: f32 → Float32Array, i32 → Int32Array,
 * u32 → Uint32Array, bool → Uint8Array.
 *
 * @example
 * ```ts
 * import type { HostArray } from "./host_data.ts";
 * const loss: HostArray = new Float32Array([0.5]);
 * ```
 */
export type HostArray = Float32Array | Int32Array | Uint32Array | Uint8Array;

/**
 * What a buffer holds, as a host array: bool is stored as u32.
 *
 * @example
 * ```ts
 * import type { StorageArray } from "./host_data.ts";
 * const mask: StorageArray = new Uint32Array([1, 0, 1]);
 * ```
 */
export type StorageArray =
  | Float32Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Uint32Array<ArrayBuffer>;

/**
 * Converts fed data to what a buffer of `node` holds (bool as u32), checking
 * the element count; `what` names the tensor in the error.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../ops/mod.ts";
 * import { toStorage } from "./host_data.ts";
 * import { makeNode } from "../compiler/ir.ts";
 * const mask = makeNode(ops.input, [], { shape: [3], dtype: "bool" }, "mask");
 * deepStrictEqual(toStorage(mask, [1, 0, 1], "input"), new Uint32Array([1, 0, 1]));
 * ```
 */
export function toStorage(node: Node, value: TensorData, what: string): StorageArray {
  const raw = "data" in value && !ArrayBuffer.isView(value)
    ? (value as CpuTensor).data
    : value as ArrayLike<number>;
  const n = node.shape.reduce((a, b) => a * b, 1);
  if (raw.length !== n) {
    throw new Error(
      `${what} "${node.name}" expects ${node.dtype}[${
        node.shape.join(",")
      }] (${n} elements), got ${raw.length}`,
    );
  }
  const own = ArrayBuffer.isView(raw) && raw.buffer instanceof ArrayBuffer;
  if (node.dtype === "f32") {
    return own && raw instanceof Float32Array ? raw as StorageArray : Float32Array.from(raw);
  }
  if (node.dtype === "i32") {
    return own && raw instanceof Int32Array ? raw as StorageArray : Int32Array.from(raw);
  }
  if (node.dtype === "u32") {
    return own && raw instanceof Uint32Array ? raw as StorageArray : Uint32Array.from(raw);
  }
  return Uint32Array.from(raw as ArrayLike<number>, (v) => (v !== 0 ? 1 : 0));
}

/**
 * Interprets `length` elements read back from a buffer of `dtype`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fromBytes } from "./host_data.ts";
 * deepStrictEqual(fromBytes("bool", new Uint32Array([1, 0]).buffer, 2), new Uint8Array([1, 0]));
 * ```
 */
export function fromBytes(dtype: DType, bytes: ArrayBuffer, length: number): HostArray {
  if (dtype === "f32") return new Float32Array(bytes, 0, length);
  if (dtype === "i32") return new Int32Array(bytes, 0, length);
  const words = new Uint32Array(bytes, 0, length);
  return dtype === "u32" ? words : Uint8Array.from(words, (w) => (w !== 0 ? 1 : 0));
}

/**
 * A CPU tensor as the host array the GPU backend would return.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { toHost } from "./host_data.ts";
 * deepStrictEqual(toHost({ shape: [2], dtype: "i32", data: new Int32Array([1, 2]) }), new Int32Array([1, 2]));
 * ```
 */
export function toHost(t: CpuTensor): HostArray {
  if (t.dtype === "f32") return Float32Array.from(t.data);
  if (t.dtype === "i32") return Int32Array.from(t.data);
  if (t.dtype === "u32") return Uint32Array.from(t.data);
  return Uint8Array.from(t.data);
}
