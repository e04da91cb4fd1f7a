// Kernels cannot throw, so the WebGPU executable checks index inputs on the
// host: an out-of-range token or label is an error, as on the CPU, not a NaN.
import { equal, rejects } from "node:assert/strict";
import { compile } from "../../backends/compile.ts";
import { param, trace } from "../../compiler/trace.ts";

Deno.test("WebGPU: out-of-range token ids and labels are errors, not NaN", async () => {
  const g = trace(
    (ids, labels) => {
      const logits = param("embed.weight", [5, 3]).gather(ids);
      return { loss: logits.crossEntropy(labels).mean() };
    },
    [{ name: "ids", shape: [4], dtype: "i32" }, { name: "labels", shape: [4], dtype: "i32" }],
  );
  const exe = await compile(g, { backend: "webgpu" });
  try {
    exe.setParams({ "embed.weight": Array.from({ length: 15 }, (_, i) => i / 10) });
    const ok = await exe.run({ ids: [0, 4, 2, 1], labels: [0, 2, -1, 1] }, { read: ["loss"] });
    equal(Number.isFinite((await ok.read("loss"))[0]), true);
    await rejects(
      exe.run({ ids: [0, 5, 2, 1], labels: [0, 1, 1, 1] }),
      /input "ids": value 5 at position 1 is out of range for rows of embed\.weight \[5,3\]/,
    );
    await rejects(exe.run({ ids: [0, 1, 2, -1], labels: [0, 1, 1, 1] }), /value -1 at position 3/);
    await rejects(
      exe.run({ ids: [0, 1, 2, 3], labels: [0, 3, 1, 1] }),
      /input "labels": value 3 at position 1 is out of range for 3 classes/,
    );
  } finally {
    exe.destroy();
  }
});
