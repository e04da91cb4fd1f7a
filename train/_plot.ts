/**
 * The loss curve as an SVG: a vega-lite spec rendered headless by vega (no
 * canvas, no DOM). vega and vega-lite are several megabytes of npm packages,
 * so they are imported only when a plot is drawn, from specifiers held in
 * variables: `deno cache mod.ts` does not follow those, and a program that
 * never writes a run directory never downloads them.
 */
import type { MetricsRecord } from "./_metrics.ts";

const VEGA = "npm:vega@6.2.0";
const VEGA_LITE = "npm:vega-lite@6.4.0";

/** The parts of vega this module uses (its types would pull the package into the graph). */
interface Vega {
  View: new (runtime: unknown, options: { renderer: string }) => {
    toSVG(): Promise<string>;
    finalize(): void;
  };
  parse(spec: unknown): unknown;
}
/** The part of vega-lite this module uses. */
interface VegaLite {
  compile(spec: unknown): { spec: unknown };
}

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
  const vega: Vega = await import(VEGA);
  const vegaLite: VegaLite = await import(VEGA_LITE);
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
