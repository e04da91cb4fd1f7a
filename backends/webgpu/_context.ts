// The GpuContext type on its own, so the modules device.ts builds on can
// name it without importing device.ts back.
import type { BindingSizeCheck, BufferPool } from "./_buffer_pool.ts";
import type { DeviceHealth } from "./_errors.ts";
import type { PipelineCache } from "./_pipeline_cache.ts";

/**
 * A device and what the runtime keeps for it.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { type GpuContext, requestGpu } from "./device.ts";
 * const gpu: GpuContext = await requestGpu({ fresh: true });
 * ok(gpu.description.length > 0); // e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
 * strictEqual(gpu.pipelines.pipelinesCreated, 0); // a fresh context has compiled nothing
 * strictEqual(gpu.buffers.bytesHeld, 0); // and holds no buffers
 * gpu.device.destroy(); // release it now, not at exit
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
