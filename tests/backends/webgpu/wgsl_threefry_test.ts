import assert from "node:assert/strict";
import {
  add,
  bitcast,
  Body,
  convert,
  invocation,
  type KernelBuffer,
  lane,
  load,
  mul,
  type Stmt,
  u32,
  vector,
} from "../../../compiler/kernel_ir/mod.ts";
import { renderWgsl } from "../../../backends/webgpu/wgsl/render.ts";
import {
  dropoutKeepExpr,
  randomUnitExpr,
  randomWordExpr,
  threefry2x32Expr,
  threefryKeyExpr,
} from "../../../prng/threefry_kernel.ts";
import {
  UNIFORM_SYMMETRIC_PARAMS_BYTES,
  uniformSymmetricKernel,
  uniformSymmetricParams,
} from "./_uniform_symmetric_kernel.ts";
import {
  dropoutKeep,
  kaimingUniformBound,
  randomBits,
  threefryKey,
  uniformSymmetric,
} from "../../../prng/threefry.ts";

// A tiny self-contained WebGPU harness, so these tests depend on nothing but
// the code under test (the Threefry kernel IR and the WGSL renderer): compile
// a module, bind buffers in order, dispatch once, read one buffer back.

/** The WGSL of a one-off test kernel built in the kernel IR. */
function testWgsl(
  label: string,
  buffers: readonly KernelBuffer[],
  workgroupSize: number,
  body: readonly Stmt[],
): string {
  return renderWgsl({
    family: label,
    label,
    buffers,
    shared: [],
    workgroupSize: [workgroupSize, 1, 1],
    dispatch: [1, 1, 1],
    body,
  });
}

async function openDevice(): Promise<GPUDevice> {
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("no WebGPU adapter (navigator.gpu.requestAdapter returned null)");
  return await adapter.requestDevice();
}

async function compile(device: GPUDevice, wgsl: string, label: string) {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: wgsl, label });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
    label,
  });
  const error = await device.popErrorScope();
  if (error) throw new Error(`${label}: ${error.message}`);
  return pipeline;
}

