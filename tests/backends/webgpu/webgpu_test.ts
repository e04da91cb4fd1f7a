// The WebGPU runtime's contract: one pipeline per kernel key, pooled buffers
// reused, errors that name the kernel, sizes checked before dispatch, one
// compute pass per encode, and a lost device failing loudly.

import assert from "node:assert/strict";
import type { Kernel } from "../../../backends/webgpu/wgsl/kernel.ts";
import { splitDispatch } from "../../../compiler/kernel_ir/dispatch.ts";
import { packUniforms } from "./_uniforms.ts";
import {
  bindingSizeChecker,
  encodeKernels,
  readBuffer,
  readFloat32,
  requestGpu,
  runKernels,
  uploadFloat32,
  withErrorScopes,
} from "../../../backends/webgpu/device.ts";

// The linear workgroup index of a dispatch split over x and y (splitDispatch).
const WGSL_LINEAR_WORKGROUP = "(wid.y * nwg.x + wid.x)";

const gpuTest = { sanitizeOps: false, sanitizeResources: false };

/** `x[i] += 1` for every i of a 64-element tensor: tiny and fast to compile. */
function incrementKernel(label?: string): Kernel {
  return {
    key: "test:increment64",
    wgsl: `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  x[id.x] = x[id.x] + 1.0;
}`,
    bindings: [{ name: "x", type: "storage" }],
    workgroupSize: [64, 1, 1],
    dispatch: [1, 1, 1],
    ...(label ? { label } : {}),
  };
}

Deno.test("requestGpu gives one cached context with adapter facts", gpuTest, async () => {
  const gpu = await requestGpu();
  assert.equal(await requestGpu(), gpu);
  assert.ok(gpu.description.length > 0);
  assert.ok(gpu.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20);
  assert.equal(gpu.health.lost, null);
});

Deno.test("pipeline cache: one pipeline per key", gpuTest, async (t) => {
  const gpu = await requestGpu();
  const before = gpu.pipelines.pipelinesCreated;
  const first = await gpu.pipelines.get(incrementKernel());
  await t.step("a second request, even from an equal copy, creates nothing", async () => {
    const [again, copy] = await Promise.all([
      gpu.pipelines.get(incrementKernel()),
      gpu.pipelines.get({ ...incrementKernel() }),
    ]);
    assert.equal(again, first);
    assert.equal(copy, first);
    assert.equal(gpu.pipelines.pipelinesCreated, before + 1);
  });
  await t.step("the same key with different WGSL is a collision", async () => {
    const clash = { ...incrementKernel(), wgsl: incrementKernel().wgsl.replace("1.0", "2.0") };
    await assert.rejects(gpu.pipelines.get(clash), /key collision/);
  });
});

Deno.test("broken WGSL throws an error naming the kernel and the line", gpuTest, async () => {
  const gpu = await requestGpu();
  const broken: Kernel = {
    ...incrementKernel(),
    key: "test:broken-kernel",
    label: "layers.1.attn.q_proj",
    wgsl: incrementKernel().wgsl.replace("x[id.x] + 1.0", "x[id.x] + 1u"),
  };
  const before = gpu.pipelines.pipelinesCreated;
  const error = await gpu.pipelines.get(broken).then(() => null, (e: Error) => e);
  assert.ok(error instanceof Error);
  assert.match(error.message, /test:broken-kernel/);
  assert.match(error.message, /layers\.1\.attn\.q_proj/);
  assert.match(error.message, /x\[id\.x\] \+ 1u/); // the offending source line
  assert.equal(gpu.pipelines.pipelinesCreated, before);
  // Not cached: asking again compiles (and fails) again.
  await assert.rejects(gpu.pipelines.get(broken), /test:broken-kernel/);
});

Deno.test("buffer pool reuses released buffers", gpuTest, async (t) => {
  const gpu = await requestGpu();
  const pool = gpu.buffers;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  await t.step("release then acquire of the same size creates no buffer", () => {
    const x = pool.acquire(1000, usage);
    const created = pool.buffersCreated;
    const held = pool.bytesHeld;
    pool.release(x);
    assert.equal(pool.bytesFree >= 1008, true);
    const y = pool.acquire(1000, usage);
    assert.equal(y, x);
    assert.equal(pool.acquire(1001, usage) === x, false); // x is in use
    assert.equal(pool.buffersCreated, created + 1);
    assert.equal(pool.bytesHeld, held + 1008);
    pool.release(y);
  });
  await t.step("other usages get other buffers", () => {
    const x = pool.acquire(64, usage);
    pool.release(x);
    const y = pool.acquire(64, usage | GPUBufferUsage.COPY_SRC);
    assert.notEqual(y, x);
    pool.release(y);
  });
  await t.step("double and foreign releases throw", () => {
    const x = pool.acquire(16, usage);
    pool.release(x);
    assert.throws(() => pool.release(x), /released twice/);
    const foreign = gpu.device.createBuffer({ size: 16, usage });
    assert.throws(() => pool.release(foreign), /not acquired from this pool/);
    foreign.destroy();
  });
  await t.step("trim destroys free buffers", () => {
    pool.trim();
    assert.equal(pool.bytesFree, 0);
  });
});

