/**
 * The run's plot, `loss.svg`, drawn directly as SVG (no dependency: a
 * plotting library would add megabytes to every program that trains).
 * Panels share the step axis: loss (raw training points faint, an
 * exponential moving average bold, evaluations as marked points, a log scale
 * when the loss spans more than a decade), evaluation accuracy on its own
 * percent axis, and the learning rate in a small panel. A step-0 evaluation
 * (before training) is drawn where present.
 */
import type { MetricsRecord } from "./metrics.ts";

const WIDTH = 760;
const LEFT = 70, RIGHT = 24;
const PLOT_W = WIDTH - LEFT - RIGHT;
const COLORS = { train: "#1f77b4", eval: "#d62728", acc: "#2ca02c", lr: "#7f7f7f" } as const;

type Point = readonly [step: number, value: number];

interface Series {
  readonly label: string;
  readonly color: string;
  readonly points: readonly Point[];
  /** `raw`: faint dots and a thin line; `line`: bold; `marked`: bold with markers. */
  readonly style: "raw" | "line" | "marked";
}

interface Panel {
  readonly title: string;
  readonly height: number;
  readonly series: readonly Series[];
  readonly format: (v: number) => string;
  readonly log?: boolean;
  readonly domain?: readonly [number, number];
}

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * The exponential moving average of `values`, debiased at the start (as
 * TensorBoard's smoothing): under ten points it follows them exactly, beyond
 * that it averages over about eight points or a twentieth of the run, whichever is more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { smooth } from "./_plot.ts";
 * assert.deepEqual(smooth([2, 2, 2]), [2, 2, 2]);
 * assert.equal(smooth([1]).length, 1);
 * ```
 */
export function smooth(values: readonly number[]): number[] {
  const n = values.length;
  const weight = n < 10 ? 0 : 1 - 1 / Math.max(8, n / 20);
  let avg = 0, norm = 0;
  return values.map((v) => {
    avg = weight * avg + (1 - weight) * v;
    norm = weight * norm + (1 - weight);
    return avg / norm;
  });
}

/**
 * About `count` round tick values covering [lo, hi].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { niceTicks } from "./_plot.ts";
 * assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
 * ```
 */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  if (!(step > 0 && Number.isFinite(step))) return [lo];
  const ticks: number[] = [];
  // Integer multiples of the step, so that no rounding error accumulates.
  const [k0, k1] = [Math.ceil(lo / step - 1e-9), Math.floor(hi / step + 1e-9)];
  for (let k = k0; k <= k1 && ticks.length < 100; k++) {
    ticks.push(k === 0 ? 0 : Number((k * step).toPrecision(15)));
  }
  return ticks;
}

function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const [e0, e1] = [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))];
  // 1-2-5 in each decade when there are few, every few decades when there are many.
  const every = Math.max(1, Math.ceil((e1 - e0) / 6));
  for (let e = e0; e <= e1; e += every) {
    for (const m of every > 1 ? [1] : e1 - e0 > 4 ? [1, 3] : [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks.push(Number(t.toPrecision(12)));
    }
  }
  return ticks;
}

const escape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function formatNumber(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1).replace("e+", "e");
  return String(Number(v.toPrecision(3)));
}

