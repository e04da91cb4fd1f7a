// Buffers pooled by (size, usage), and the size checks that must run before
// a buffer is created or bound (backends/webgpu/device.ts re-exports this).

import type { DeviceHealth } from "./_errors.ts";

/**
 * The limits the size checks read (a `GPUSupportedLimits` fits).
 *
 * @example
 * ```ts
 * import type { SizeLimits } from "./_buffer_pool.ts";
 * const small: SizeLimits = { maxBufferSize: 1 << 28, maxStorageBufferBindingSize: 1 << 27, maxUniformBufferBindingSize: 1 << 16 };
 * ```
 */
export interface SizeLimits {
  /** Largest buffer the device creates, in bytes. */
  readonly maxBufferSize: number;
  /** Largest storage binding, in bytes. */
  readonly maxStorageBufferBindingSize: number;
  /** Largest uniform binding, in bytes. */
  readonly maxUniformBufferBindingSize: number;
}

/**
 * Throws before dispatch when a binding is larger than the device allows; `what` names the tensor.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { type BindingSizeCheck, bindingSizeChecker } from "./_buffer_pool.ts";
 * const check: BindingSizeCheck = bindingSizeChecker({ maxBufferSize: 64, maxStorageBufferBindingSize: 32, maxUniformBufferBindingSize: 16 });
 * check(16, "params", "uniform");
 * check(32, "x"); // a storage binding may be larger
 * throws(() => check(32, "params", "uniform"), /params needs a 32-byte uniform binding/);
 * ```
 */
export type BindingSizeCheck = (bytes: number, what: string, kind?: "storage" | "uniform") => void;

/**
 * Makes the binding-size check for a device's limits. The error says how
 * large the tensor is, which limit it breaks, and what to do about it.
 *
 * @example
 * ```ts
 * import { bindingSizeChecker } from "./_buffer_pool.ts";
 * import { throws } from "node:assert/strict";
 * const check = bindingSizeChecker({ maxBufferSize: 1024, maxStorageBufferBindingSize: 256, maxUniformBufferBindingSize: 64 });
 * check(256, "x");
 * throws(() => check(260, "layers.0.mlp.fc1.weight"), /maxStorageBufferBindingSize/);
 * ```
 */
export function bindingSizeChecker(limits: SizeLimits): BindingSizeCheck {
  return (bytes, what, kind = "storage") => {
    const [limit, name] = kind === "uniform"
      ? [limits.maxUniformBufferBindingSize, "maxUniformBufferBindingSize"]
      : [limits.maxStorageBufferBindingSize, "maxStorageBufferBindingSize"];
    if (bytes > limits.maxBufferSize) {
      throw new Error(
        `${what} needs ${bytes} bytes, more than this device's maxBufferSize (${limits.maxBufferSize}); ` +
          `split it into smaller tensors`,
      );
    }
    if (bytes > limit) {
      throw new Error(
        `${what} needs a ${bytes}-byte ${kind} binding, more than this device's ${name} (${limit}); ` +
          `split it into smaller tensors or use an adapter with a larger limit`,
      );
    }
  };
}

/**
 * Reuses buffers of equal (rounded) size and usage; see {@linkcode createBufferPool}.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * const x = gpu.buffers.acquire(4096, GPUBufferUsage.STORAGE);
 * const free = gpu.buffers.bytesFree;
 * gpu.buffers.release(x);
 * strictEqual(gpu.buffers.bytesFree - free, 4096); // x is free for reuse, still held
 * ok(gpu.buffers.bytesHeld >= gpu.buffers.bytesFree);
 * ```
 */
export interface BufferPool {
  /** A free pooled buffer of at least `bytes` bytes and exactly `usage`, or a new one. */
  acquire(bytes: number, usage: GPUBufferUsageFlags): GPUBuffer;
  /** Returns a buffer from {@linkcode BufferPool.acquire} for reuse (a mapped buffer is unmapped). */
  release(buffer: GPUBuffer): void;
  /** Destroys every free buffer. */
  trim(): void;
  /** Buffers created so far. */
  readonly buffersCreated: number;
  /** Bytes of all live pool buffers, in use or free. */
  readonly bytesHeld: number;
  /** Bytes of the free buffers. */
  readonly bytesFree: number;
}