Deno.test("oversized tensors throw before anything is dispatched", gpuTest, async (t) => {
  const gpu = await requestGpu();
  const limit = gpu.limits.maxStorageBufferBindingSize;
  await t.step("checkBindingSize names the tensor and the limit", () => {
    gpu.checkBindingSize(limit, "x");
    assert.throws(
      () => gpu.checkBindingSize(limit + 4, "embed.weight"),
      /embed\.weight.*maxStorageBufferBindingSize/,
    );
    assert.throws(() => gpu.checkBindingSize(gpu.limits.maxBufferSize + 4, "w"), /maxBufferSize/);
    const check = bindingSizeChecker({
      maxBufferSize: 100,
      maxStorageBufferBindingSize: 80,
      maxUniformBufferBindingSize: 16,
    });
    assert.throws(() => check(32, "params", "uniform"), /maxUniformBufferBindingSize/);
  });
  await t.step("a dispatch binding more than the limit is refused", async () => {
    const kernel = incrementKernel("oversized");
    const x = gpu.buffers.acquire(256, GPUBufferUsage.STORAGE);
    try {
      await assert.rejects(
        runKernels(gpu, [{ kernel, buffers: [{ buffer: x, size: limit + 256 }] }]),
        /binding x of kernel "test:increment64" \(oversized\).*maxStorageBufferBindingSize/,
      );
    } finally {
      gpu.buffers.release(x);
    }
  });
  await t.step("the pool refuses buffers above maxBufferSize without creating them", () => {
    const created = gpu.buffers.buffersCreated;
    assert.throws(
      () => gpu.buffers.acquire(gpu.limits.maxBufferSize + 16, GPUBufferUsage.STORAGE),
      /maxBufferSize/,
    );
    assert.equal(gpu.buffers.buffersCreated, created);
  });
});

Deno.test("dispatch, encode and readback", gpuTest, async (t) => {
  const gpu = await requestGpu();
  await t.step("several dispatches in one pass run in order", async () => {
    const x = await uploadFloat32(gpu, new Float32Array(64).fill(10));
    const kernel = incrementKernel();
    await gpu.pipelines.get(kernel);
    const encoder = encodeKernels(gpu, [0, 1, 2].map(() => ({ kernel, buffers: [x] })));
    gpu.device.queue.submit([encoder.finish()]);
    assert.deepEqual([...await readFloat32(gpu, x, { offset: 60, length: 4 })], [13, 13, 13, 13]);
    gpu.buffers.release(x);
  });
  await t.step("uniform parameters and a dispatch split over two dimensions", async () => {
    const n = 600;
    const params = packUniforms([{ name: "n", type: "u32", value: n }, {
      name: "add",
      type: "f32",
      value: 0.5,
    }]);
    const dispatch = splitDispatch(Math.ceil(n / 64), 4);
    assert.deepEqual(dispatch, [4, 3, 1]);
    const kernel: Kernel = {
      key: "test:add-uniform",
      wgsl: `${params.wgslStruct}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lane: u32) {
  let i = ${WGSL_LINEAR_WORKGROUP} * 64u + lane;
  if (i < params.n) { x[i] = x[i] + params.add; }
}`,
      bindings: [{ name: "params", type: "uniform" }, { name: "x", type: "storage" }],
      workgroupSize: [64, 1, 1],
      dispatch,
    };
    const uniform = gpu.buffers.acquire(
      params.bytes.byteLength,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    );
    gpu.device.queue.writeBuffer(uniform, 0, params.bytes);
    const x = await uploadFloat32(gpu, new Float32Array(768).fill(1));
    await runKernels(gpu, [{ kernel, buffers: [uniform, x] }]);
    const got = await readFloat32(gpu, x);
    assert.deepEqual([got[0], got[n - 1], got[n], got[767]], [1.5, 1.5, 1, 1]);
    gpu.buffers.release(x);
    gpu.buffers.release(uniform);
  });
  await t.step("readBuffer reads a byte range and rejects misaligned ones", async () => {
    const x = await uploadFloat32(gpu, Float32Array.of(1, 2, 3, 4));
    assert.deepEqual([
      ...new Float32Array(await readBuffer(gpu, x, { byteOffset: 4, byteLength: 8 })),
    ], [2, 3]);
    await assert.rejects(readBuffer(gpu, x, { byteOffset: 2 }), /4-byte-aligned/);
    gpu.buffers.release(x);
  });
  await t.step("a wrong number of buffers names the kernel", async () => {
    await assert.rejects(
      runKernels(gpu, [{ kernel: incrementKernel("inc"), buffers: [] }]),
      /binds 1 buffers \(x\)/,
    );
  });
  await t.step("validation errors surface from error scopes", async () => {
    await assert.rejects(
      withErrorScopes(gpu.device, () => {
        gpu.device.createBuffer({
          size: 16,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE,
        });
      }, { what: "creating a bad buffer" }),
      /creating a bad buffer failed: validation error/,
    );
  });
});

Deno.test("a lost device makes later calls throw 'device lost'", gpuTest, async () => {
  const gpu = await requestGpu({ fresh: true });
  const x = await uploadFloat32(gpu, new Float32Array(64));
  gpu.device.destroy();
  await gpu.device.lost;
  assert.match(gpu.health.lost ?? "", /./);
  await assert.rejects(
    runKernels(gpu, [{ kernel: incrementKernel(), buffers: [x] }]),
    /^Error: device lost: /,
  );
  await assert.rejects(uploadFloat32(gpu, new Float32Array(4)), /device lost/);
  assert.throws(() => gpu.buffers.acquire(16, GPUBufferUsage.STORAGE), /device lost/);
  // The shared context is unaffected.
  const shared = await requestGpu();
  assert.notEqual(shared, gpu);
  assert.equal(shared.health.lost, null);
});
