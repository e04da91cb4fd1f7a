/** Moving data between the host and GPU buffers: upload and non-blocking readback. */
import { withErrorScopes } from "./_errors.ts";
import type { GpuContext } from "./_context.ts";

/**
 * Options of {@linkcode uploadFloat32}.
 *
 * @example
 * ```ts
 * import type { UploadOptions } from "./device.ts";
 * const options: UploadOptions = { usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, what: "embed.weight" };
 * ```
 */
export interface UploadOptions {
  /** Usage flags (default STORAGE | COPY_SRC | COPY_DST). */
  usage?: GPUBufferUsageFlags;
  /** Names the tensor in errors. */
  what?: string;
}

/**
 * Copies `data` into a pooled buffer (checked against the binding limits
 * first) and returns it; release it with `gpu.buffers.release`.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { requestGpu, uploadFloat32 } from "./device.ts";
 * const gpu = await requestGpu();
 * const x = await uploadFloat32(gpu, new Float32Array([1, 2, 3]), { what: "x" });
 * strictEqual(x.size, 16); // 12 bytes, in a pooled 16-byte buffer
 * ok(x.usage & GPUBufferUsage.STORAGE);
 * gpu.buffers.release(x);
 * ```
 */
export async function uploadFloat32(
  gpu: GpuContext,
  data: Float32Array,
  options: UploadOptions = {},
): Promise<GPUBuffer> {
  const what = options.what ?? `a ${data.length}-element f32 tensor`;
  gpu.checkBindingSize(data.byteLength, what);
  const usage = options.usage ??
    (GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
  return await withErrorScopes(gpu.device, () => {
    const buffer = gpu.buffers.acquire(data.byteLength, usage);
    gpu.device.queue.writeBuffer(buffer, 0, data as Float32Array<ArrayBuffer>);
    return buffer;
  }, { what: `uploading ${what}`, health: gpu.health });
}

/**
 * Options of {@linkcode readBuffer}.
 *
 * @example
 * ```ts
 * import type { ReadOptions } from "./device.ts";
 * const lossOnly: ReadOptions = { byteOffset: 0, byteLength: 4 };
 * ```
 */
export interface ReadOptions {
  /** First byte to read (a multiple of 4; default 0). */
  byteOffset?: number;
  /** Bytes to read (a multiple of 4; default: to the end of the buffer). */
  byteLength?: number;
}

/**
 * Copies part of a buffer (which needs COPY_SRC usage) into a pooled
 * MAP_READ buffer, maps it and returns a copy of the bytes. It waits only
 * for its own copy, after the work submitted before it; other submissions
 * continue meanwhile.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readBuffer, requestGpu, uploadFloat32 } from "./device.ts";
 * const gpu = await requestGpu();
 * const x = await uploadFloat32(gpu, new Float32Array([1, 2, 3, 4]));
 * const bytes = await readBuffer(gpu, x, { byteOffset: 4, byteLength: 8 });
 * deepStrictEqual(new Float32Array(bytes), new Float32Array([2, 3]));
 * ```
 */
export async function readBuffer(
  gpu: GpuContext,
  source: GPUBuffer,
  options: ReadOptions = {},
): Promise<ArrayBuffer> {
  const offset = options.byteOffset ?? 0;
  const length = options.byteLength ?? source.size - offset;
  if (offset % 4 || length % 4 || offset < 0 || length < 0 || offset + length > source.size) {
    throw new Error(
      `readBuffer: bytes [${offset}, ${
        offset + length
      }) are not a 4-byte-aligned range of a ${source.size}-byte buffer`,
    );
  }
  if (length === 0) return new ArrayBuffer(0);
  const staging = gpu.buffers.acquire(length, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  try {
    await withErrorScopes(gpu.device, () => {
      const encoder = gpu.device.createCommandEncoder();
      encoder.copyBufferToBuffer(source, offset, staging, 0, length);
      gpu.device.queue.submit([encoder.finish()]);
    }, {
      what: `reading back ${length} bytes of ${source.label || "a buffer"}`,
      health: gpu.health,
    });
    await staging.mapAsync(GPUMapMode.READ, 0, length);
    return staging.getMappedRange(0, length).slice(0);
  } catch (e) {
    gpu.health.assertAlive("read back a buffer");
    throw e;
  } finally {
    gpu.buffers.release(staging);
  }
}

/**
 * Options of {@linkcode readFloat32}.
 *
 * @example
 * ```ts
 * import type { ReadFloat32Options } from "./device.ts";
 * const row3: ReadFloat32Options = { offset: 3 * 64, length: 64 };
 * ```
 */
export interface ReadFloat32Options {
  /** Elements to read (default: the whole buffer). */
  length?: number;
  /** First element to read. */
  offset?: number;
}

/**
 * {@linkcode readBuffer} as f32 elements.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readFloat32, requestGpu, uploadFloat32 } from "./device.ts";
 * const gpu = await requestGpu();
 * const x = await uploadFloat32(gpu, new Float32Array([1, 2, 3]));
 * deepStrictEqual(await readFloat32(gpu, x, { length: 3 }), new Float32Array([1, 2, 3]));
 * ```
 */
export async function readFloat32(
  gpu: GpuContext,
  source: GPUBuffer,
  options: ReadFloat32Options = {},
): Promise<Float32Array> {
  const offset = options.offset ?? 0;
  const byteLength = options.length === undefined ? undefined : options.length * 4;
  return new Float32Array(await readBuffer(gpu, source, { byteOffset: offset * 4, byteLength }));
}
