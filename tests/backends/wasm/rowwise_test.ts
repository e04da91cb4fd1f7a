// The Wasm row kernels render any rule written against RowKernel, not only
// the built-in row ops': reads off the loop's column (a gather across the
// four lanes), the column index as a value, per-row branches, and the
// tails of rows whose length is not a multiple of four. A rule that
// branches per column is refused with the fix in the message.
import assert from "node:assert/strict";
import { defineOp, makeGraph, makeNode, type OpDef } from "../../../compiler/ir.ts";
import { createWasmExecutable } from "../../../backends/wasm/mod.ts";
import * as ops from "../../../ops/mod.ts";
import {
  add,
  binary,
  convert,
  f32,
  mul,
  rowSum,
  select,
  sub,
  u32,
} from "../../../compiler/kernel_ir/mod.ts";

// out[j] = x[cols - 1 - j] + j, plus the row's sum at columns 0 and 1: a
// reversed read, j as a value, and a reduction over a tail.
const reverse: OpDef = defineOp({
  name: "test_wasm_row_reverse",
  kind: "fused",
  lowering: "rowwise",
  noGradient: "a test of the Wasm row renderer",
  infer: ([x]) => x,
  cpu: ([x]) => {
    const n = x.shape[x.shape.length - 1];
    return x.data.map((_, i) => {
      const o = i - (i % n), j = i % n;
      let s = 0;
      for (let k = 0; k < n; k++) s += x.data[o + k];
      return x.data[o + n - 1 - j] + j + (j < 2 ? s : 0);
    });
  },
  rowwise: (row) => {
    const s = rowSum(row, (j) => row.x(j));
    row.each((j) => {
      const back = row.x(sub(u32(row.cols - 1), j));
      const first = binary("<", j, u32(2));
      row.store(j, add(add(back, convert("f32", j)), select(first, s, f32(0))));
    });
  },
});

// A per-column branch: fine in WGSL, refused on Wasm (a lane-wise select does it).
const branchy: OpDef = defineOp({
  name: "test_wasm_row_branch",
  kind: "fused",
  lowering: "rowwise",
  noGradient: "a test of the Wasm row renderer",
  infer: ([x]) => x,
  cpu: ([x]) => x.data,
  rowwise: (row) => {
    row.each((j, body) => {
      const v = body.var("f32", f32(0), "v");
      body.when(binary("<", j, u32(2)), (b) => b.assign(v, mul(row.x(j), f32(2))));
      row.store(j, v);
    });
  },
});

Deno.test("wasm row kernels render any RowKernel rule", async (t) => {
  for (const cols of [1, 4, 7, 9]) {
    await t.step(`a gather, j as a value and a tail, ${cols} columns`, async () => {
      const x = makeNode(ops.input, [], { shape: [3, cols], dtype: "f32" }, "x");
      const graph = makeGraph({ inputs: [x], outputs: { out: makeNode(reverse, [x]) } });
      const xs = Array.from({ length: 3 * cols }, (_, i) => (i * 7) % 5 - 1.5);
      const want = reverse.cpu!([{ data: Float64Array.from(xs), shape: [3, cols] }] as never, {
        node: graph.outputs.out,
      } as never);
      const exe = await createWasmExecutable(graph, { threads: 2 });
      const got = await (await exe.run({ x: xs })).read("out");
      exe.destroy();
      assert.deepEqual([...got], [...want]);
    });
  }

  await t.step("a per-column branch is refused, pointing at select", async () => {
    const x = makeNode(ops.input, [], { shape: [2, 8], dtype: "f32" }, "x");
    const graph = makeGraph({ inputs: [x], outputs: { out: makeNode(branchy, [x]) } });
    await assert.rejects(createWasmExecutable(graph, { threads: 1 }), /per column; use select/);
  });
});
