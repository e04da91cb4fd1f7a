// An op defined in one file, the way docs/ARCHITECTURE.md §4 shows a user
// adding one: it evaluates on the reference interpreter, has a gradient that
// matches finite differences, fuses into the WebGPU backend's elementwise
// kernels and runs on the Wasm backend, with no change anywhere else.
import assert from "node:assert/strict";
import { defineOp, makeNode, type OpDef } from "../../compiler/ir.ts";
import { trace } from "../../compiler/trace.ts";
import { wrap } from "../../compiler/tensor.ts";
import { compile } from "../../backends/compile.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";
import * as ops from "../../ops/mod.ts";
import { pointwise } from "../../ops/rules.ts";
import { add, f32, math } from "../../compiler/kernel_ir/mod.ts";
import { checkGradients } from "./_gradcheck.ts";

// softplus(x) = log(1 + e^x); its derivative is the logistic function 1 / (1 + e^-x).
const softplus: OpDef = defineOp({
  name: "test_softplus",
  kind: "elementwise",
  lowering: "inline",
  infer: ([x]) => x,
  cpu: ([x]) => x.data.map((v) => Math.log1p(Math.exp(v))),
  // Inside kernels: log(1 + e^x) in the kernel IR, from the operand's value at the same index.
  inline: pointwise(([x]) => math("log", add(f32(1), math("exp", x)))),
  vjp: (node, g) => {
    const e = makeNode(ops.exp, [makeNode(ops.neg, [node.inputs[0]])]);
    const one = makeNode(ops.const, [], { value: 1, shape: [...g.shape], dtype: "f32" });
    return [makeNode(ops.div, [g, makeNode(ops.add, [one, e])])];
  },
});

const xs = [-2, -1, 0, 0.5, 2];
const expected = xs.map((v) => 2 * Math.log1p(Math.exp(v)));

Deno.test("a one-file op: reference value, gradient, and a fused GPU kernel", async (t) => {
  const graph = trace((x) => wrap(makeNode(softplus, [x.node])).mul(2), [{
    name: "x",
    shape: [5],
  }]);
  await t.step("the reference interpreter uses its cpu rule", () => {
    const out = evaluate(graph, { inputs: { x: xs } }).out.data;
    for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(out[i] - expected[i]) < 1e-12);
  });
  await t.step("its vjp matches finite differences", () => {
    checkGradients((x) => wrap(makeNode(softplus, [x.node])), [{ name: "x", shape: [3, 4] }]);
  });
  await t.step("webgpu computes it inside one fused kernel", async () => {
    const exe = await compile(graph, { backend: "webgpu" });
    assert.equal(exe.stats.kernelsPerRun, 1, "softplus and the scaling fuse");
    const out = await (await exe.run({ x: xs })).read("out");
    for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(out[i] - expected[i]) < 1e-5);
    exe.destroy();
  });
  await t.step("wasm computes it from the same inline rule, fused into one loop", async () => {
    const exe = await compile(graph, { backend: "wasm", threads: 1 });
    const out = await (await exe.run({ x: xs })).read("out");
    for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(out[i] - expected[i]) < 1e-5);
    exe.destroy();
  });
  await t.step("a second op under the same name is refused", () => {
    assert.throws(() => defineOp({ ...softplus }), /op test_softplus is defined twice/);
  });
});
