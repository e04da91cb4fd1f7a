// Choosing a backend: every name compiles the same training step to the same
// numbers, `auto` picks WebGPU only on a hardware adapter, and the trainer's
// runner factories and merge runners take the same names.
import assert from "node:assert/strict";
import { valueAndGrad } from "../../compiler/autodiff.ts";
import { makeGraph } from "../../compiler/ir.ts";
import { param, trace } from "../../compiler/trace.ts";
import { scale, sub } from "../../ops/build.ts";
import { BACKEND_CHOICES, compile, parseBackend, resolveBackend } from "../../backends/compile.ts";
import { runnerFactoryFor } from "../../train/executable_runner.ts";
import { backendMergeRunner } from "../../adapters/gpu_merge.ts";

/** Two SGD steps of a tiny least-squares model; the weights stay on the backend. */
function sgdStep() {
  const g = valueAndGrad(trace((x, y) => ({
    loss: x.matmul(param("w", [3, 2])).sub(y).square().mean(),
  }), [{ name: "x", shape: [4, 3] }, { name: "y", shape: [4, 2] }]));
  const w = g.params[0];
  return makeGraph({
    inputs: g.inputs,
    outputs: { loss: g.outputs.loss, w: sub(w, scale(g.outputs["grad:w"], 0.1)) },
    meta: { updates: { w: "w" } },
  });
}

const feeds = {
  x: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)),
  y: Float32Array.from({ length: 8 }, (_, i) => Math.cos(i)),
};
const w0 = Float32Array.from({ length: 6 }, (_, i) => 0.1 * i - 0.2);

Deno.test("webgpu, wasm and cpu run the same step to the same losses and weights", async () => {
  const results: Record<string, number[]> = {};
  for (const backend of ["webgpu", "wasm", "cpu"] as const) {
    const exe = await compile(sgdStep(), { backend, threads: 2 });
    assert.equal(exe.backend, backend);
    exe.setParams({ w: w0 });
    await exe.run(feeds);
    const run = await exe.run(feeds, { read: ["loss"] });
    results[backend] = [...await run.read("loss"), ...await exe.getParam("w")];
    exe.destroy();
  }
  for (const backend of ["webgpu", "wasm"]) {
    results[backend].forEach((v, i) =>
      assert.ok(Math.abs(v - results.cpu[i]) < 1e-5, `${backend}[${i}]: ${v} vs ${results.cpu[i]}`)
    );
  }
});

Deno.test("auto is WebGPU on a hardware adapter, wasm otherwise", async () => {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  const hardware = adapter !== null && adapter !== undefined &&
    !(adapter.info as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  assert.equal(await resolveBackend("auto"), hardware ? "webgpu" : "wasm");
  for (const name of ["webgpu", "wasm", "cpu"] as const) {
    assert.equal(await resolveBackend(name), name);
  }
  const exe = await compile(sgdStep(), { backend: "auto" });
  assert.equal(exe.backend, await resolveBackend("auto"));
  exe.destroy();
});

Deno.test("backend names are checked, naming the choices", () => {
  assert.deepEqual([...BACKEND_CHOICES], ["auto", "webgpu", "wasm", "cpu"]);
  for (const bad of ["tpu", "", "toString", 3, undefined]) {
    assert.throws(
      () => parseBackend(bad, "--backend"),
      /--backend must be auto, webgpu, wasm, cpu; got/,
    );
  }
});

Deno.test("trainer runners and merge runners take every backend name", async () => {
  const step = sgdStep();
  const losses: number[] = [];
  for (const choice of ["cpu", "wasm", "webgpu", "auto"] as const) {
    const runner = await runnerFactoryFor(choice)(step);
    await runner.setParams({ w: w0 });
    losses.push((await runner.run(feeds, { read: ["loss"] })).loss[0]);
    runner.dispose();
  }
  for (const l of losses) assert.ok(Math.abs(l - losses[0]) < 1e-5, `${losses}`);
  const doubled = trace(() => ({ w: param("w", [2]).mul(2) }), []);
  for (const choice of ["wasm", "webgpu"] as const) {
    const out = await backendMergeRunner(choice)(doubled, { w: new Float32Array([1, -2]) });
    assert.deepEqual([...out.w], [2, -4]);
  }
});
