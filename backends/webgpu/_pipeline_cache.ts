// Compute pipelines cached by kernel key (backends/webgpu/device.ts re-exports this).

import type { Kernel, KernelBinding } from "./wgsl/kernel.ts";
import { type DeviceHealth, formatCompileErrors, kernelName, withErrorScopes } from "./_errors.ts";

/**
 * One compute pipeline per kernel key. A second request for a key returns
 * the same pipeline (or the same pending compilation) and creates nothing.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { requestGpu } from "./device.ts";
 * import { matmulKernel } from "./wgsl/matmul_kernel.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 8, N: 8, K: 8, tiles: { staging: "registers" } });
 * const pipeline = await gpu.pipelines.get(kernel);
 * strictEqual(pipeline === gpu.pipelines.ready(kernel), true);
 * ```
 */
export interface PipelineCache {
  /** Compiles the kernel once per key; throws on WGSL or validation errors, naming the kernel. */
  get(kernel: Kernel): Promise<GPUComputePipeline>;
  /** The pipeline of an already compiled kernel (see {@linkcode PipelineCache.get}); throws otherwise. */
  ready(kernel: Kernel): GPUComputePipeline;
  /** Pipelines compiled so far (failed compilations are not counted). */
  readonly pipelinesCreated: number;
}

/**
 * Options of {@linkcode createPipelineCache}.
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { createPipelineCache, type PipelineCacheOptions } from "./_pipeline_cache.ts";
 * import { watchDevice } from "./_errors.ts";
 * import { matmulKernel } from "./wgsl/matmul_kernel.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const options: PipelineCacheOptions = { health: watchDevice(device) };
 * const cache = createPipelineCache(device, options);
 * device.destroy(); // release it now, not at exit
 * await device.lost;
 * await rejects(cache.get(matmulKernel({ M: 4, N: 4, K: 4 })), /device lost: .*; cannot compile kernel/);
 * ```
 */
export interface PipelineCacheOptions {
  /** Fails fast once the device is lost. */
  health?: DeviceHealth;
}

const BUFFER_TYPES: Record<KernelBinding["type"], GPUBufferBindingType> = {
  "uniform": "uniform",
  "storage-read": "read-only-storage",
  "storage": "storage",
};

/**
 * Creates an empty pipeline cache for `device`. Layouts are explicit (from
 * `kernel.bindings`), so bindings the WGSL happens not to use still bind.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { createPipelineCache } from "./_pipeline_cache.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const cache = createPipelineCache(device);
 * const kernel = {
 *   key: "ones",
 *   wgsl: "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n" +
 *     "@compute @workgroup_size(1) fn main() { out[0] = 1.0; }",
 *   bindings: [{ name: "out", type: "storage" as const }],
 *   workgroupSize: [1, 1, 1] as const,
 *   dispatch: [1, 1, 1] as const,
 * };
 * await cache.get(kernel);
 * await cache.get(kernel);
 * strictEqual(cache.pipelinesCreated, 1);
 * device.destroy(); // release it now, not at exit
 * ```
 */
export function createPipelineCache(
  device: GPUDevice,
  options: PipelineCacheOptions = {},
): PipelineCache {
  const pending = new Map<string, { wgsl: string; pipeline: Promise<GPUComputePipeline> }>();
  const compiled = new Map<string, GPUComputePipeline>();
  const layouts = new Map<string, GPUPipelineLayout>();
  let created = 0;

  function layoutFor(bindings: readonly KernelBinding[]): GPUPipelineLayout {
    const signature = bindings.map((b) => b.type).join(",");
    let layout = layouts.get(signature);
    if (!layout) {
      const bindGroupLayout = device.createBindGroupLayout({
        label: `bindings(${signature})`,
        entries: bindings.map((b, i) => ({
          binding: i,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: BUFFER_TYPES[b.type] },
        })),
      });
      layout = device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout] });
      layouts.set(signature, layout);
    }
    return layout;
  }

  async function compile(kernel: Kernel): Promise<GPUComputePipeline> {
    const label = kernelName(kernel);
    const pipeline = await withErrorScopes(device, async () => {
      const module = device.createShaderModule({ code: kernel.wgsl, label });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === "error");
      if (errors.length) throw new Error(formatCompileErrors(kernel, errors));
      return device.createComputePipeline({
        label,
        layout: layoutFor(kernel.bindings),
        compute: { module, entryPoint: "main" },
      });
    }, { what: `creating the pipeline of kernel ${label}`, health: options.health });
    created++;
    compiled.set(kernel.key, pipeline);
    return pipeline;
  }

  return {
    get(kernel) {
      // A lost device rejects like every other failure here, never throws synchronously.
      try {
        options.health?.assertAlive(`compile kernel ${kernelName(kernel)}`);
      } catch (error) {
        return Promise.reject(error);
      }
      const entry = pending.get(kernel.key);
      if (entry) {
        if (entry.wgsl !== kernel.wgsl) {
          return Promise.reject(
            new Error(`kernel key collision: ${kernelName(kernel)} was cached with different WGSL`),
          );
        }
        return entry.pipeline;
      }
      const pipeline = compile(kernel);
      pending.set(kernel.key, { wgsl: kernel.wgsl, pipeline });
      // A failed compilation is not cached, so a fixed kernel can be retried.
      pipeline.catch(() => pending.delete(kernel.key));
      return pipeline;
    },
    ready(kernel) {
      const pipeline = compiled.get(kernel.key);
      if (!pipeline) {
        throw new Error(
          `kernel ${kernelName(kernel)} is not compiled yet: await pipelines.get(kernel) first`,
        );
      }
      return pipeline;
    },
    get pipelinesCreated() {
      return created;
    },
  };
}
