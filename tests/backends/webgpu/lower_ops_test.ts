// Every registered op, lowered to WGSL and run on the WebGPU adapter, matches
// the float64 CPU reference (relative error ≤ 1e-4, normalised by
// max(1, |ref|)) on shapes that are not multiples of any tile size, with 0-
// and 1-sized dims. All cases go into one graph, so one compilation covers
// them.
import assert from "node:assert/strict";
import { compile } from "../../../backends/compile.ts";
import { makeGraph, makeNode, type Node } from "../../../compiler/ir.ts";
import { builtinOps } from "../../../ops/mod.ts";
import { CASES, feeds, inputs, op, params } from "../_op_cases.ts";
import { referenceFailures } from "../_compare.ts";
import { evaluate } from "../../../backends/cpu/interpreter.ts";
import * as ops from "../../../ops/mod.ts";

Deno.test("every built-in op has a GPU test case", () => {
  const missing = builtinOps().map((o) => o.name).filter((name) => CASES[name] === undefined);
  assert.deepEqual(missing, [], `ops without a GPU test case: ${missing.join(", ")}`);
});

Deno.test("every op on WebGPU matches the float64 CPU reference", async () => {
  const outputs: Record<string, Node> = {};
  for (const [name, build] of Object.entries(CASES)) {
    build().forEach((n, k) => (outputs[`${name}.${k}`] = n));
  }
  const graph = makeGraph({ inputs, outputs });
  const exe = await compile(graph, { backend: "webgpu" });
  exe.setParams(params);
  const run = await exe.run(feeds, { read: Object.keys(outputs) });
  const reference = evaluate(graph, { inputs: feeds, params });
  assert.deepEqual(await referenceFailures(run, reference, Object.keys(outputs)), []);
  exe.destroy();
});

// Found by gpu_property_test.ts: WGSL's tanh builtin may lose most of its
// relative accuracy near 0 (llvmpipe: 3e-6 at x = 0.01, 1.4e-3 at 1e-5), which
// a cancelling sum then scaled by layerNorm turned into a visible error.
Deno.test("tanh keeps f32 relative accuracy near 0 on the GPU", async () => {
  const xs = [1e-6, -1e-5, 1e-4, -3e-3, 0.01, -0.05, 0.1, 0.124, -0.126, 0.3, 2, -25];
  const x = makeNode(ops.input, [], { shape: [xs.length], dtype: "f32" }, "x");
  const exe = await compile(makeGraph({ inputs: [x], outputs: { y: op("tanh", [x]) } }), {
    backend: "webgpu",
  });
  const got = await (await exe.run({ x: xs }, { read: ["y"] })).read("y");
  xs.forEach((v, i) => {
    const want = Math.tanh(Math.fround(v));
    assert.ok(
      Math.abs(got[i] - want) <= 5e-7 * Math.abs(want),
      `tanh(${v}): ${got[i]}, not ${want}`,
    );
  });
  exe.destroy();
});
