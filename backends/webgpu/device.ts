/**
 * The WebGPU runtime: a device context, kernels dispatched from data
 * (backends/webgpu/wgsl/kernel.ts), pooled buffers and non-blocking readback.
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
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readFloat32, requestGpu, runKernels, uploadFloat32 } from "./device.ts";
 * import { matmulTilesFor } from "../../compiler/kernels/matmul.ts";
 * import { matmulKernel } from "./wgsl/matmul_kernel.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 2, N: 2, K: 2, tiles: matmulTilesFor(gpu) });
 * const a = await uploadFloat32(gpu, new Float32Array([1, 2, 3, 4]));
 * const b = await uploadFloat32(gpu, new Float32Array([1, 0, 0, 1]));
 * const c = gpu.buffers.acquire(16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
 * await runKernels(gpu, [{ kernel, buffers: [a, b, c] }]);
 * deepStrictEqual(await readFloat32(gpu, c, { length: 4 }), new Float32Array([1, 2, 3, 4]));
 * ```
 *
 * @module
 */

import { bindingSizeChecker, createBufferPool } from "./_buffer_pool.ts";
import { watchDevice } from "./_errors.ts";
import type { GpuContext } from "./_context.ts";
import { createPipelineCache } from "./_pipeline_cache.ts";

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
export {
  bindKernel,
  encodeKernels,
  type EncodeOptions,
  type KernelDispatch,
  runKernels,
} from "./_dispatch.ts";
export {
  readBuffer,
  readFloat32,
  type ReadFloat32Options,
  type ReadOptions,
  uploadFloat32,
  type UploadOptions,
} from "./_transfer.ts";
export type { PipelineCacheOptions } from "./_pipeline_cache.ts";

export type { GpuContext } from "./_context.ts";

/**
 * Options of {@linkcode requestGpu}.
 *
 * @example
 * ```ts
 * import { notStrictEqual } from "node:assert/strict";
 * import { requestGpu, type RequestGpuOptions } from "./device.ts";
 * const options: RequestGpuOptions = { powerPreference: "low-power", fresh: true };
 * const gpu = await requestGpu(options);
 * notStrictEqual(gpu, await requestGpu()); // a fresh context is not the process-wide one
 * gpu.device.destroy(); // release it now, not at exit
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
 * import { ok, strictEqual } from "node:assert/strict";
 * import { requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * strictEqual(await requestGpu(), gpu); // the process-wide context
 * ok(gpu.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20); // WebGPU's minimum: 128 MiB
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
  destroyAtUnload(device);
  return gpuContextOf(adapter, device);
}

const liveDevices = new Set<GPUDevice>();
let unloadHooked = false;

/**
 * Destroys `device` when this program (or test worker) unloads. wgpu's teardown of devices
 * still alive at exit, with several test workers exiting at once on the software adapter, was
 * seen to corrupt the heap after every test had passed; destroying them first avoids it.
 */
function destroyAtUnload(device: GPUDevice): void {
  if (!unloadHooked) {
    unloadHooked = true;
    globalThis.addEventListener("unload", () => {
      for (const d of liveDevices) d.destroy();
      liveDevices.clear();
    });
  }
  liveDevices.add(device);
  device.lost.then(() => liveDevices.delete(device));
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
