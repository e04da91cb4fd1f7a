// The 2-layer tiny GPT, both heads of its attention: the loss and every
// gradient computed on WebGPU match the float64 CPU reference.
import assert from "node:assert/strict";
import { valueAndGrad } from "../../../compiler/autodiff.ts";
import { compile } from "../../../backends/compile.ts";
import { gptGraph } from "../../../nn/gpt.ts";
import { initParams } from "../../../nn/init.ts";
import { evaluate } from "../../../backends/cpu/interpreter.ts";

const CONFIG = { vocabSize: 11, maxSeqLen: 5, dModel: 8, heads: 2, layers: 2, head: "lm" } as const;

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
  }
  return worst;
}

Deno.test("tiny GPT on WebGPU: loss and all gradients match the CPU reference", async (t) => {
  const graph = valueAndGrad(gptGraph(CONFIG, { batch: 2, seqLen: 5 }));
  const params = initParams(graph, { seed: 7 });
  // Move the params off their init (ones, zeros) so every gradient is non-trivial.
  for (const [name, values] of Object.entries(params)) {
    params[name] = values.map((v, i) => v + 0.1 * Math.sin(1 + i + name.length));
  }
  const tokens = Int32Array.from({ length: 10 }, (_, i) => (i * 7 + 3) % 11);
  const targets = Int32Array.from({ length: 10 }, (_, i) => (i * 5 + 1) % 11);
  targets[3] = -1; // an ignored position
  const exe = await compile(graph, { backend: "webgpu" });
  exe.setParams(params);
  const names = Object.keys(graph.outputs);
  const run = await exe.run({ tokens, targets }, { read: names });
  const reference = evaluate(graph, { inputs: { tokens, targets }, params });

  await t.step("loss", async () => {
    const loss = await run.read("loss");
    assert.ok(
      relativeError(loss, reference.loss.data) <= 1e-4,
      `loss ${loss[0]} vs ${reference.loss.data[0]}`,
    );
  });

  await t.step("every gradient", async () => {
    const grads = names.filter((n) => n.startsWith("grad:"));
    assert.equal(grads.length, graph.params.length);
    const failures: string[] = [];
    for (const name of grads) {
      const err = relativeError(await run.read(name), reference[name].data);
      if (!(err <= 1e-4)) failures.push(`${name}: ${err}`);
    }
    assert.deepEqual(failures, []);
  });

  await t.step("the logits", async () => {
    assert.ok(relativeError(await run.read("logits"), reference.logits.data) <= 1e-4);
  });
  exe.destroy();
});
