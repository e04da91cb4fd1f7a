// What fuses: elementwise regions into one kernel, elementwise epilogues
// into matmul, reduction and row-wise kernels, head split/merge views into a
// direct matmul; and the GPT training step needs far fewer kernels than it
// has ops.
import assert from "node:assert/strict";
import { valueAndGrad } from "../../compiler/autodiff.ts";
import { runPipeline, unfusedKernelCount } from "../../compiler/compile.ts";
import { compile } from "../../backends/compile.ts";
import type { Graph } from "../../compiler/ir.ts";
import type { KernelGroup } from "../../compiler/fusion/plan.ts";
import { bindingCount } from "../../compiler/fusion/regions.ts";
import { param, randomUniform, trace } from "../../compiler/trace.ts";
import { gptGraph } from "../../nn/gpt.ts";
import { layerNorm, linear } from "../../nn/layers.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";

function plan(graph: Graph): readonly KernelGroup[] {
  return runPipeline(graph, ["simplify", "constantFold", "cse", "dce", "fuse"]).plan!.groups;
}

const describe = (groups: readonly KernelGroup[]) =>
  groups.map((g) =>
    `${g.kind}${g.direct ? "(direct)" : ""}${g.epilogue ? `+${g.epilogue.op}` : ""}` +
    (g.lanes ? `×${g.lanes.length}` : "")
  );

Deno.test("an elementwise region with broadcasts, permutes, slices and casts is one kernel", () => {
  const g = trace(
    (x, b) =>
      x.permute([1, 0]).slice([1, 0], [4, 3]).mul(b).exp().add(
        x.permute([1, 0]).slice([0, 0], [3, 3]).cast("i32").cast("f32"),
      ),
    [{ name: "x", shape: [3, 5] }, { name: "b", shape: [3] }],
  );
  assert.deepEqual(describe(plan(g)), ["elementwise"]);
});

Deno.test("a value needed by two kernels gets a buffer; cheap ones are recomputed", () => {
  const g = trace((x) => {
    const e = x.exp().mul(x).tanh(); // 3 ops: worth a buffer
    return { a: e.sum(0), b: e.sum(1), c: x.mul(2).sum(0) };
  }, [{ name: "x", shape: [4, 6] }]);
  // e gets a buffer; the two reductions over axis 0 share a kernel; x·2 is computed inside it.
  assert.deepEqual(describe(plan(g)), ["elementwise", "reduce×2", "reduce"]);
});

Deno.test("outputs of one elementwise region, and independent siblings, share one kernel", () => {
  const g = trace((x, w) => {
    const y = x.exp();
    return { y, z: y.mul(2), n: w.neg() };
  }, [{ name: "x", shape: [4, 6] }, { name: "w", shape: [24] }]);
  const groups = plan(g);
  assert.deepEqual(describe(groups), ["elementwise"]);
  assert.equal(groups[0].roots.length, 3);
});

Deno.test("linear + bias + GELU, and a residual, are matmul epilogues", () => {
  const g = trace((x) => {
    const h = linear(x, "fc1", 40).gelu();
    return linear(h, "fc2", 24).add(x);
  }, [{ name: "x", shape: [6, 24] }]);
  assert.deepEqual(describe(plan(g)), ["matmul+gelu", "matmul+add"]);
});

Deno.test("VeRA's lambda_d and lambda_b scalings fuse into the two projections", () => {
  const g = trace((x) => {
    const a = randomUniform([16, 24], { seed: 1, stream: 0, bound: 0.5 });
    const b = randomUniform([40, 16], { seed: 1, stream: 1, bound: 0.25 });
    const d = param("lambda_d", [16]);
    const lb = param("lambda_b", [40]);
    return x.matmul(a.T).mul(d).matmul(b.T).mul(lb);
  }, [{ name: "x", shape: [6, 24] }]);
  // The two projections are generated once each; each product carries its scaling.
  assert.deepEqual(describe(plan(g)), ["elementwise", "matmul+mul", "elementwise", "matmul+mul"]);
});

Deno.test("layerNorm with its affine weight and bias is one row-wise kernel", () => {
  const g = trace((x) => layerNorm(x, "ln"), [{ name: "x", shape: [5, 12] }]);
  assert.deepEqual(describe(plan(g)), ["rowwise+add"]);
});

