// The Executable contract on WebGPU: resident params updated in place,
// a fixed set of buffers after the first run, cached pipelines, readback on
// request only, and errors that name the node or the kernel.
import assert from "node:assert/strict";
import { valueAndGrad } from "../../../compiler/autodiff.ts";
import { compile } from "../../../backends/compile.ts";
import { type Graph, makeGraph, type Node } from "../../../compiler/ir.ts";
import { runPipeline } from "../../../compiler/compile.ts";
import { schedule } from "../../../compiler/schedule.ts";
import { trace } from "../../../compiler/trace.ts";
import { linear } from "../../../nn/layers.ts";
import { scale, sub } from "../../../ops/build.ts";
import { planMemory } from "../../../compiler/memory_plan.ts";
import { bindingSizeChecker, requestGpu } from "../../../backends/webgpu/device.ts";

/** One SGD step of a linear regression: outputs the loss and the new params, which replace the old. */
function sgdStep(): Graph {
  const model = trace(
    (x, y) => ({ loss: linear(x, "fc", 3).sub(y).square().mean() }),
    [{ name: "x", shape: [5, 4] }, { name: "y", shape: [5, 3] }],
  );
  const g = valueAndGrad(model);
  const outputs: Record<string, Node> = { loss: g.outputs.loss };
  const updates: Record<string, string> = {};
  for (const p of g.params) {
    outputs[`new:${p.name}`] = sub(p, scale(g.outputs[`grad:${p.name}`], 0.1));
    updates[`new:${p.name}`] = p.name!;
  }
  return makeGraph({ inputs: g.inputs, outputs, meta: { updates } });
}

const x = Float32Array.from({ length: 20 }, (_, i) => Math.sin(i));
const y = Float32Array.from({ length: 15 }, (_, i) => Math.cos(i));
const init = {
  "fc.weight": Float32Array.from({ length: 12 }, (_, i) => 0.1 * i - 0.5),
  "fc.bias": new Float32Array(3),
};

Deno.test("a training step: params stay resident and are replaced by their updates", async (t) => {
  const graph = sgdStep();
  const gpu = await compile(graph, { backend: "webgpu" });
  const cpu = await compile(graph, { backend: "cpu" });
  gpu.setParams(init);
  cpu.setParams(init);

  await t.step("three runs equal the CPU loop", async () => {
    const losses: number[][] = [[], []];
    for (let i = 0; i < 3; i++) {
      for (const [k, exe] of [gpu, cpu].entries()) {
        const run = await exe.run({ x, y }, { read: ["loss"] });
        losses[k].push((await run.read("loss"))[0]);
      }
    }
    assert.ok(losses[0][2] < losses[0][0], `the loss decreases: ${losses[0]}`);
    losses[0].forEach((l, i) =>
      assert.ok(Math.abs(l - losses[1][i]) <= 1e-5 * Math.max(1, Math.abs(l)))
    );
    for (const name of ["fc.weight", "fc.bias"]) {
      const [a, b] = [await gpu.getParam(name), await cpu.getParam(name)];
      a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= 1e-5, `${name}[${i}]: ${v} vs ${b[i]}`));
    }
  });

  await t.step("later runs create no GPU buffer", async () => {
    const after = gpu.stats.buffersCreated;
    for (let i = 0; i < 5; i++) await (await gpu.run({ x, y }, { read: ["loss"] })).read("loss");
    assert.equal(gpu.stats.buffersCreated, after);
    assert.ok(gpu.stats.gpuBytes > 0);
  });

  await t.step("many runs may be queued before one readback", async () => {
    const first = await gpu.run({ x, y }, { read: ["loss"] });
    for (let i = 0; i < 4; i++) await gpu.run({ x, y });
    const last = await gpu.read("loss");
    assert.ok((await first.read("loss"))[0] > last[0]);
    await assert.rejects(first.read("new:fc.bias"), /overwritten by run/);
  });

  await t.step("a second compile of the same graph creates no pipeline", async () => {
    const again = await compile(graph, { backend: "webgpu" });
    assert.equal(again.stats.pipelinesCreated, 0);
    assert.ok(gpu.stats.pipelinesCreated > 0);
    again.destroy();
  });

  await t.step("misuse is a clear error", async () => {
    await assert.rejects(gpu.run({ x }), /input "y"/);
    await assert.rejects(gpu.run({ x, y, z: x }), /unknown input "z"/);
    assert.throws(
      () => gpu.setParams({ "fc.weight": new Float32Array(5) }),
      /fc.weight.*12 elements/,
    );
    await assert.rejects(gpu.run({ x, y }, { read: ["nope"] }), /unknown output "nope"/);
  });
  gpu.destroy();
});