function drawPanel(panel: Panel, top: number, xScale: (s: number) => number, xTicks: number[]) {
  const h = panel.height;
  const values = panel.series.flatMap((s) => s.points.map((p) => p[1]));
  let [lo, hi] = panel.domain ?? [Math.min(...values), Math.max(...values)];
  const log = panel.log === true;
  // A flat (or subnormal-width) range gets a width of its own, so that scales never divide by 0.
  const flat = !(hi - lo > Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9);
  if (!log && panel.domain === undefined && flat) {
    const r = Math.max(Math.abs(hi) * 0.1, 1e-6);
    [lo, hi] = [hi - r, hi + r];
  }
  // Headroom at the top keeps the legend off the data.
  if (!log && panel.domain === undefined) {
    const pad = (hi - lo) * 0.05;
    [lo, hi] = [lo - pad, hi + 3 * pad];
  }
  if (log) [lo, hi] = [lo / 1.1, hi * 1.6];
  const ticks = log ? logTicks(lo, hi) : niceTicks(lo, hi, Math.max(4, Math.round(h / 45)));
  const tf = (v: number) => log ? Math.log10(v) : v;
  const y = (v: number) => top + h - ((tf(v) - tf(lo)) / (tf(hi) - tf(lo))) * h;
  const out: string[] = [
    `<rect x="${LEFT}" y="${top}" width="${PLOT_W}" height="${h}" fill="#fafafa" stroke="#ccc"/>`,
    `<text x="${LEFT}" y="${top - 8}" font-weight="bold">${escape(panel.title)}</text>`,
  ];
  for (const t of ticks) {
    out.push(
      `<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${y(t).toFixed(1)}" y2="${
        y(t).toFixed(1)
      }" stroke="#e4e4e4"/>`,
      `<text x="${LEFT - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" fill="#555">${
        escape(panel.format(t))
      }</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${xScale(t).toFixed(1)}" x2="${xScale(t).toFixed(1)}" y1="${top}" y2="${
        top + h
      }" stroke="#eee"/>`,
    );
  }
  for (const s of panel.series) {
    const pts = s.points.map(([st, v]) => `${xScale(st).toFixed(1)},${y(v).toFixed(1)}`);
    const raw = s.style === "raw";
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="${raw ? 1 : 2.2}" ` +
          `stroke-opacity="${raw ? 0.25 : 1}" stroke-linejoin="round" points="${pts.join(" ")}"/>`,
      );
    }
    if (raw || s.style === "marked" || pts.length === 1) {
      for (const p of pts) {
        const [cx, cy] = p.split(",");
        out.push(
          `<circle cx="${cx}" cy="${cy}" r="${raw ? 1.8 : 3.5}" fill="${s.color}" ` +
            `fill-opacity="${raw ? 0.3 : 1}"${raw ? "" : ' stroke="white" stroke-width="1"'}/>`,
        );
      }
    }
  }
  // Legend, top right, on a white box.
  const widths = panel.series.map((s) => 7 * s.label.length + 40);
  const total = widths.reduce((a, b) => a + b, 0);
  let lx = LEFT + PLOT_W - 8 - total;
  out.push(
    `<rect x="${lx - 6}" y="${top + 4}" width="${total + 4}" height="20" fill="white" ` +
      `fill-opacity="0.85" rx="3"/>`,
  );
  for (const [i, s] of panel.series.entries()) {
    out.push(
      `<line x1="${lx}" x2="${lx + 16}" y1="${top + 14}" y2="${top + 14}" stroke="${s.color}" ` +
        `stroke-width="${s.style === "raw" ? 1 : 2.2}" stroke-opacity="${
          s.style === "raw" ? 0.4 : 1
        }"/>`,
      `<text x="${lx + 20}" y="${top + 18}" fill="#333">${escape(s.label)}</text>`,
    );
    lx += widths[i];
  }
  return out;
}

/**
 * Renders training loss (smoothed, with the raw points faint), evaluation
 * loss and accuracy and the learning rate against the step as an SVG document.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lossPlotSvg } from "./_plot.ts";
 * const svg = await lossPlotSvg([
 *   { step: 0, loss: NaN, lr: 0, grad_norm: NaN, tokens_per_s: 0, eval_loss: 1.9, eval_accuracy: 0.4 },
 *   { step: 1, loss: 2.0, lr: 1e-3, grad_norm: 1, tokens_per_s: 100 },
 *   { step: 2, loss: 1.5, lr: 1e-3, grad_norm: 1, tokens_per_s: 100, eval_loss: 1.7, eval_accuracy: 0.6 },
 * ]);
 * assert.ok(svg.startsWith("<svg"));
 * assert.ok(svg.includes("validation accuracy"));
 * ```
 */
export function lossPlotSvg(records: readonly MetricsRecord[]): Promise<string> {
  return Promise.resolve(plotSvg(records));
}

/** The plotted series of a run's metrics, each a list of (step, value) points. */
interface MetricSeries {
  readonly sorted: readonly MetricsRecord[];
  readonly train: readonly Point[];
  readonly smoothed: readonly Point[];
  readonly evalLoss: readonly Point[];
  readonly accuracy: readonly Point[];
  readonly lr: readonly Point[];
}

function metricSeries(records: readonly MetricsRecord[]): MetricSeries {
  const sorted = [...records].sort((a, b) => a.step - b.step);
  // Values are clamped so that no scale arithmetic overflows into Infinity or NaN.
  const clamp = (v: number) => Math.max(-1e300, Math.min(1e300, v));
  const pick = (key: string) =>
    sorted.filter((r) => finite(r[key])).map((r) => [r.step, clamp(r[key]!)] as Point);
  const train = pick("loss");
  const evalLoss = pick("eval_loss");
  const accuracy = pick("eval_accuracy").map(([s, v]) => [s, clamp(100 * v)] as Point);
  const lr = sorted.filter((r) => finite(r.lr) && finite(r.loss)).map((r) =>
    [r.step, clamp(r.lr!)] as Point
  );
  const smoothed = smooth(train.map((p) => p[1])).map((v, i) => [train[i][0], v] as Point);
  return { sorted, train, smoothed, evalLoss, accuracy, lr };
}

