// The wasm Executable behaves like the other backends' at its edges: errors
// name what is wrong, outputs of older runs must be asked for, training
// updates replace params, and destroy() stops the workers (Deno's test
// sanitizers would fail this file if a worker or op outlived its test).
import assert from "node:assert/strict";
import { makeGraph, makeNode } from "../../../compiler/ir.ts";
import { param, trace } from "../../../compiler/trace.ts";
import { createWasmExecutable, defaultThreads, wasmAvailable } from "../../../backends/wasm/mod.ts";
import * as ops from "../../../ops/mod.ts";

Deno.test("wasm executable", async (t) => {
  await t.step("the engine supports it and the default thread count is the core count", () => {
    assert.equal(wasmAvailable(), true);
    assert.equal(defaultThreads(), navigator.hardwareConcurrency);
  });

  await t.step("errors name the input, the param or the index", async () => {
    const table = makeNode(ops.param, [], { shape: [4, 3], dtype: "f32", role: "frozen" }, "table");
    const ids = makeNode(ops.input, [], { shape: [2], dtype: "i32" }, "ids");
    const graph = makeGraph({
      inputs: [ids],
      outputs: { out: makeNode(ops.gather, [table, ids], {}) },
    });
    const exe = await createWasmExecutable(graph, { threads: 2 });
    await assert.rejects(exe.run({ ids: [0, 1] }), /params never set/);
    assert.throws(() => exe.setParams({ nope: [1] }), /unknown param "nope"/);
    exe.setParams({ table: Array.from({ length: 12 }, (_, i) => i) });
    await assert.rejects(exe.run({ ids: [0, 4] }), /value 4 at position 1 is out of range/);
    await assert.rejects(exe.run({ wrong: [0, 1] }), /unknown input "wrong"/);
    await assert.rejects(exe.read("out"), /before the first run/);
    const first = await exe.run({ ids: [3, 0] });
    assert.deepEqual([...await first.read("out")], [9, 10, 11, 0, 1, 2]);
    await exe.run({ ids: [1, 1] });
    await assert.rejects(first.read("out"), /overwritten by run 2/);
    exe.destroy();
    await assert.rejects(exe.run({ ids: [0, 0] }), /destroyed/);
  });

  await t.step("a thread count that is not a positive integer is an error", async () => {
    const g = trace((x) => x.neg(), [{ name: "x", shape: [2] }]);
    await assert.rejects(createWasmExecutable(g, { threads: 0 }), /positive integer, got 0/);
    await assert.rejects(createWasmExecutable(g, { threads: 1.5 }), /positive integer/);
  });

  await t.step("graph updates replace params after each run", async () => {
    const g = trace((x) => ({ w: param("w", [3]).add(x) }), [{ name: "x", shape: [3] }]);
    const exe = await createWasmExecutable(makeGraph({ ...g, meta: { updates: { w: "w" } } }));
    exe.setParams({ w: [1, 2, 3] });
    await exe.run({ x: [1, 1, 1] });
    await exe.run({ x: [1, 1, 1] });
    assert.deepEqual([...await exe.getParam("w")], [3, 4, 5]);
    assert.equal(exe.stats.runs, 2);
    exe.destroy();
  });

  await t.step("bool outputs come back as bytes, integer inputs as given", async () => {
    const x = makeNode(ops.input, [], { shape: [5], dtype: "i32" }, "x");
    const zero = makeNode(ops.const, [], { value: 0, shape: [5], dtype: "i32" });
    const graph = makeGraph({ inputs: [x], outputs: { out: makeNode(ops.gt, [x, zero], {}) } });
    const exe = await createWasmExecutable(graph, { threads: 1 });
    const run = await exe.run({ x: [-2, 0, 3, -1, 7] });
    assert.deepEqual(await run.read("out"), new Uint8Array([0, 0, 1, 0, 1]));
    exe.destroy();
  });

  await t.step("a forgotten executable does not keep the process alive", async () => {
    const script = new URL("./_forgotten.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill(), 30_000);
    const { code, stdout } = await child.output();
    clearTimeout(timer);
    assert.equal(code, 0, "the process had to be killed: a worker kept it alive");
    assert.equal(new TextDecoder().decode(stdout).trim(), "300");
  });
});
