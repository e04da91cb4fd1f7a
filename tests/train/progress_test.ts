import { deepEqual, equal, match, ok } from "node:assert/strict";
import fc from "fast-check";
import { loadCheckpoint } from "../../train/checkpoint.ts";
import { train } from "../../train/trainer.ts";
import { interruptOptions } from "./_interrupt_child.ts";
import { createProgress, formatEta, MovingRate } from "../../train/progress.ts";

Deno.test("progress: time spent in a pause (compiling, evaluating) is not in the ETA", async (t) => {
  let clock = 0;
  const lines: string[] = [];
  const p = createProgress({
    total: 30,
    start: 0,
    mode: "lines",
    write: (l) => lines.push(l),
    now: () => clock,
  });
  await t.step("a long compile before the first step does not count", () => {
    p.message("compiling 93 kernels…", { pause: true });
    clock += 600_000; // ten minutes of shader compilation, the first step included
    p.update(1, { loss: 1, lr: 1, tokens: 10, logged: true }); // the baseline
    match(lines.at(-1)!, /^step 1\/30 .* - tok\/s {2}ETA \?$/);
    clock += 900;
    p.update(10, { loss: 1, lr: 1, tokens: 100, logged: true });
    // 10 steps per second: 20 steps left are 2 s, and 100 tokens/s.
    match(lines.at(-1)!, /^step 10\/30 .* 100 tok\/s {2}ETA 0:02$/);
  });
  await t.step("nor does an evaluation between steps", () => {
    p.pause();
    clock += 60_000;
    p.resume();
    clock += 1000;
    p.update(20, { loss: 1, lr: 1, tokens: 200, logged: true });
    match(lines.at(-1)!, /ETA 0:01$/);
  });
  p.stop();
});

Deno.test("progress: the moving window forgets a slow start", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), (size) => {
    const rate = new MovingRate(size);
    rate.add({ ms: 0, step: 0, tokens: 0 });
    rate.add({ ms: 100_000, step: 1, tokens: 10 }); // a first step that waited on the device
    for (let i = 1; i <= size; i++) rate.add({ ms: 100_000 + 10 * i, step: 1 + i, tokens: 0 });
    ok(Math.abs(rate.stepsPerS() - 100) < 1e-9, String(rate.stepsPerS()));
  }));
  equal(formatEta(59.6), "1:00");
  equal(formatEta(NaN), "?");
});

Deno.test("train: Ctrl-C saves a checkpoint at the step reached, and resuming finishes the run exactly", async () => {
  const dir = await Deno.makeTempDir();
  const whole = await train({ ...interruptOptions(`${dir}/whole`), stopOnInterrupt: false });
  const child = new URL("./_interrupt_child.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child, `${dir}/cut`],
    stderr: "inherit",
  }).output();
  equal(out.code, 0);
  const report = JSON.parse(new TextDecoder().decode(out.stdout));
  ok(report.step >= 5 && report.step < 40, JSON.stringify(report));
  equal(report.checkpoint, `${dir}/cut/checkpoint.safetensors`);
  const checkpoint = await loadCheckpoint(`${dir}/cut/checkpoint.safetensors`);
  equal(checkpoint.step, report.step);
  const lines: string[] = [];
  const resumed = await train({
    ...interruptOptions(`${dir}/cut`),
    resume: checkpoint,
    progress: "lines",
    log: (l) => lines.push(l),
  });
  equal(
    lines[0],
    `resuming from step ${checkpoint.step} of 40 (${dir}/cut/checkpoint.safetensors)`,
  );
  deepEqual(resumed.params.w, whole.params.w);
  await Deno.remove(dir, { recursive: true });
});