/**
 * Options of {@linkcode createBufferPool}.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { createBufferPool, type BufferPoolOptions } from "./_buffer_pool.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const limits = { maxBufferSize: 1024, maxStorageBufferBindingSize: 1024, maxUniformBufferBindingSize: 64 };
 * const options: BufferPoolOptions = { limits };
 * const pool = createBufferPool(device, options);
 * throws(() => pool.acquire(2048, GPUBufferUsage.STORAGE), /2048-byte buffer exceeds this device's maxBufferSize \(1024\)/);
 * strictEqual(pool.buffersCreated, 0); // checked before creation
 * device.destroy(); // release it now, not at exit
 * ```
 */
export interface BufferPoolOptions {
  /** Sizes are checked against these before creation; default: the device's limits. */
  limits?: SizeLimits;
  /** Fails fast once the device is lost. */
  health?: DeviceHealth;
}

/**
 * Pool sizes are multiples of 16 bytes and never 0 (WebGPU cannot bind an empty buffer).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { pooledSize } from "./_buffer_pool.ts";
 * strictEqual(pooledSize(0), 16);
 * strictEqual(pooledSize(17), 32);
 * ```
 */
export function pooledSize(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/**
 * Creates a buffer pool. Buffers are keyed by (size rounded up to 16 bytes,
 * usage); release puts a buffer on its key's free list, acquire takes from
 * it before creating anything.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { createBufferPool } from "./_buffer_pool.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const pool = createBufferPool(device);
 * const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
 * const x = pool.acquire(1000, usage);
 * pool.release(x);
 * const y = pool.acquire(1000, usage);
 * strictEqual(y, x); // the same buffer again
 * strictEqual(pool.buffersCreated, 1);
 * strictEqual(x.size, 1008); // rounded up to 16 bytes
 * device.destroy(); // release it now, not at exit
 * ```
 */
export function createBufferPool(device: GPUDevice, options: BufferPoolOptions = {}): BufferPool {
  const limits = options.limits ?? device.limits;
  const free = new Map<string, GPUBuffer[]>();
  const owned = new Map<GPUBuffer, { key: string; inUse: boolean }>();
  let created = 0;
  let held = 0;
  let freeBytes = 0;

  return {
    acquire(bytes, usage) {
      if (!Number.isSafeInteger(bytes) || bytes < 0) {
        throw new Error(`buffer pool: expected a non-negative integer byte size, got ${bytes}`);
      }
      const size = pooledSize(bytes);
      if (size > limits.maxBufferSize) {
        throw new Error(
          `buffer pool: a ${bytes}-byte buffer exceeds this device's maxBufferSize (${limits.maxBufferSize})`,
        );
      }
      options.health?.assertAlive(`allocate a ${bytes}-byte buffer`);
      const key = `${size}:${usage}`;
      const reused = free.get(key)?.pop();
      if (reused) {
        owned.get(reused)!.inUse = true;
        freeBytes -= size;
        return reused;
      }
      const buffer = device.createBuffer({ size, usage, label: `pool ${key}` });
      owned.set(buffer, { key, inUse: true });
      created++;
      held += size;
      return buffer;
    },
    release(buffer) {
      const entry = owned.get(buffer);
      if (!entry) {
        throw new Error(`buffer pool: ${buffer.label || "buffer"} was not acquired from this pool`);
      }
      if (!entry.inUse) throw new Error(`buffer pool: ${buffer.label} was released twice`);
      if (buffer.mapState !== "unmapped") buffer.unmap();
      entry.inUse = false;
      freeBytes += buffer.size;
      const list = free.get(entry.key);
      if (list) list.push(buffer);
      else free.set(entry.key, [buffer]);
    },
    trim() {
      for (const list of free.values()) {
        for (const buffer of list) {
          owned.delete(buffer);
          held -= buffer.size;
          buffer.destroy();
        }
      }
      free.clear();
      freeBytes = 0;
    },
    get buffersCreated() {
      return created;
    },
    get bytesHeld() {
      return held;
    },
    get bytesFree() {
      return freeBytes;
    },
  };
}
