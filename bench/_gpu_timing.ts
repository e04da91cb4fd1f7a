/**
 * Timing of compiled kernels for bench/gpu_check.ts: a GPU context whose
 * device has `timestamp-query` when the adapter offers it, and a timer that
 * records one graph's kernels many times into one compute pass, with
 * timestamps around the pass (GPU time) and a wall clock around submit and
 * readback.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { compile } from "../backends/compile.ts";
import { trace } from "../compiler/trace.ts";
import { toKernel } from "../backends/webgpu/wgsl/render.ts";
import {
  bindKernel,
  encodeKernels,
  type GpuContext,
  type KernelDispatch,
  readBuffer,
  requestGpu,
} from "../backends/webgpu/device.ts";

/**
 * A GPU context plus whether its device can write timestamps.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { timingContext } from "./_gpu_timing.ts";
 * const gpu = await timingContext();
 * ok(gpu.description.length > 0); // a GpuContext, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
 * strictEqual(gpu.timestamps, gpu.device.features.has("timestamp-query"));
 * gpu.device.destroy(); // release it now, not at exit
 * ```
 */
export interface TimingContext extends GpuContext {
  /** The device was created with `timestamp-query`. */
  readonly timestamps: boolean;
}

/**
 * Creates a device like `requestGpu()` does (limits raised to the adapter's),
 * adding the `timestamp-query` feature when the adapter has it.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { timingContext } from "./_gpu_timing.ts";
 * const gpu = await timingContext();
 * const adapter = await navigator.gpu.requestAdapter();
 * strictEqual(gpu.timestamps, adapter!.features.has("timestamp-query")); // GPU timestamps, else wall clock
 * gpu.device.destroy(); // release it now, not at exit
 * ```
 */
export async function timingContext(): Promise<TimingContext> {
  const gpu = await requestGpu({ fresh: true, features: ["timestamp-query"] });
  return { ...gpu, timestamps: gpu.device.features.has("timestamp-query") };
}

/**
 * What {@link timeGraph} measured, per repetition of the graph's kernels.
 *
 * @example
 * ```ts
 * import type { KernelTiming } from "./_gpu_timing.ts";
 * const gflops = (t: KernelTiming, flops: number) => flops / (t.ms / 1000) / 1e9;
 * ```
 */
export interface KernelTiming {
  /** Milliseconds per repetition: GPU time when timestamps exist, else wall clock. */
  readonly ms: number;
  /** How `ms` was measured. */
  readonly method: "timestamp-query" | "wall clock";
  /** Wall clock per repetition (submit to readback, divided by the repetitions). */
  readonly wallMs: number;
  /** Repetitions per submission. */
  readonly reps: number;
  /** Kernels per repetition (1 when the graph fused into one). */
  readonly kernels: number;
}

async function submitTimed(
  gpu: TimingContext,
  dispatches: readonly KernelDispatch[],
  reps: number,
  probe: GPUBuffer,
): Promise<{ gpuMs?: number; wallMs: number }> {
  const all = Array.from({ length: reps }, () => dispatches).flat();
  const t0 = performance.now();
  if (!gpu.timestamps) {
    gpu.device.queue.submit([encodeKernels(gpu, all).finish()]);
    await readBuffer(gpu, probe, { byteLength: 4 });
    return { wallMs: performance.now() - t0 };
  }
  const querySet = gpu.device.createQuerySet({ type: "timestamp", count: 2 });
  const resolved = gpu.device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  try {
    const encoder = encodeTimed(gpu, all, querySet);
    encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
    gpu.device.queue.submit([encoder.finish()]);
    const ns = new BigInt64Array(await readBuffer(gpu, resolved, { byteLength: 16 }));
    return { gpuMs: Number(ns[1] - ns[0]) / 1e6, wallMs: performance.now() - t0 };
  } finally {
    querySet.destroy();
    resolved.destroy();
  }
}

function encodeTimed(
  gpu: TimingContext,
  dispatches: readonly KernelDispatch[],
  querySet: GPUQuerySet,
): GPUCommandEncoder {
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass({
    timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
  });
  for (const d of dispatches) {
    pass.setPipeline(gpu.pipelines.ready(d.kernel));
    pass.setBindGroup(0, d.bindGroup!);
    pass.dispatchWorkgroups(...d.kernel.dispatch);
  }
  pass.end();
  return encoder;
}

