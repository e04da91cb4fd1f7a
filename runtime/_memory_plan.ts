// How tensors live in GPU buffers: the layout (4 bytes an element, bool as
// u32) and conversions to and from host arrays, and the memory plan: which
// buffer each tensor of a program lives in. Inputs,
// params, consts and outputs own their buffers (they outlive a run);
// temporaries share buffers by liveness — a buffer whose tensor has been read
// for the last time is reused by the next tensor that fits — so a whole run
// needs a fixed set of buffers, allocated once.

import type { DType, Node } from "../compiler/ir.ts";
import type { Program } from "../compiler/schedule.ts";
import type { CpuTensor } from "../ops/registry.ts";
import type { TensorData } from "./cpu.ts";

/**
 * Buffers are allocated in multiples of 16 bytes and never empty.
 *
 * @example
 * ```ts
 * import { bufferBytes } from "./_memory_plan.ts";
 * console.log(bufferBytes(0), bufferBytes(20)); // 16 32
 * ```
 */
export function bufferBytes(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/**
 * The result of {@link planMemory}.
 *
 * @example
 * ```ts
 * import { planMemory } from "./_memory_plan.ts";
 * import { runPipeline } from "../compiler/compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const program = runPipeline(trace((x) => x.exp().sum(), [{ name: "x", shape: [4] }])).program!;
 * console.log(planMemory(program).buffers); // [16, 16]
 * ```
 */
export interface MemoryPlan {
  /** Byte size of each buffer to allocate. */
  readonly buffers: readonly number[];
  /** Node id → index into `buffers`. */
  readonly bufferOf: ReadonlyMap<number, number>;
  /** Bytes temporaries would take without sharing, for reports. */
  readonly unsharedTempBytes: number;
}

/**
 * Assigns buffers to every tensor of `program`. A temporary written by step
 * `i` and last read by step `j` holds its buffer for steps `i..j`; buffers
 * freed by step `j` are not reused by step `j`'s own outputs (a kernel never
 * reads and writes one buffer). Among free buffers the smallest that fits is
 * taken; when none fits, the largest free one grows (it is not allocated
 * yet, so growing is free).
 *
 * @example
 * ```ts
 * import { planMemory } from "./_memory_plan.ts";
 * import { schedule } from "../compiler/schedule.ts";
 * import { fuse } from "../compiler/passes/fuse.ts";
 * import { trace } from "../compiler/trace.ts";
 * const g = trace((x) => x.exp().sum(0).exp().sum(), [{ name: "x", shape: [4, 4] }]);
 * const plan = planMemory(schedule(fuse(g)));
 * console.log(plan.buffers.length); // 3: x, one shared temporary, the output
 * ```
 */
export function planMemory(program: Program): MemoryPlan {
  const buffers: number[] = [];
  const bufferOf = new Map<number, number>();
  const lastUse = new Map<number, number>();
  program.steps.forEach((step, i) => {
    for (const n of step.nodes) lastUse.set(n.id, i);
  });
  for (const t of program.tensors.values()) {
    if (t.role !== "temp") {
      bufferOf.set(t.node.id, buffers.length);
      buffers.push(bufferBytes(t.bytes));
    }
  }
  const free: number[] = [];
  let unsharedTempBytes = 0;
  program.steps.forEach((step, i) => {
    for (const out of step.outputs) {
      const t = program.tensors.get(out.id)!;
      if (t.role !== "temp" || bufferOf.has(out.id)) continue;
      const need = bufferBytes(t.bytes);
      unsharedTempBytes += need;
      bufferOf.set(out.id, takeFree(free, buffers, need));
    }
    for (const n of new Set(step.nodes)) {
      const t = program.tensors.get(n.id);
      if (t?.role === "temp" && lastUse.get(n.id) === i) free.push(bufferOf.get(n.id)!);
    }
  });
  return { buffers, bufferOf, unsharedTempBytes };
}

function takeFree(free: number[], buffers: number[], need: number): number {
  let best = -1;
  for (let k = 0; k < free.length; k++) {
    const size = buffers[free[k]];
    if (size >= need && (best < 0 || size < buffers[free[best]])) best = k;
  }
  if (best < 0 && free.length > 0) {
    best = free.reduce((b, f, k) => (buffers[f] > buffers[free[b]] ? k : b), 0);
    buffers[free[best]] = need;
  }
  if (best >= 0) return free.splice(best, 1)[0];
  buffers.push(need);
  return buffers.length - 1;
}

/**
 * Host arrays results come back as: f32 → Float32Array, i32 → Int32Array,
 * u32 → Uint32Array, bool → Uint8Array.
 *
 * @example
 * ```ts
 * import type { HostArray } from "./_memory_plan.ts";
 * const loss: HostArray = new Float32Array([0.5]);
 * ```
 */
export type HostArray = Float32Array | Int32Array | Uint32Array | Uint8Array;

/**
 * What a buffer holds, as a host array: bool is stored as u32.
 *
 * @example
 * ```ts
 * import type { StorageArray } from "./_memory_plan.ts";
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
 * import { toStorage } from "./_memory_plan.ts";
 * import { makeNode } from "../compiler/ir.ts";
 * import "../ops/mod.ts";
 * const mask = makeNode("input", [], { shape: [3], dtype: "bool" }, "mask");
 * console.log(toStorage(mask, [1, 0, 1], "input")); // Uint32Array [1, 0, 1]
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
 * import { fromBytes } from "./_memory_plan.ts";
 * console.log(fromBytes("bool", new Uint32Array([1, 0]).buffer, 2)); // Uint8Array [1, 0]
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
 * import { toHost } from "./_memory_plan.ts";
 * console.log(toHost({ shape: [2], dtype: "i32", data: new Int32Array([1, 2]) })); // Int32Array [1, 2]
 * ```
 */
export function toHost(t: CpuTensor): HostArray {
  if (t.dtype === "f32") return Float32Array.from(t.data);
  if (t.dtype === "i32") return Int32Array.from(t.data);
  if (t.dtype === "u32") return Uint32Array.from(t.data);
  return Uint8Array.from(t.data);
}
