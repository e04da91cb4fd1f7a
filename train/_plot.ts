/** The loss curve as an SVG: a vega-lite spec rendered headless by vega (no canvas, no DOM). */
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import type { MetricsRecord } from "./_metrics.ts";

/**
 * Renders training loss (and validation loss and accuracy, where logged)
 * against the step as an SVG document.
 *
 * @example
 * ```ts
 * import { lossPlotSvg } from "./_plot.ts";
 * const svg = await lossPlotSvg([
 *   { step: 1, loss: 2.0, lr: 1e-3, grad_norm: 1, tokens_per_s: 100 },
 *   { step: 2, loss: 1.5, lr: 1e-3, grad_norm: 1, tokens_per_s: 100, eval_loss: 1.7 },
 * ]);
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export async function lossPlotSvg(records: readonly MetricsRecord[]): Promise<string> {
  const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
  const losses = records.flatMap((r) => [
    ...(finite(r.loss) ? [{ step: r.step, value: r.loss, series: "train loss" }] : []),
    ...(finite(r.eval_loss)
      ? [{ step: r.step, value: r.eval_loss, series: "validation loss" }]
      : []),
  ]);
  const accuracy = records.filter((r) => finite(r.eval_accuracy))
    .map((r) => ({ step: r.step, value: r.eval_accuracy, series: "validation accuracy" }));
  const x = { field: "step", type: "quantitative", title: "step" };
  const color = { field: "series", type: "nominal", title: null };
  const panel = (values: unknown[], title: string, scale: Record<string, unknown>) => ({
    width: 520,
    height: 220,
    data: { values },
    mark: { type: "line", point: values.length < 60 },
    encoding: {
      x,
      y: { field: "value", type: "quantitative", title, scale },
      color,
    },
  });
  const panels = [panel(losses, "loss", { zero: false })];
  if (accuracy.length > 0) panels.push(panel(accuracy, "accuracy", { domain: [0, 1] }));
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "training",
    vconcat: panels,
    resolve: { scale: { color: "independent" } },
  };
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
