/**
 * The WebGPU runtime: a device context, kernels dispatched from data
 * (compiler/wgsl/kernel.ts), pooled buffers and non-blocking readback.
 *
 * Small parts, each usable alone: {@linkcode requestGpu} builds a
 * {@linkcode GpuContext} from a device, a {@linkcode PipelineCache}, a
 * {@linkcode BufferPool} and a {@linkcode DeviceHealth}; free functions
 * encode, run, upload and read back. Every failure (WGSL compile error,
 * validation, out-of-memory, device loss) is a thrown Error naming the
 * kernel key and label.
 *
 * @example
 * ```ts
 * import { readFloat32, requestGpu, runKernels, uploadFloat32 } from "./webgpu.ts";
 * import { matmulKernel, matmulTilesFor } from "../compiler/wgsl/matmul.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 2, N: 2, K: 2, tiles: matmulTilesFor(gpu) });
 * const a = await uploadFloat32(gpu, new Float32Array([1, 2, 3, 4]));
 * const b = await uploadFloat32(gpu, new Float32Array([1, 0, 0, 1]));
 * const c = gpu.buffers.acquire(16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
 * await runKernels(gpu, [{ kernel, buffers: [a, b, c] }]);
 * console.log(await readFloat32(gpu, c, { length: 4 })); // [1, 2, 3, 4]
 * ```
 *
 * @module
 */

import type { Kernel } from "../compiler/wgsl/kernel.ts";
import {
  type BindingSizeCheck,
  bindingSizeChecker,
  type BufferPool,
  createBufferPool,
} from "./_buffer_pool.ts";
import { type DeviceHealth, kernelName, watchDevice, withErrorScopes } from "./_errors.ts";
import { createPipelineCache, type PipelineCache } from "./_pipeline_cache.ts";

export {
  type BindingSizeCheck,
  bindingSizeChecker,
  type BufferPool,
  createBufferPool,
} from "./_buffer_pool.ts";
export type { BufferPoolOptions, SizeLimits } from "./_buffer_pool.ts";
export { type DeviceHealth, watchDevice, withErrorScopes } from "./_errors.ts";
export type { ErrorScopeOptions } from "./_errors.ts";
export { createPipelineCache, type PipelineCache } from "./_pipeline_cache.ts";
export type { PipelineCacheOptions } from "./_pipeline_cache.ts";

/**
 * A device and what the runtime keeps for it.
 *
 * @example
 * ```ts
 * import { type GpuContext, requestGpu } from "./webgpu.ts";
 * const gpu: GpuContext = await requestGpu();
 * console.log(gpu.description, gpu.pipelines.pipelinesCreated, gpu.buffers.bytesHeld);
 * ```
 */
export interface GpuContext {
  /** The device every kernel and buffer of this context lives on. */
  readonly device: GPUDevice;
  /** What the adapter says about itself (vendor, architecture, description). */
  readonly adapterInfo: GPUAdapterInfo;
  /** Human-readable adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  readonly description: string;
  /** True for software adapters such as llvmpipe. */
  readonly isFallbackAdapter: boolean;
  /** The device's limits (raised to the adapter's maxima where that helps tensors). */
  readonly limits: GPUSupportedLimits;
  /** Compute pipelines by kernel key. */
  readonly pipelines: PipelineCache;
  /** Buffers pooled by size and usage. */
  readonly buffers: BufferPool;
  /** Device-loss state; every runtime call checks it first. */
  readonly health: DeviceHealth;
  /** Throws before dispatch when a binding exceeds `maxStorageBufferBindingSize` or `maxBufferSize`. */
  readonly checkBindingSize: BindingSizeCheck;
}

/**
 * Options of {@linkcode requestGpu}.
 *
 * @example
 * ```ts
 * import { requestGpu, type RequestGpuOptions } from "./webgpu.ts";
 * const options: RequestGpuOptions = { powerPreference: "low-power", fresh: true };
 * const gpu = await requestGpu(options);
 * ```
 */
export interface RequestGpuOptions {
  /** Passed to `requestAdapter` (default `high-performance`). */
  powerPreference?: GPUPowerPreference;
  /** Create a new context instead of returning the process-wide one. */
  fresh?: boolean;
  /** Optional features to enable when the adapter has them (e.g. `timestamp-query`). */
  features?: readonly GPUFeatureName[];
}

// Limits raised to the adapter's maximum: they bound tensor sizes and kernel shapes.
const RAISED_LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
] as const;

let shared: Promise<GpuContext> | undefined;

