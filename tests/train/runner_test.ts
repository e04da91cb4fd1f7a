import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { param, trace } from "../../compiler/trace.ts";
import { evaluate, type TensorData } from "../../backends/cpu/interpreter.ts";
import {
  adamw,
  applyUpdates,
  hyperparameterFeeds,
  initOptimizerState,
  trainStep,
} from "../../train/optim.ts";
import { cpuRunner, updatedParams } from "../../train/runner.ts";

function model() {
  return trace(
    (x) => {
      const w = param("w", [3]);
      const frozen = param("scale", [3], { role: "frozen", init: { kind: "ones" } });
      return { loss: x.mul(frozen).sub(w).square().sum(), pred: w.sum() };
    },
    [{ name: "x", shape: [3] }],
  );
}

Deno.test("cpuRunner", async (t) => {
  const step = trainStep(model(), { optimizer: adamw({ weightDecay: 0.01 }) });
  const start = {
    w: new Float32Array([0.5, -0.25, 1]),
    scale: new Float32Array([1, 2, 3]),
    ...initOptimizerState(step),
  };
  const xs = [[1, 2, 3], [0.5, -1, 2], [3, 0, -1]];

  await t.step("matches evaluate + applyUpdates in f32, step by step, bit for bit", async () => {
    const runner = cpuRunner(step);
    await runner.setParams(start);
    let params: Record<string, TensorData> = { ...start };
    for (const [i, x] of xs.entries()) {
      const inputs = { x, ...hyperparameterFeeds(step, { step: i + 1, lr: 0.1 }) };
      const out = evaluate(step, { inputs, params }, { precision: "f32" });
      params = applyUpdates(params, out, step.meta.updates as Record<string, string>);
      const read = await runner.run(inputs, { read: ["loss", "grad_norm"] });
      deepEqual(Object.keys(read), ["loss", "grad_norm"]);
      equal(read.loss[0], out.loss.data[0]);
      equal(read.grad_norm[0], out.grad_norm.data[0]);
    }
    const got = await runner.readParams();
    for (const name of updatedParams(step)) {
      deepEqual(got[name], Float32Array.from(params[name] as ArrayLike<number>), name);
    }
    deepEqual(got.scale, start.scale, "frozen params are not touched");
    runner.dispose();
  });

  await t.step(
    "read: [] returns nothing but still updates; default reads non-update outputs",
    async () => {
      const runner = cpuRunner(step);
      await runner.setParams(start);
      const feeds = { x: xs[0], ...hyperparameterFeeds(step, { step: 1, lr: 0.1 }) };
      deepEqual(await runner.run(feeds, { read: [] }), {});
      const w1 = (await runner.readParams(["w"])).w;
      ok(w1.some((v, i) => v !== start.w[i]), "w changed");
      const all = await runner.run({ ...feeds, step: new Float32Array([2]) });
      deepEqual(Object.keys(all).sort(), ["grad_norm", "loss", "pred"]);
      ok(all.loss instanceof Float32Array);
      runner.dispose();
    },
  );

  await t.step("an eval graph (no updates) never changes its params", async () => {
    const runner = cpuRunner(model());
    await runner.setParams({ w: start.w, scale: start.scale });
    const a = await runner.run({ x: xs[1] }, { read: ["loss"] });
    const b = await runner.run({ x: xs[1] }, { read: ["loss"] });
    deepEqual(a, b);
    deepEqual((await runner.readParams()).w, start.w);
  });

  await t.step("errors name what is wrong", async () => {
    const runner = cpuRunner(step);
    await rejects(runner.setParams({ nope: new Float32Array(1) }), /no param "nope"/);
    await rejects(runner.setParams({ w: new Float32Array(2) }), /"w" has 3 elements \[3\], got 2/);
    await runner.setParams(start);
    const feeds = { x: xs[0], ...hyperparameterFeeds(step, { step: 1, lr: 0.1 }) };
    await rejects(runner.run(feeds, { read: ["logits"] }), /no output "logits".*loss/);
    await rejects(runner.run({ x: xs[0] }), /input "lr" .* was not fed/);
    await rejects(runner.readParams(["missing"]), /param "missing" was never set/);
    runner.dispose();
    await rejects(runner.run(feeds), /after dispose/);
  });

  await t.step("updatedParams lists trainable params and optimizer state", () => {
    deepEqual(updatedParams(step), ["optim.exp_avg.w", "optim.exp_avg_sq.w", "w"]);
    deepEqual(updatedParams(model()), []);
  });
});