function storageBuffer(device: GPUDevice, data: ArrayBufferView<ArrayBuffer>): GPUBuffer {
  const buffer = device.createBuffer({
    size: data.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** Binds `buffers` to @binding(0..), dispatches, returns a copy of buffers[read]. */
async function dispatch(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  buffers: GPUBuffer[],
  workgroups: [number, number, number],
  read: number,
): Promise<ArrayBuffer> {
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const target = buffers[read];
  const staging = device.createBuffer({
    size: target.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  device.pushErrorScope("validation");
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(...workgroups);
  pass.end();
  encoder.copyBufferToBuffer(target, 0, staging, 0, target.size);
  device.queue.submit([encoder.finish()]);
  const error = await device.popErrorScope();
  if (error) throw new Error(`dispatch: ${error.message}`);
  await staging.mapAsync(GPUMapMode.READ);
  const bytes = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return bytes;
}

/** Index and values of the first differing word, or undefined when equal. */
function firstMismatch(actual: Uint32Array, expected: Uint32Array) {
  assert.equal(actual.length, expected.length, "lengths differ");
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) return { i, actual: actual[i], expected: expected[i] };
  }
  return undefined;
}

const SENTINEL = 0xffffffff; // a NaN pattern uniform_symmetric never writes

/** Runs a built kernel into a sentinel-filled buffer covering its whole dispatch. */
async function runUniformSymmetric(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  dispatchSize: readonly [number, number, number],
  params: Uint32Array<ArrayBuffer>,
): Promise<Uint32Array> {
  const covered = dispatchSize[0] * dispatchSize[1] * 64;
  const out = storageBuffer(device, new Uint32Array(covered).fill(SENTINEL));
  const paramsBuffer = storageBuffer(device, params);
  try {
    return new Uint32Array(
      await dispatch(device, pipeline, [paramsBuffer, out], [...dispatchSize], 1),
    );
  } finally {
    out.destroy();
    paramsBuffer.destroy();
  }
}

Deno.test("threefry kernel IR, rendered to WGSL, matches the TypeScript reference on the GPU", async (t) => {
  const device = await openDevice();
  try {
    await t.step("threefry2x32 gives the Random123 known answers", async () => {
      // One invocation per case: inputs are [key.x, key.y, ctr.x, ctr.y], outputs [x0, x1].
      const body = new Body();
      const c = invocation({ of: "workgroup", axis: 0 });
      const word = (k: number) => load("inputs", add(mul(c, u32(4)), u32(k)), "u32");
      const x = body.let(
        threefry2x32Expr(vector("vec2u", word(0), word(1)), vector("vec2u", word(2), word(3))),
        "x",
      );
      body.store("outputs", mul(c, u32(2)), lane(x, 0));
      body.store("outputs", add(mul(c, u32(2)), u32(1)), lane(x, 1));
      const pipeline = await compile(
        device,
        testWgsl(
          "threefry kat",
          [
            { name: "inputs", access: "read", element: "u32" },
            { name: "outputs", access: "read_write", element: "u32" },
          ],
          1,
          body.stmts,
        ),
        "threefry kat",
      );
      const inputs = storageBuffer(
        device,
        new Uint32Array([
          ...[0x00000000, 0x00000000, 0x00000000, 0x00000000],
          ...[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
          ...[0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3],
        ]),
      );
      const outputs = storageBuffer(device, new Uint32Array(6));
      const words = new Uint32Array(
        await dispatch(device, pipeline, [inputs, outputs], [3, 1, 1], 1),
      );
      inputs.destroy();
      outputs.destroy();
      assert.deepEqual(
        [...words],
        [0x6b200159, 0x99ba4efe, 0x1cb996fc, 0xbb002be7, 0xc4923a9c, 0x483df7a0],
      );
    });

    await t.step("random_word, random_unit and dropout_keep equal the reference", async () => {
      const n = 4096;
      const start = 4_000_000_000;
      const [k0, k1] = threefryKey(77, 3);
      // Four words per element: [random_word, bits of random_unit, dropout_keep, unused].
      const body = new Body();
      const g = body.letNamed(
        "g",
        add(
          mul(invocation({ of: "workgroup", axis: 0 }), u32(64)),
          invocation({ of: "localIndex" }),
        ),
      );
      const key = body.letNamed("key", threefryKeyExpr(3, u32(77)));
      const index = body.letNamed("index", add(u32(start), g));
      const keep = convert("u32", dropoutKeepExpr(key, index, 0.3));
      const at = (k: number) => add(mul(g, u32(4)), u32(k));
      body.store("results", at(0), randomWordExpr(key, index));
      body.store("results", at(1), bitcast("u32", randomUnitExpr(key, index)));
      body.store("results", at(2), keep);
      const wgsl = testWgsl(
        "threefry library",
        [
          { name: "results", access: "read_write", element: "u32" },
        ],
        64,
        body.stmts,
      );
      // The kernel's key is the reference's key of (seed 77, stream 3).
      assert.ok(wgsl.includes(`vec2<u32>(${k0}u, ${k1}u)`), "key literal");
      const pipeline = await compile(device, wgsl, "threefry library");
      const results = storageBuffer(device, new Uint32Array(4 * n)); // four words per element
      const got = new Uint32Array(await dispatch(device, pipeline, [results], [n / 64, 1, 1], 0));
      results.destroy();
      const words = randomBits(77, 3, start, n);
      const units = new Float32Array(1);
      const unitBits = new Uint32Array(units.buffer);
      for (let i = 0; i < n; i++) {
        units[0] = (words[i] >>> 8) * 2 ** -24;
        const expected = [words[i], unitBits[0], dropoutKeep(77, 3, start + i, 0.3) ? 1 : 0];
        assert.deepEqual([...got.subarray(4 * i, 4 * i + 3)], expected, `element ${i}`);
      }
    });

    const bound = kaimingUniformBound(768);
    const built = uniformSymmetricKernel({ count: 1 });
    const pipeline = await compile(device, built.wgsl, built.key);

    await t.step(
      "uniformSymmetricKernel equals uniformSymmetric bit for bit over 2^20 + 37 elements",
      async () => {
        const count = 2 ** 20 + 37; // not a multiple of 64: the tail guard matters
        const runs = [
          { seed: 0, stream: 0, start: 0 },
          { seed: 2024, stream: 1, start: 123_456_789 },
          { seed: 0xfffffff0, stream: 0xdeadbeef, start: 2 ** 32 - count },
        ];
        for (const { seed, stream, start } of runs) {
          const kernel = uniformSymmetricKernel({ count, seed, stream, bound, start });
          assert.equal(kernel.key, built.key);
          const got = await runUniformSymmetric(device, pipeline, kernel.dispatch, kernel.params);
          const expected = new Uint32Array(
            uniformSymmetric(seed, stream, count, bound, start).buffer,
          );
          const mismatch = firstMismatch(got.subarray(0, count), expected);
          assert.equal(mismatch, undefined, `seed ${seed} stream ${stream} start ${start}`);
          assert.ok(got.subarray(count).every((w) => w === SENTINEL), "wrote past count");
        }
      },
    );

    await t.step("counts beyond one dispatch dimension use a 2-D dispatch", async () => {
      const count = 200_003;
      const kernel = uniformSymmetricKernel({
        count,
        seed: 9,
        stream: 2,
        bound,
        start: 17,
        maxWorkgroupsPerDimension: 1000,
      });
      assert.deepEqual(kernel.dispatch, [782, 4, 1]);
      const got = await runUniformSymmetric(device, pipeline, kernel.dispatch, kernel.params);
      const expected = new Uint32Array(uniformSymmetric(9, 2, count, bound, 17).buffer);
      assert.equal(firstMismatch(got.subarray(0, count), expected), undefined);
      assert.ok(got.subarray(count).every((w) => w === SENTINEL), "wrote past count");
      // At the default limit, 65535 · 64 elements fit one dimension and one more does not.
      assert.deepEqual(uniformSymmetricKernel({ count: 65535 * 64 }).dispatch, [65535, 1, 1]);
      assert.deepEqual(uniformSymmetricKernel({ count: 65535 * 64 + 1 }).dispatch, [32768, 2, 1]);
    });

    await t.step(
      "a 2-D dispatch at the device's real limit (65535 · 64 + 1000 elements)",
      async () => {
        const count = 65535 * 64 + 1000;
        const kernel = uniformSymmetricKernel({ count, seed: 31, stream: 4, bound, start: 5 });
        assert.deepEqual(kernel.dispatch, [32776, 2, 1]);
        const got = await runUniformSymmetric(device, pipeline, kernel.dispatch, kernel.params);
        const expected = new Uint32Array(uniformSymmetric(31, 4, count, bound, 5).buffer);
        assert.equal(firstMismatch(got.subarray(0, count), expected), undefined);
        assert.ok(got.subarray(count).every((w) => w === SENTINEL), "wrote past count");
      },
    );

    await t.step("the bound is a run-time parameter: one pipeline, many bounds", async () => {
      const count = 4096;
      const kernels = [1, 0.1, kaimingUniformBound(3), 1e-3, 12345.678].map((b) =>
        uniformSymmetricKernel({ count, seed: 5, stream: 1, bound: b })
      );
      // The WGSL does not change with the bound (or seed), so neither does the pipeline.
      assert.ok(kernels.every((k) => k.wgsl === built.wgsl && k.key === built.key));
      assert.ok(!built.wgsl.includes("12345"), "bound leaked into the WGSL");
      for (const b of [1, 0.1, kaimingUniformBound(3), 1e-3, 12345.678]) {
        const params = uniformSymmetricParams({ seed: 5, stream: 1, bound: b, start: 0, count });
        const got = await runUniformSymmetric(device, pipeline, [count / 64, 1, 1], params);
        const expected = new Uint32Array(uniformSymmetric(5, 1, count, b).buffer);
        assert.equal(firstMismatch(got, expected), undefined, `bound ${b}`);
      }
      // A run may write fewer elements than the dispatch covers.
      const params = uniformSymmetricParams({ seed: 5, stream: 1, bound: 1, start: 0, count: 100 });
      const got = await runUniformSymmetric(device, pipeline, [count / 64, 1, 1], params);
      const expected = new Uint32Array(uniformSymmetric(5, 1, 100, 1).buffer);
      assert.equal(firstMismatch(got.subarray(0, 100), expected), undefined);
      assert.ok(got.subarray(100).every((w) => w === SENTINEL));
    });
  } finally {
    device.destroy();
  }
});

Deno.test("uniformSymmetricKernel is plain data and validates its arguments", () => {
  const kernel = uniformSymmetricKernel({ count: 1000, seed: 42, stream: 7, bound: 0.5, start: 3 });
  assert.deepEqual(kernel.bindings, [
    { name: "params", type: "storage-read" },
    { name: "out", type: "storage" },
  ]);
  assert.deepEqual(kernel.workgroupSize, [64, 1, 1]);
  assert.deepEqual(kernel.dispatch, [16, 1, 1]);
  assert.equal(kernel.params.byteLength, UNIFORM_SYMMETRIC_PARAMS_BYTES);
  assert.deepEqual([...kernel.params.subarray(0, 4)], [7, 42, 3, 1000]);
  assert.equal(new Float32Array(kernel.params.buffer)[4], 0.5);
  assert.deepEqual(structuredClone(kernel), kernel);
  assert.deepEqual(uniformSymmetricKernel({ count: 0 }).dispatch, [0, 1, 1]);

  assert.throws(
    () => uniformSymmetricKernel({ count: -1 }),
    /count must be an integer >= 0, got -1/,
  );
  assert.throws(() => uniformSymmetricKernel({ count: 10, seed: -2 }), /seed must be .* got -2/);
  assert.throws(
    () => uniformSymmetricKernel({ count: 10, start: 2 ** 32 - 5 }),
    /start \+ count must be at most 2\^32/,
  );
  assert.throws(
    () => uniformSymmetricKernel({ count: 10, bound: 0 }),
    /bound must be finite and > 0/,
  );
  assert.throws(
    () => uniformSymmetricKernel({ count: 10, maxWorkgroupsPerDimension: 0 }),
    /maxWorkgroupsPerDimension must be a positive integer/,
  );
  assert.throws(
    () => uniformSymmetricKernel({ count: 64 * 5 * 5 + 1, maxWorkgroupsPerDimension: 5 }),
    /needs 26 workgroups, more than 5² fit/,
  );
});
