import { equal, ok, throws } from "node:assert/strict";
import { constant, warmupCosine, warmupLinear } from "../../train/schedule.ts";

function close(actual: number, expected: number, what: string): void {
  ok(
    Math.abs(actual - expected) <= 1e-15 + 1e-12 * Math.abs(expected),
    `${what}: ${actual} vs ${expected}`,
  );
}

/** Hugging Face's lr_lambda of get_cosine_schedule_with_warmup (num_cycles = 0.5), times peak. */
function hfCosine(step: number, warmup: number, total: number, peak: number): number {
  if (step < warmup) return (peak * step) / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
}

/** Hugging Face's lr_lambda of get_linear_schedule_with_warmup, times peak. */
function hfLinear(step: number, warmup: number, total: number, peak: number): number {
  if (step < warmup) return (peak * step) / Math.max(1, warmup);
  return peak * Math.max(0, (total - step) / Math.max(1, total - warmup));
}

Deno.test("constant", () => {
  const lr = constant(3e-4);
  equal(lr(1), 3e-4);
  equal(lr(1000), 3e-4);
  throws(() => constant(-1), /lr must be a finite number ≥ 0/);
  throws(() => constant(NaN), /lr must be/);
  throws(() => lr(1.5), /step must be an integer/);
});

Deno.test("warmupCosine", async (t) => {
  const lr = warmupCosine({ peak: 1e-3, warmupSteps: 10, totalSteps: 110 });
  await t.step("key steps", () => {
    close(lr(0), 0, "step 0");
    close(lr(1), 1e-4, "step 1");
    close(lr(5), 5e-4, "step 5");
    close(lr(9), 9e-4, "last warm-up step");
    close(lr(10), 1e-3, "peak at warmupSteps");
    close(lr(35), 1e-3 * 0.5 * (1 + Math.cos(Math.PI / 4)), "quarter");
    close(lr(60), 5e-4, "half way");
    close(lr(110), 0, "end");
    close(lr(500), 0, "past the end stays at minLr");
  });
  await t.step("equals Hugging Face's formula at every step up to totalSteps", () => {
    for (let s = 0; s <= 110; s++) close(lr(s), hfCosine(s, 10, 110, 1e-3), `step ${s}`);
  });
  await t.step("minLr floor (get_cosine_with_min_lr_schedule_with_warmup)", () => {
    const floored = warmupCosine({ peak: 1, warmupSteps: 0, totalSteps: 100, minLr: 0.1 });
    close(floored(0), 1, "start at peak without warm-up");
    close(floored(50), 0.55, "half way");
    close(floored(100), 0.1, "end");
    close(floored(1000), 0.1, "after");
  });
  await t.step("bad arguments", () => {
    throws(() => warmupCosine({ peak: 1, warmupSteps: 20, totalSteps: 10 }), /exceeds totalSteps/);
    throws(() => warmupCosine({ peak: 1, warmupSteps: -1, totalSteps: 10 }), /warmupSteps must be/);
    throws(
      () => warmupCosine({ peak: 1, warmupSteps: 1.5, totalSteps: 10 }),
      /warmupSteps must be/,
    );
    throws(() => warmupCosine({ peak: 1, warmupSteps: 0, totalSteps: 0 }), /totalSteps must be/);
    throws(() => warmupCosine({ peak: -1, warmupSteps: 0, totalSteps: 5 }), /peak must be/);
    throws(
      () => warmupCosine({ peak: 1, warmupSteps: 0, totalSteps: 5, minLr: 2 }),
      /minLr \(2\) exceeds peak/,
    );
    throws(() => lr(-1), /step must be an integer ≥ 0/);
    throws(() => lr(NaN), /step must be/);
  });
});

Deno.test("warmupLinear", async (t) => {
  const lr = warmupLinear({ peak: 2e-3, warmupSteps: 4, totalSteps: 24 });
  await t.step("key steps", () => {
    close(lr(1), 5e-4, "step 1");
    close(lr(4), 2e-3, "peak");
    close(lr(14), 1e-3, "half way");
    close(lr(24), 0, "end");
    close(lr(30), 0, "after");
  });
  await t.step("equals Hugging Face's formula", () => {
    for (let s = 0; s <= 30; s++) close(lr(s), hfLinear(s, 4, 24, 2e-3), `step ${s}`);
  });
  await t.step("minLr and no warm-up", () => {
    const floored = warmupLinear({ peak: 1, warmupSteps: 0, totalSteps: 10, minLr: 0.2 });
    close(floored(0), 1, "start");
    close(floored(5), 0.6, "half way");
    close(floored(10), 0.2, "end");
  });
  await t.step("warm-up over the whole run", () => {
    const all = warmupLinear({ peak: 1, warmupSteps: 10, totalSteps: 10 });
    close(all(5), 0.5, "warming");
    close(all(10), 0, "end (max(1, total - warmup) avoids 0/0)");
    close(all(10), hfLinear(10, 10, 10, 1), "as Hugging Face");
  });
  throws(() => warmupLinear({ peak: 1, warmupSteps: 3, totalSteps: 2 }), /exceeds totalSteps/);
});