/**
 * The process-wide GPU context (created on first call, with that call's
 * options; a new one replaces it once its device is lost), or a fresh one
 * with `{ fresh: true }`. Rejects with a clear error when WebGPU or an
 * adapter is unavailable.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./webgpu.ts";
 * const gpu = await requestGpu();
 * console.log(gpu.description, gpu.limits.maxStorageBufferBindingSize);
 * ```
 */
export function requestGpu(options: RequestGpuOptions = {}): Promise<GpuContext> {
  if (options.fresh) return createGpuContext(options);
  if (!shared) {
    const pending = createGpuContext(options);
    shared = pending;
    // Forget a context that failed or whose device was lost; the next call makes a new one.
    const forget = () => {
      if (shared === pending) shared = undefined;
    };
    pending.then((gpu) => gpu.device.lost.then(forget), forget);
  }
  return shared;
}

async function createGpuContext(options: RequestGpuOptions): Promise<GpuContext> {
  const gpuApi = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpuApi) {
    throw new Error(
      "WebGPU is unavailable: navigator.gpu is undefined in this runtime (Deno ≥ 2 provides it)",
    );
  }
  const adapter = await gpuApi.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) {
    throw new Error(
      "WebGPU is available but no adapter was found: install a GPU driver, or Mesa's llvmpipe for a software fallback",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures = (options.features ?? []).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: "wgrad" });
  return gpuContextOf(adapter, device);
}

/** Wraps a device in its context: pipeline cache, buffer pool, limits, health. */
function gpuContextOf(adapter: GPUAdapter, device: GPUDevice): GpuContext {
  const health = watchDevice(device);
  const info = adapter.info;
  return {
    device,
    adapterInfo: info,
    description: info.description ||
      [info.vendor, info.architecture, info.device].filter(Boolean).join(" "),
    isFallbackAdapter: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    limits: device.limits,
    pipelines: createPipelineCache(device, { health }),
    buffers: createBufferPool(device, { health }),
    health,
    checkBindingSize: bindingSizeChecker(device.limits),
  };
}

/**
 * A kernel and the buffers for its bindings, in binding order.
 *
 * @example
 * ```ts
 * import { type KernelDispatch, requestGpu } from "./webgpu.ts";
 * import { matmulKernel } from "../compiler/wgsl/matmul.ts";
 * const gpu = await requestGpu();
 * const [a, b, c] = [0, 1, 2].map(() => gpu.buffers.acquire(64, GPUBufferUsage.STORAGE));
 * const dispatch: KernelDispatch = { kernel: matmulKernel({ M: 4, N: 4, K: 4 }), buffers: [a, b, c] };
 * ```
 */
export interface KernelDispatch {
  /** What to run. */
  kernel: Kernel;
  /** One buffer (or buffer range) per `kernel.bindings` entry, in order. */
  buffers: readonly (GPUBuffer | GPUBufferBinding)[];
  /** A bind group from {@linkcode bindKernel}, reused instead of creating one per encode. */
  bindGroup?: GPUBindGroup;
}

/**
 * Checks the buffers of a dispatch against its kernel (count, size limits)
 * and creates its bind group. The kernel must be compiled
 * (`await gpu.pipelines.get(kernel)`).
 *
 * @example
 * ```ts
 * import { bindKernel, requestGpu } from "./webgpu.ts";
 * import { matmulKernel } from "../compiler/wgsl/matmul.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 4, N: 4, K: 4, tiles: { staging: "registers" } });
 * await gpu.pipelines.get(kernel);
 * const usage = GPUBufferUsage.STORAGE;
 * const buffers = [gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage)];
 * const bindGroup = bindKernel(gpu, { kernel, buffers });
 * ```
 */
export function bindKernel(gpu: GpuContext, dispatch: KernelDispatch): GPUBindGroup {
  const { kernel, buffers } = dispatch;
  if (buffers.length !== kernel.bindings.length) {
    throw new Error(
      `kernel ${kernelName(kernel)} binds ${kernel.bindings.length} buffers ` +
        `(${kernel.bindings.map((b) => b.name).join(", ")}) but got ${buffers.length}`,
    );
  }
  const entries = buffers.map((resource, i) => {
    const binding = kernel.bindings[i];
    const bytes = "buffer" in resource
      ? resource.size ?? resource.buffer.size - (resource.offset ?? 0)
      : resource.size;
    gpu.checkBindingSize(
      bytes,
      `binding ${binding.name} of kernel ${kernelName(kernel)}`,
      binding.type === "uniform" ? "uniform" : "storage",
    );
    return { binding: i, resource: "buffer" in resource ? resource : { buffer: resource } };
  });
  const pipeline = gpu.pipelines.ready(kernel);
  return gpu.device.createBindGroup({
    label: kernelName(kernel),
    layout: pipeline.getBindGroupLayout(0),
    entries,
  });
}

