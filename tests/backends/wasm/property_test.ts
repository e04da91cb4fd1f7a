// Random shapes (sizes that are rarely multiples of 4 or of the matmul
// tile): a fused elementwise chain with broadcasts, matmuls with transposed
// operands, and reductions over random axes agree with the float64
// reference on the wasm backend.
import { builtinOps } from "../../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "fast-check";
import { makeGraph, makeNode, type Node } from "../../../compiler/ir.ts";
import { evaluate } from "../../../backends/cpu/interpreter.ts";
import { createWasmExecutable } from "../../../backends/wasm/mod.ts";
import * as ops from "../../../ops/mod.ts";

const opNamed = new Map(builtinOps().map((o) => [o.name, o]));
const op = (name: string, inputs: Node[], attrs = {}) =>
  makeNode(opNamed.get(name)!, inputs, attrs);
const dim = fc.integer({ min: 1, max: 37 });

async function agrees(outputs: Record<string, Node>, inputs: Node[], threads: number) {
  const graph = makeGraph({ inputs, outputs });
  const feeds = Object.fromEntries(inputs.map((n, k) => [
    n.name!,
    Array.from({ length: n.shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(7 * i + k)),
  ]));
  const exe = await createWasmExecutable(graph, { threads });
  try {
    const run = await exe.run(feeds, { read: Object.keys(outputs) });
    const want = evaluate(graph, { inputs: feeds });
    for (const name of Object.keys(outputs)) {
      const got = await run.read(name);
      for (let i = 0; i < got.length; i++) {
        const w = want[name].data[i];
        const err = Math.abs(got[i] - w) / Math.max(1, Math.abs(w));
        assert.ok(err <= 1e-4, `${name}[${i}]: ${got[i]} vs ${w}`);
      }
    }
  } finally {
    exe.destroy();
  }
}

Deno.test("wasm backend on random shapes", async (t) => {
  await t.step("a fused elementwise chain with row and column broadcasts", async () => {
    await fc.assert(
      fc.asyncProperty(dim, dim, fc.integer({ min: 1, max: 2 }), async (m, n, threads) => {
        const x = makeNode(ops.input, [], { shape: [m, n], dtype: "f32" }, "x");
        const row = makeNode(ops.input, [], { shape: [n], dtype: "f32" }, "row");
        const col = makeNode(ops.input, [], { shape: [m, 1], dtype: "f32" }, "col");
        const r = op("broadcast", [row], { shape: [m, n] });
        const c = op("broadcast", [col], { shape: [m, n] });
        const y = op("gelu", [op("add", [op("mul", [op("tanh", [x]), r]), op("exp", [c])])]);
        await agrees(
          { y, t: op("neg", [op("permute", [y], { perm: [1, 0] })]) },
          [x, row, col],
          threads,
        );
      }),
      { numRuns: 12 },
    );
  });
  await t.step("matmul with transposed operands", async () => {
    await fc.assert(
      fc.asyncProperty(dim, dim, dim, fc.boolean(), fc.boolean(), async (m, k, n, ta, tb) => {
        const a = makeNode(ops.input, [], { shape: ta ? [k, m] : [m, k], dtype: "f32" }, "a");
        const b = makeNode(ops.input, [], { shape: tb ? [n, k] : [k, n], dtype: "f32" }, "b");
        const lhs = ta ? op("permute", [a], { perm: [1, 0] }) : a;
        const rhs = tb ? op("permute", [b], { perm: [1, 0] }) : b;
        await agrees({ c: op("matmul", [lhs, rhs]) }, [a, b], 2);
      }),
      { numRuns: 12 },
    );
  });
  await t.step("sum and max over random axes", async () => {
    const shape = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(
        shape,
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        async (s, pick) => {
          const axes = s.map((_, i) => i).filter((i) => pick[i]);
          const x = makeNode(ops.input, [], { shape: s, dtype: "f32" }, "x");
          await agrees({ s: op("sum", [x], { axes }), m: op("max", [x], { axes }) }, [x], 1);
        },
      ),
      { numRuns: 12 },
    );
  });
});