/**
 * Compiles `graph` on `gpu`, gives every tensor of its program a buffer, and
 * times its kernels: repetitions are chosen so one submission takes at least
 * `targetMs`, and the median of `rounds` submissions is reported.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { timeGraph, timingContext } from "./_gpu_timing.ts";
 * import { trace } from "../compiler/trace.ts";
 * const gpu = await timingContext();
 * const g = trace((a, b) => a.matmul(b), [{ name: "a", shape: [64, 64] }, { name: "b", shape: [64, 64] }]);
 * const t = await timeGraph(gpu, g);
 * strictEqual(t.kernels, 1);
 * strictEqual(t.method, gpu.timestamps ? "timestamp-query" : "wall clock");
 * const gflops = 2 * 64 ** 3 / (t.ms / 1000) / 1e9;
 * ok(gflops > 0 && Number.isFinite(gflops));
 * gpu.device.destroy(); // release it now, not at exit
 * ```
 */
export async function timeGraph(
  gpu: TimingContext,
  graph: Graph,
  options: { readonly targetMs?: number; readonly rounds?: number; readonly maxReps?: number } = {},
): Promise<KernelTiming> {
  const exe = await compile(graph, { backend: "webgpu", device: gpu });
  const program = exe.program!;
  exe.destroy();
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const buffers = new Map(
    [...program.tensors].map(([id, t]) => [id, gpu.buffers.acquire(Math.max(4, t.bytes), usage)]),
  );
  try {
    const dispatches = program.steps.map((s) => {
      const d = { kernel: toKernel(s.program), buffers: s.nodes.map((n) => buffers.get(n.id)!) };
      return { ...d, bindGroup: bindKernel(gpu, d) };
    });
    const probe = buffers.values().next().value!;
    await submitTimed(gpu, dispatches, 1, probe); // llvmpipe compiles shaders lazily, here
    const single = await submitTimed(gpu, dispatches, 1, probe);
    const estimate = single.gpuMs ?? single.wallMs;
    const reps = Math.max(
      1,
      Math.min(
        options.maxReps ?? 1000,
        Math.ceil((options.targetMs ?? 200) / Math.max(estimate, 1e-3)),
      ),
    );
    const samples: { gpuMs?: number; wallMs: number }[] = [];
    for (let i = 0; i < (options.rounds ?? 3); i++) {
      samples.push(await submitTimed(gpu, dispatches, reps, probe));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
    const wallMs = median(samples.map((s) => s.wallMs)) / reps;
    return {
      ms: gpu.timestamps ? median(samples.map((s) => s.gpuMs!)) / reps : wallMs,
      method: gpu.timestamps ? "timestamp-query" : "wall clock",
      wallMs,
      reps,
      kernels: program.steps.length,
    };
  } finally {
    for (const b of buffers.values()) gpu.buffers.release(b);
  }
}

/**
 * Host cost of recording dispatches: encodes `count` dispatches of a tiny
 * compiled kernel into one pass, finishes and submits, and returns the CPU
 * microseconds per dispatch (median of 5).
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { hostEncodeMicros, timingContext } from "./_gpu_timing.ts";
 * const gpu = await timingContext();
 * const micros = await hostEncodeMicros(gpu, 1000); // µs per dispatch
 * ok(micros > 0 && Number.isFinite(micros));
 * gpu.device.destroy(); // release it now, not at exit
 * ```
 */
export async function hostEncodeMicros(gpu: TimingContext, count: number): Promise<number> {
  const exe = await compile(trace((x) => x.exp(), [{ name: "x", shape: [64] }]), { device: gpu });
  const step = exe.program!.steps[0];
  exe.destroy();
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const buffers = step.nodes.map(() => gpu.buffers.acquire(256, usage));
  const d = { kernel: toKernel(step.program), buffers };
  const dispatch = { ...d, bindGroup: bindKernel(gpu, d) };
  const all = Array.from({ length: count }, () => dispatch);
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    gpu.device.queue.submit([encodeKernels(gpu, all).finish()]);
    if (i > 0) times.push(((performance.now() - t0) * 1000) / count);
    await readBuffer(gpu, buffers[buffers.length - 1], { byteLength: 4 });
  }
  buffers.forEach((b) => gpu.buffers.release(b));
  return times.sort((a, b) => a - b)[times.length >> 1];
}
