// The compiler driver: the pipeline is a visible list of named passes, a
// debug option dumps the state after each, and both backends sit behind one
// interface.
import assert from "node:assert/strict";
import { DEFAULT_PIPELINE, runPipeline } from "../../compiler/compile.ts";
import { compile } from "../../backends/compile.ts";
import { param, trace } from "../../compiler/trace.ts";

const graph = trace(
  (x) => x.mul(1).matmul(param("w", [2, 3]).T).add(param("b", [2])).exp().sum(),
  [{ name: "x", shape: [4, 3] }],
);
const feeds = { x: Float32Array.from({ length: 12 }, (_, i) => i / 12 - 0.5) };
const params = {
  w: Float32Array.from({ length: 6 }, (_, i) => 0.1 * i),
  b: new Float32Array([0.5, -0.5]),
};

Deno.test("debug dumps the state after every pass", async () => {
  const seen: string[] = [];
  const dumps: string[] = [];
  const exe = await compile(graph, {
    backend: "webgpu",
    debug: (pass, dump) => {
      seen.push(pass);
      dumps.push(dump);
    },
  });
  assert.deepEqual(seen, [...DEFAULT_PIPELINE, "schedule"], "the passes, then the backend's stage");
  assert.match(dumps[0], /matmul/);
  assert.doesNotMatch(dumps[0], /= mul/, "simplify drops x·1");
  assert.match(dumps[4], /fusion plan: 2 kernels/);
  assert.match(dumps[5], /program: 2 kernels/);
  exe.destroy();
});

Deno.test("runPipeline stops where asked and rejects unknown passes", () => {
  const state = runPipeline(graph, ["simplify", "dce"]);
  assert.equal(state.plan, undefined);
  assert.throws(() => runPipeline(graph, ["simplify", "vectorize"]), /unknown pass "vectorize"/);
});

Deno.test("the webgpu backend needs a fusion plan; unknown backends are named", async () => {
  await assert.rejects(
    compile(graph, { passes: ["simplify"] }),
    /webgpu backend needs the pass "fuse"/,
  );
  await assert.rejects(
    compile(graph, { backend: "tpu" as "cpu" }),
    /compile: backend must be auto, webgpu, wasm, cpu; got "tpu"/,
  );
});

Deno.test("webgpu and cpu backends agree behind one interface", async () => {
  const results: number[] = [];
  for (const backend of ["webgpu", "cpu"] as const) {
    const exe = await compile(graph, { backend });
    assert.equal(exe.backend, backend);
    exe.setParams(params);
    const run = await exe.run(feeds, { read: ["out"] });
    results.push((await run.read("out"))[0]);
    assert.deepEqual([...await exe.getParam("b")], [0.5, -0.5]);
    exe.destroy();
  }
  assert.ok(Math.abs(results[0] - results[1]) <= 1e-5 * Math.abs(results[1]), `${results}`);
});

Deno.test("the webgpu backend reports its counters", async () => {
  const exe = await compile(graph, { backend: "webgpu" });
  assert.equal(exe.stats.kernelsPerRun, 2);
  assert.ok(exe.stats.gpuBytes >= (12 + 6 + 2 + 1) * 4);
  assert.ok(exe.program !== undefined && exe.program.steps.every((s) => s.program.label));
  exe.destroy();
});
