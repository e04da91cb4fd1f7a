// A VeRA training step (GPT with an LM head, VeRA on q_proj, v_proj and fc1,
// AdamW) on the wasm backend matches the cpu backend: the loss and every
// lambda after two steps (the second moves lambda_d through the updated
// lambda_b), with 1 thread and with 2.
import { ok } from "node:assert/strict";
import { DEFAULT_PIPELINE, runPipeline } from "../../../compiler/compile.ts";
import { compile } from "../../../backends/compile.ts";
import type { Graph } from "../../../compiler/ir.ts";
import { gptGraph } from "../../../nn/gpt.ts";
import { initParams } from "../../../nn/init.ts";
import { vera } from "../../../adapters/vera.ts";
import type { Executable } from "../../../backends/executable.ts";
import { adamw, initOptimizerState, trainStep } from "../../../train/optim.ts";
import { createWasmExecutable } from "../../../backends/wasm/mod.ts";

const VOCAB = 11;
const model = gptGraph(
  { vocabSize: VOCAB, maxSeqLen: 6, dModel: 16, heads: 2, layers: 2, head: "lm" },
  { batch: 2, seqLen: 6 },
);
const { graph } = vera(model, { r: 32, targetModules: ["q_proj", "v_proj", "fc1"] });
const step = trainStep(graph, { optimizer: adamw() });
const tokens = Int32Array.from([1, 4, 2, 9, 3, 7, 0, 5, 10, 6, 8, 2]);
const targets = Int32Array.from(tokens, (v, i) => (v + i) % VOCAB);
const lambdas = graph.params.map((p) => p.name!).filter((n) => n.includes("vera_lambda"));

/** Params with non-zero lambda_b so the adapter changes the model. */
function perturbed(g: Graph): Record<string, Float32Array> {
  const params = initParams(g, { seed: 5 });
  for (const [name, v] of Object.entries(params)) {
    if (/vera_lambda_b/.test(name)) params[name] = v.map((_, i) => 0.5 * Math.sin(3 * i + 1));
  }
  return params;
}
const params = { ...perturbed(graph), ...initOptimizerState(step) };

async function train(exe: Executable) {
  try {
    exe.setParams(params);
    await exe.run({ tokens, targets, lr: [1e-2], step: [1] });
    const run = await exe.run({ tokens, targets, lr: [1e-2], step: [2] }, { read: ["loss"] });
    const loss = await run.read("loss");
    const values: Record<string, ArrayLike<number>> = {};
    for (const name of lambdas) values[name] = await exe.getParam(name);
    return { loss, values };
  } finally {
    exe.destroy();
  }
}

function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

Deno.test("a VeRA training step on wasm matches the cpu backend", async (t) => {
  const cpu = await train(await compile(step, { backend: "cpu" }));
  const passes = DEFAULT_PIPELINE.slice(0, DEFAULT_PIPELINE.indexOf("fuse"));
  const optimized = runPipeline(step, passes).graph;
  for (const threads of [1, 2]) {
    await t.step(`${threads} thread(s)`, async () => {
      const wasm = await train(await createWasmExecutable(optimized, { threads }));
      ok(relativeError(wasm.loss, cpu.loss) <= 1e-4, `loss ${wasm.loss[0]} vs ${cpu.loss[0]}`);
      for (const name of lambdas) {
        const err = relativeError(wasm.values[name], cpu.values[name]);
        ok(err <= 1e-4, `${name}: ${err}`);
      }
    });
  }
});
