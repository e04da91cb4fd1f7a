import { deepEqual, equal, ok } from "node:assert/strict";
import fc from "fast-check";
import { lossPlotSvg, niceTicks, smooth } from "../../train/_plot.ts";
import type { MetricsRecord } from "../../train/metrics.ts";

const rec = (step: number, loss: number, extra: Record<string, number> = {}): MetricsRecord => ({
  step,
  loss,
  lr: 1e-3,
  grad_norm: 1,
  tokens_per_s: 100,
  ...extra,
});

/** The `<text>` contents of the SVG. */
const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
/** Circles of one color: eval points are drawn as circles in their series' color. */
const circles = (svg: string, color: string) =>
  [...svg.matchAll(new RegExp(`<circle cx="([\\d.]+)" cy="([\\d.]+)"[^>]*fill="${color}"`, "g"))]
    .map((m) => [Number(m[1]), Number(m[2])]);

Deno.test("plot", async (t) => {
  await t.step("panels: loss, accuracy on its own percent axis, learning rate", async () => {
    const svg = await lossPlotSvg([
      rec(1, 2),
      rec(2, 1.5, { eval_loss: 1.7, eval_accuracy: 0.6 }),
      rec(3, 1.2, { eval_loss: 1.4, eval_accuracy: 0.8 }),
    ]);
    const labels = texts(svg);
    for (const title of ["loss", "validation accuracy (%)", "learning rate", "step"]) {
      ok(labels.includes(title), `${title} in ${labels.join("|")}`);
    }
    ok(labels.includes("100"), "the accuracy axis is in percent and reaches 100");
  });

  await t.step("without evaluations there is no accuracy panel", async () => {
    const labels = texts(await lossPlotSvg([rec(1, 2), rec(2, 1)]));
    ok(!labels.some((l) => l.includes("accuracy")));
    ok(labels.includes("learning rate"));
  });

  await t.step("a step-0 evaluation is drawn at the left edge", async () => {
    const svg = await lossPlotSvg([
      { step: 0, eval_loss: 2.5, eval_accuracy: 0.4 } as unknown as MetricsRecord,
      rec(1, 2),
      rec(10, 1, { eval_loss: 1.1, eval_accuracy: 0.7 }),
    ]);
    const evalPoints = circles(svg, "#d62728");
    equal(evalPoints.length, 2);
    const xs = evalPoints.map((p) => p[0]);
    ok(xs[0] < xs[1]);
    equal(xs[0], 70, "step 0 sits on the plot's left edge");
    equal(circles(svg, "#2ca02c").length, 2);
  });

  await t.step("the raw loss is faint and the smoothed line bold", async () => {
    const records = Array.from({ length: 40 }, (_, i) => rec(i + 1, 1 + (i % 2) * 0.5));
    const svg = await lossPlotSvg(records);
    ok(/stroke="#1f77b4" stroke-width="1" stroke-opacity="0.25"/.test(svg));
    ok(/stroke="#1f77b4" stroke-width="2.2" stroke-opacity="1"/.test(svg));
    ok(texts(svg).includes("smoothed"));
  });

  await t.step("a loss spanning decades gets a log axis", async () => {
    const svg = await lossPlotSvg(
      Array.from({ length: 20 }, (_, i) => rec(i + 1, 100 / (i + 1) ** 2)),
    );
    const labels = texts(svg);
    ok(labels.includes("1") && labels.includes("10") && labels.includes("0.5"), labels.join("|"));
  });

  await t.step("never writes NaN or Infinity, whatever the records hold", async () => {
    const value = fc.oneof(
      fc.double({ noNaN: false }),
      fc.constantFrom(NaN, Infinity, -Infinity, 0, 1e-30, 1e30),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            step: fc.integer({ min: 0, max: 1000 }),
            loss: value,
            lr: value,
            acc: value,
          }),
          { maxLength: 30 },
        ),
        async (rows) => {
          const svg = await lossPlotSvg(
            rows.map((r) =>
              rec(r.step, r.loss, { lr: r.lr, eval_accuracy: r.acc, eval_loss: r.loss })
            ),
          );
          ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
          ok(!/NaN|Infinity/.test(svg), svg.match(/.{40}(NaN|Infinity).{10}/)?.[0]);
        },
      ),
      { numRuns: 200 },
    );
  });

  await t.step("smooth: constant stays constant, follows short runs exactly", () => {
    deepEqual(smooth([3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]), Array(12).fill(3));
    deepEqual(smooth([1, 5, 2]), [1, 5, 2]);
    const noisy = Array.from({ length: 100 }, (_, i) => (i % 2 ? 1 : 0));
    const s = smooth(noisy);
    ok(Math.abs(s[99] - 0.5) < 0.1, `${s[99]}`);
  });

  await t.step("niceTicks: round values covering the range", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e6, noNaN: true }),
        fc.double({ min: 1e-6, max: 1e6, noNaN: true }),
        (lo, w) => {
          const ticks = niceTicks(lo, lo + w, 5);
          ok(ticks.length >= 2 && ticks.length <= 12, `${lo} ${w}: ${ticks}`);
          ok(ticks.every((t) => t >= lo - w * 1e-6 && t <= lo + w * (1 + 1e-6)));
        },
      ),
    );
  });
});