/** The shared step axis: where a step is drawn, and its ticks. */
function stepAxis(sorted: readonly MetricsRecord[]) {
  const steps = sorted.map((r) => r.step).filter(finite);
  const [x0, x1] = steps.length > 0 ? [Math.min(...steps), Math.max(...steps)] : [0, 1];
  const span = x1 > x0 ? x1 - x0 : 1;
  const xScale = (s: number) => LEFT + ((s - x0) / span) * PLOT_W;
  const xTicks = niceTicks(x0, x0 + span, 8);
  return { xScale, xTicks };
}

function lossPanel({ train, smoothed, evalLoss }: MetricSeries): Panel | undefined {
  const losses = [...train, ...evalLoss].map((p) => p[1]);
  if (losses.length === 0) return undefined;
  const [lo, hi] = [Math.min(...losses), Math.max(...losses)];
  const series: Series[] = [];
  if (train.length > 1) {
    series.push({ label: "train loss", color: COLORS.train, points: train, style: "raw" });
    series.push({ label: "smoothed", color: COLORS.train, points: smoothed, style: "line" });
  } else if (train.length === 1) {
    series.push({ label: "train loss", color: COLORS.train, points: train, style: "marked" });
  }
  if (evalLoss.length > 0) {
    series.push({
      label: "validation loss",
      color: COLORS.eval,
      points: evalLoss,
      style: "marked",
    });
  }
  return {
    title: "loss",
    height: 260,
    series,
    format: formatNumber,
    log: lo > 0 && hi / lo > 10,
  };
}

function accuracyPanel({ accuracy }: MetricSeries): Panel | undefined {
  if (accuracy.length === 0) return undefined;
  const lo = Math.min(...accuracy.map((p) => p[1]));
  return {
    title: "validation accuracy (%)",
    height: 150,
    series: [{
      label: "validation accuracy",
      color: COLORS.acc,
      points: accuracy,
      style: "marked",
    }],
    format: (v) => String(Number(v.toPrecision(3))),
    domain: [Math.max(0, Math.floor(lo / 10) * 10 - (lo % 10 === 0 ? 10 : 0)), 100],
  };
}

function learningRatePanel({ lr }: MetricSeries): Panel | undefined {
  if (lr.length === 0) return undefined;
  const lrs = lr.map((p) => p[1]);
  const flat = Math.max(...lrs) === Math.min(...lrs);
  return {
    title: "learning rate",
    height: 70,
    series: [{ label: "lr", color: COLORS.lr, points: lr, style: "line" }],
    // 0.01, 0.02, ... as written in a command line; exponents only below 1e-3.
    format: formatNumber,
    ...(flat ? { domain: [0, Math.max(...lrs) * 1.25 || 1] as const } : {}),
  };
}

/** The panels stacked from the top, then the step axis under the last; returns the total height. */
function drawPanels(
  panels: readonly Panel[],
  { xScale, xTicks }: ReturnType<typeof stepAxis>,
): { body: string[]; height: number } {
  const gap = 46;
  let top = 56;
  const body: string[] = [];
  for (const panel of panels) {
    body.push(...drawPanel(panel, top, xScale, xTicks));
    top += panel.height + gap;
  }
  const axisY = top - gap + 18;
  for (const t of xTicks) {
    body.push(
      `<text x="${xScale(t).toFixed(1)}" y="${axisY}" text-anchor="middle" fill="#555">${
        formatNumber(t)
      }</text>`,
    );
  }
  body.push(
    `<text x="${LEFT + PLOT_W / 2}" y="${axisY + 20}" text-anchor="middle" fill="#333">step</text>`,
  );
  return { body, height: axisY + 34 };
}

/** The one-line summary next to the title: last smoothed loss, validation loss, best accuracy. */
function headline({ train, smoothed, evalLoss, accuracy }: MetricSeries): string {
  const last = train.at(-1), bestAcc = accuracy.length ? Math.max(...accuracy.map((p) => p[1])) : 0;
  return [
    last
      ? `step ${last[0]}: loss ${formatNumber(smoothed.at(-1)![1])} (smoothed)`
      : "no training steps logged",
    evalLoss.length ? `validation loss ${formatNumber(evalLoss.at(-1)![1])}` : "",
    accuracy.length ? `best accuracy ${bestAcc.toFixed(1)}%` : "",
  ].filter((s) => s !== "").join(" · ");
}

function plotSvg(records: readonly MetricsRecord[]): string {
  const series = metricSeries(records);
  const panels = [lossPanel(series), accuracyPanel(series), learningRatePanel(series)]
    .filter((p): p is Panel => p !== undefined);
  const { body, height } = drawPanels(panels, stepAxis(series.sorted));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="24" font-size="16" font-weight="bold">training</text>`,
    `<text x="${LEFT + 80}" y="24" font-size="13" fill="#555">${escape(headline(series))}</text>`,
    ...body,
    `</svg>`,
    "",
  ].join("\n");
}
