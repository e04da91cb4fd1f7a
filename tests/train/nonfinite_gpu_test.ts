// The NaN guard on WebGPU: with the loss read back only every 25 steps, a run that diverges
// names the exact first non-finite step (found by the flag kept on the device every step), the
// same step as a CPU run that reads every step.
import { equal, ok } from "node:assert/strict";
import { type GptConfig, gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { adamw, trainStep } from "../../train/optim.ts";
import { constant } from "../../train/schedule.ts";
import { webgpuRunner } from "../../train/executable_runner.ts";
import { NonFiniteError, train } from "../../train/trainer.ts";

const CONFIG: GptConfig = {
  vocabSize: 16,
  maxSeqLen: 4,
  dModel: 8,
  heads: 2,
  layers: 1,
  head: "lm",
};

Deno.test("train on WebGPU: a divergence is named at its first step, not at the next readback", async () => {
  const model = gptGraph(CONFIG, { batch: 2, seqLen: 4 });
  // At lr 1e30 the weights overflow within a few steps.
  const step = trainStep(model, { optimizer: adamw({ weightDecay: 0 }) });
  const tokens = Int32Array.from({ length: 8 }, (_, i) => (i * 5) % 16);
  const targets = Int32Array.from({ length: 8 }, (_, i) => (i * 3 + 1) % 16);
  const options = {
    step,
    params: initParams(model, { seed: 1 }),
    data: () => ({ next: () => ({ tokens, targets }), state: null }),
    steps: 40,
    lr: constant(1e30),
    progress: "none" as const,
  };
  const onCpu = await train({ ...options, logEvery: 1 }).then(() => undefined, (e) => e);
  ok(onCpu instanceof NonFiniteError, `the CPU run diverges: ${onCpu}`);
  ok(onCpu.step < 25, `diverges early (step ${onCpu.step})`);
  const onGpu = await train({ ...options, logEvery: 25, runner: webgpuRunner }).then(
    () => undefined,
    (e) => e,
  );
  ok(onGpu instanceof NonFiniteError, String(onGpu));
  equal(onGpu.step, onCpu.step, "the same first bad step");
  equal(onGpu.readAt, 25, "found at the first readback");
});