Deno.test("masked, scaled softmax reads its mask and scale inline", () => {
  const g = trace((s) => s.mul(0.5).add(s.mul(0)).softmax(-1), [{
    name: "s",
    shape: [2, 3, 5, 5],
  }]);
  assert.deepEqual(describe(plan(g)), ["rowwise"]);
});

Deno.test("attention's head split and merge are read in place by direct matmuls", () => {
  const g = trace((q, k) => {
    const split = (y: typeof q) => y.reshape([2, 5, 2, 4]).permute([0, 2, 1, 3]);
    return split(q).matmul(split(k).T).permute([0, 2, 1, 3]).reshape([2, 5, 10]);
  }, [{ name: "q", shape: [2, 5, 8] }, { name: "k", shape: [2, 5, 8] }]);
  assert.deepEqual(describe(plan(g)), ["matmul(direct)", "elementwise"]);
});

Deno.test("a weight gradient (xᵀg)ᵀ is one matmul, with no transpose copy", () => {
  const g = valueAndGrad(trace(
    (x, y) => ({ loss: linear(x, "fc", 40, { bias: false }).mul(y).sum() }),
    [{ name: "x", shape: [6, 24] }, { name: "y", shape: [6, 40] }],
  ));
  // Forward product, the loss (its mul fused into the reduction), the gradient product.
  assert.deepEqual(describe(plan(g)), ["matmul", "reduce", "matmul"]);
});

Deno.test("a region that needs more buffers than a kernel may bind is split", () => {
  const names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
  const g = trace(
    (...xs) => xs.reduce((acc, x) => acc.mul(x).exp()),
    names.map((name) => ({ name, shape: [5] })),
  );
  const state = runPipeline(g, ["fuse"], { context: { maxBindings: 4 } });
  const { groups, materialized } = state.plan!;
  assert.ok(groups.length >= 3, `${groups.length} kernels`);
  for (const group of groups) assert.ok(bindingCount(group, materialized) <= 4);
});

Deno.test("the GPT training step needs fewer kernels than it has ops", async () => {
  const graph = valueAndGrad(gptGraph(
    { vocabSize: 11, maxSeqLen: 5, dModel: 8, heads: 2, layers: 2, head: "lm" },
    { batch: 2, seqLen: 5 },
  ));
  const optimized = runPipeline(graph, ["simplify", "constantFold", "cse", "dce"]).graph;
  const unfused = unfusedKernelCount(optimized);
  const exe = await compile(graph, { backend: "webgpu" });
  console.log(
    `GPT forward+backward: ${exe.stats.kernelsPerRun} kernels fused, ${unfused} ops unfused`,
  );
  assert.ok(
    exe.stats.kernelsPerRun < unfused,
    `${exe.stats.kernelsPerRun} kernels vs ${unfused} ops`,
  );
  assert.ok(
    exe.stats.kernelsPerRun <= unfused * 0.6,
    `${exe.stats.kernelsPerRun} kernels vs ${unfused} ops`,
  );
  exe.destroy();
});

// Found by gpu_property_test.ts: the reshape of a matmul became that matmul's
// epilogue (so the matmul's own buffer was dropped) while a second matmul
// still read the matmul's buffer through the reshape; scheduling threw
// "matmul operand matmul#… has no buffer to read".
Deno.test("a matmul read through a view by another matmul keeps its buffer", async () => {
  const g = trace((x, w, v) => {
    const h = x.matmul(w).reshape([1, 3, 5]);
    return { y: h.matmul(v), z: h };
  }, [{ name: "x", shape: [3, 2] }, { name: "w", shape: [2, 5] }, { name: "v", shape: [1, 5, 2] }]);
  const feeds = {
    x: [1, 2, 3, 4, 5, 6],
    w: [1, 0, -1, 2, 0.5, 0, 1, 1, -2, 3],
    v: [1, 2, 0, 1, -1, 0, 2, 2, 1, -1],
  };
  const want = evaluate(g, { inputs: feeds });
  const exe = await compile(g, { backend: "webgpu" });
  const run = await exe.run(feeds, { read: ["y", "z"] });
  assert.deepEqual([...await run.read("y")], [...want.y.data]);
  assert.deepEqual([...await run.read("z")], [...want.z.data]);
  exe.destroy();
});
