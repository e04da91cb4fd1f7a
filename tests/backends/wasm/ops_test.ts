// Every registered op on the wasm backend matches the float64 CPU reference
// (relative error ≤ 1e-4, normalised by max(1, |ref|)); `random` and
// `dropout` match bit for bit. Run with 1 thread and with 2, so both the
// single-threaded and the split kernels are checked.
import assert from "node:assert/strict";
import { makeGraph, type Node } from "../../../compiler/ir.ts";
import { builtinOps } from "../../../ops/mod.ts";
import { evaluate } from "../../../backends/cpu/interpreter.ts";
import { createWasmExecutable } from "../../../backends/wasm/mod.ts";
import { CASES, feeds, inputs, LARGE_CASES, params } from "./_op_cases.ts";

const EXACT = new Set(["random", "dropout"]);
// With `random` and `dropout` in the larger cases, the exact check covers their split kernels too.

async function check(cases: Record<string, () => Node[]>, threads: number) {
  const outputs: Record<string, Node> = {};
  for (const [name, build] of Object.entries(cases)) {
    build().forEach((n, k) => (outputs[`${name}.${k}`] = n));
  }
  const graph = makeGraph({ inputs, outputs });
  const exe = await createWasmExecutable(graph, { threads });
  try {
    exe.setParams(Object.fromEntries(graph.params.map((p) => [p.name!, params[p.name!]])));
    const run = await exe.run(feeds, { read: Object.keys(outputs) });
    const reference = evaluate(graph, { inputs: feeds, params });
    // Bit-exact ops are compared with the reference run in f32 (inputs rounded as wasm rounds them).
    const rounded = evaluate(graph, { inputs: feeds, params }, { precision: "f32" });
    const failures: string[] = [];
    for (const name of Object.keys(outputs)) {
      const got = await run.read(name);
      const exact = EXACT.has(name.split(".")[0]) || outputs[name].op === "random";
      const want = (exact ? rounded : reference)[name].data;
      assert.equal(got.length, want.length, `${name}: length`);
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        const w = exact ? Math.fround(want[i]) : want[i];
        const err = exact
          ? (Object.is(got[i], w) ? 0 : Infinity)
          : Math.abs(got[i] - w) / Math.max(1, Math.abs(w));
        if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
      }
      if (worst > 1e-4) {
        failures.push(
          `${name}: error ${worst} (got ${[...got.slice(0, 4)]}, want ${[...want.slice(0, 4)]})`,
        );
      }
    }
    assert.deepEqual(failures, []);
  } finally {
    exe.destroy();
  }
}

Deno.test("wasm backend: every op matches the float64 reference", async (t) => {
  await t.step("every registered op has a case", () => {
    const missing = builtinOps().map((o) => o.name).filter((name) => CASES[name] === undefined);
    assert.deepEqual(missing, []);
  });
  await t.step("small cases, 1 thread", () => check(CASES, 1));
  await t.step("small cases, 2 threads", () => check(CASES, 2));
  await t.step("large cases, 1 thread", () => check(LARGE_CASES, 1));
  await t.step("large cases, 2 threads", () => check(LARGE_CASES, 2));
});