/**
 * Options of {@linkcode encodeKernels}.
 *
 * @example
 * ```ts
 * import type { EncodeOptions } from "./webgpu.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const options: EncodeOptions = { encoder: device.createCommandEncoder(), label: "train step 7" };
 * ```
 */
export interface EncodeOptions {
  /** Record into this encoder instead of a new one. */
  encoder?: GPUCommandEncoder;
  /** Label of the compute pass. */
  label?: string;
}

/**
 * Records the dispatches, in order, into one compute pass of one command
 * encoder (returned, not finished). Kernels must be compiled; sizes are
 * checked before anything is recorded.
 *
 * @example
 * ```ts
 * import { encodeKernels, requestGpu } from "./webgpu.ts";
 * import { matmulKernel } from "../compiler/wgsl/matmul.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 4, N: 4, K: 4, tiles: { staging: "registers" } });
 * await gpu.pipelines.get(kernel);
 * const usage = GPUBufferUsage.STORAGE;
 * const buffers = [gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage)];
 * const encoder = encodeKernels(gpu, [{ kernel, buffers }, { kernel, buffers }]);
 * gpu.device.queue.submit([encoder.finish()]);
 * ```
 */
export function encodeKernels(
  gpu: GpuContext,
  dispatches: readonly KernelDispatch[],
  options: EncodeOptions = {},
): GPUCommandEncoder {
  gpu.health.assertAlive("encode kernels");
  const bound = dispatches.map((d) => ({
    pipeline: gpu.pipelines.ready(d.kernel),
    bindGroup: d.bindGroup ?? bindKernel(gpu, d),
    counts: d.kernel.dispatch,
  }));
  const encoder = options.encoder ?? gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass({ label: options.label });
  for (const { pipeline, bindGroup, counts } of bound) {
    if (counts[0] * counts[1] * counts[2] === 0) continue;
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(counts[0], counts[1], counts[2]);
  }
  pass.end();
  return encoder;
}

/**
 * Compiles what is missing, then encodes all dispatches into one compute
 * pass and submits them, inside validation / out-of-memory error scopes.
 * Resolves once submitted (not when the GPU finishes): await a readback or
 * `device.queue.onSubmittedWorkDone()` for that.
 *
 * @example
 * ```ts
 * import { runKernels, requestGpu } from "./webgpu.ts";
 * import { matmulKernel } from "../compiler/wgsl/matmul.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 4, N: 4, K: 4, tiles: { staging: "registers" } });
 * const usage = GPUBufferUsage.STORAGE;
 * const buffers = [gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage)];
 * await runKernels(gpu, [{ kernel, buffers }]);
 * ```
 */
export async function runKernels(
  gpu: GpuContext,
  dispatches: readonly KernelDispatch[],
): Promise<void> {
  await Promise.all(dispatches.map((d) => gpu.pipelines.get(d.kernel)));
  const names = [...new Set(dispatches.map((d) => kernelName(d.kernel)))];
  const what = `running kernel${names.length === 1 ? "" : "s"} ${names.join(", ")}`;
  await withErrorScopes(gpu.device, () => {
    gpu.device.queue.submit([encodeKernels(gpu, dispatches).finish()]);
  }, { what, health: gpu.health });
}

/**
 * Options of {@linkcode uploadFloat32}.
 *
 * @example
 * ```ts
 * import type { UploadOptions } from "./webgpu.ts";
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
 * import { requestGpu, uploadFloat32 } from "./webgpu.ts";
 * const gpu = await requestGpu();
 * const x = await uploadFloat32(gpu, new Float32Array([1, 2, 3]), { what: "x" });
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
 * import type { ReadOptions } from "./webgpu.ts";
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
 * import { readBuffer, requestGpu, uploadFloat32 } from "./webgpu.ts";
 * const gpu = await requestGpu();
 * const x = await uploadFloat32(gpu, new Float32Array([1, 2, 3, 4]));
 * const bytes = await readBuffer(gpu, x, { byteOffset: 4, byteLength: 8 });
 * console.log(new Float32Array(bytes)); // [2, 3]
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
 * import type { ReadFloat32Options } from "./webgpu.ts";
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
 * import { readFloat32, requestGpu, uploadFloat32 } from "./webgpu.ts";
 * const gpu = await requestGpu();
 * const x = await uploadFloat32(gpu, new Float32Array([1, 2, 3]));
 * console.log(await readFloat32(gpu, x, { length: 3 })); // [1, 2, 3]
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
