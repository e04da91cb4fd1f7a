/** Binding and encoding kernels (as data) into compute passes, and running them. */
import type { Kernel } from "./wgsl/kernel.ts";
import { kernelName, withErrorScopes } from "./_errors.ts";
import type { GpuContext } from "./_context.ts";

/**
 * A kernel and the buffers for its bindings, in binding order.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { type KernelDispatch, requestGpu } from "./device.ts";
 * import { matmulKernel } from "./wgsl/matmul_kernel.ts";
 * const gpu = await requestGpu();
 * const [a, b, c] = [0, 1, 2].map(() => gpu.buffers.acquire(64, GPUBufferUsage.STORAGE));
 * const dispatch: KernelDispatch = { kernel: matmulKernel({ M: 4, N: 4, K: 4 }), buffers: [a, b, c] };
 * deepStrictEqual(dispatch.kernel.bindings.map((b) => b.name), ["lhs", "rhs", "dst"]); // a, b, c
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
 * import { throws } from "node:assert/strict";
 * import { bindKernel, requestGpu } from "./device.ts";
 * import { matmulKernel } from "./wgsl/matmul_kernel.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 4, N: 4, K: 4, tiles: { staging: "registers" } });
 * await gpu.pipelines.get(kernel);
 * const usage = GPUBufferUsage.STORAGE;
 * const buffers = [gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage)];
 * const bindGroup = bindKernel(gpu, { kernel, buffers });
 * throws(() => bindKernel(gpu, { kernel, buffers: buffers.slice(0, 2) }), /binds 3 buffers \(lhs, rhs, dst\) but got 2/);
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
 * import type { EncodeOptions } from "./device.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const options: EncodeOptions = { encoder: device.createCommandEncoder(), label: "train step 7" };
 * device.destroy(); // release it now, not at exit
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
 * import { deepStrictEqual } from "node:assert/strict";
 * import { encodeKernels, readFloat32, requestGpu, uploadFloat32 } from "./device.ts";
 * import { matmulKernel } from "./wgsl/matmul_kernel.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 4, N: 4, K: 4, tiles: { staging: "registers" } });
 * await gpu.pipelines.get(kernel);
 * const x = Float32Array.from({ length: 16 }, (_, i) => i);
 * const twoI = Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 2 : 0)); // 2 · identity
 * const [a, b] = [await uploadFloat32(gpu, x), await uploadFloat32(gpu, twoI)];
 * const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
 * const [c, d] = [gpu.buffers.acquire(64, usage), gpu.buffers.acquire(64, usage)];
 * const encoder = encodeKernels(gpu, [{ kernel, buffers: [a, b, c] }, { kernel, buffers: [c, b, d] }]);
 * gpu.device.queue.submit([encoder.finish()]);
 * deepStrictEqual(await readFloat32(gpu, d), x.map((v) => 4 * v)); // in order: (x · 2I) · 2I
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
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readFloat32, requestGpu, runKernels, uploadFloat32 } from "./device.ts";
 * import { matmulKernel } from "./wgsl/matmul_kernel.ts";
 * const gpu = await requestGpu();
 * const kernel = matmulKernel({ M: 4, N: 4, K: 4, tiles: { staging: "registers" } });
 * const x = Float32Array.from({ length: 16 }, (_, i) => i);
 * const identity = Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0));
 * const out = gpu.buffers.acquire(64, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
 * await runKernels(gpu, [{ kernel, buffers: [await uploadFloat32(gpu, x), await uploadFloat32(gpu, identity), out] }]);
 * deepStrictEqual(await readFloat32(gpu, out), x); // the readback waits for the kernel
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