Deno.test("params must be set before the first run", async () => {
  const exe = await compile(sgdStep(), { backend: "webgpu" });
  await assert.rejects(exe.run({ x, y }), /params never set.*fc\.bias/);
  await assert.rejects(exe.read("loss"), /before the first run/);
  exe.destroy();
});

Deno.test("a tensor larger than a binding may be is an error before dispatch, naming the node", async () => {
  const real = await requestGpu();
  const limits = {
    ...real.limits,
    maxStorageBufferBindingSize: 1024,
    maxUniformBufferBindingSize: 1024,
  };
  const gpu = { ...real, checkBindingSize: bindingSizeChecker(limits) };
  const g = trace((v) => v.broadcastTo([300]).exp(), [{ name: "v", shape: [1] }]);
  await assert.rejects(
    compile(g, { backend: "webgpu", device: gpu }),
    /exp#\d+ f32\[300\].*maxStorageBufferBindingSize/,
  );
  // The device's own limit, with a tensor that is never allocated.
  const n = real.limits.maxStorageBufferBindingSize / 4 + 4;
  const huge = trace((v) => v.broadcastTo([n]).exp(), [{ name: "v", shape: [1] }]);
  await assert.rejects(
    compile(huge, { backend: "webgpu" }),
    new RegExp(`f32\\[${n}\\].*maxStorageBufferBindingSize`),
  );
});

Deno.test("a kernel that fails to compile is an error naming its key and node", async () => {
  const g = trace((v) => v.exp().add(1), [{ name: "v", shape: [7] }]);
  const error = await compile(g, {
    backend: "webgpu",
    mapKernel: (k) => ({
      ...k,
      key: `${k.key}:broken`,
      wgsl: `${k.wgsl}\nfn oops() -> f32 { return 1u; }`,
    }),
  }).then(() => undefined, (e: Error) => e);
  assert.ok(error instanceof Error, "compilation should fail");
  assert.match(error.message, /elementwise:\w+:broken/);
  assert.match(error.message, /add#\d+ f32\[7\]/);
});

Deno.test("0-size outputs and the cpu backend share the interface", async () => {
  const g = trace((v) => ({ empty: v.slice([0], [0]).exp(), sum: v.sum() }), [{
    name: "v",
    shape: [4],
  }]);
  for (const backend of ["webgpu", "cpu"] as const) {
    const exe = await compile(g, { backend });
    const run = await exe.run({ v: [1, 2, 3, 4] }, { read: ["empty", "sum"] });
    assert.equal((await run.read("empty")).length, 0, backend);
    assert.deepEqual([...await run.read("sum")], [10], backend);
    exe.destroy();
  }
});

Deno.test("the memory plan shares buffers between temporaries by liveness", () => {
  const g = trace(
    (v) => v.exp().sum(0).exp().sum(0).exp().sum(0).exp().sum(),
    [{ name: "v", shape: [6, 5, 4, 3] }],
  );
  const program = schedule(runPipeline(g).plan!);
  const plan = planMemory(program);
  const temps = [...program.tensors.values()].filter((t) => t.role === "temp").length;
  // v, the output, and two buffers taking turns for the three temporaries.
  assert.equal(temps, 3);
  assert.equal(plan.buffers.length, 4);
  for (const step of program.steps) {
    const written = new Set(step.outputs.map((n) => plan.bufferOf.get(n.id)));
    const read = step.nodes.filter((n) => !step.outputs.includes(n));
    assert.ok(
      read.every((n) => !written.has(plan.bufferOf.get(n.id))),
      "a kernel never reads its output buffer",
    );
  }
});

Deno.test("an input the outputs do not read need not be fed", async () => {
  const specs = [{ name: "v", shape: [2] }, { name: "unused", shape: [3] }];
  const g = trace((v, _unused) => v.neg(), specs);
  for (const backend of ["webgpu", "cpu"] as const) {
    const exe = await compile(g, { backend });
    const run = await exe.run({ v: [1, 2] }, { read: ["out"] });
    assert.deepEqual([...await run.read("out")], [-1, -2]);
    exe.destroy();
  }
});
