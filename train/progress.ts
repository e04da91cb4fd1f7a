/**
 * Progress on stderr: a one-line bar redrawn in place (step/total, loss, lr,
 * tokens/s, ETA) when stderr is a terminal, plain lines at each logged step
 * otherwise (logs and CI), or nothing. Phases that are not training steps
 * (compiling kernels, evaluating, saving) are printed as their own lines and
 * their time is kept out of the throughput and the ETA.
 */

/**
 * How progress is shown: `auto` picks `bar` on a terminal, `lines` elsewhere.
 *
 * @example
 * ```ts
 * import type { ProgressMode } from "./progress.ts";
 * const mode: ProgressMode = Deno.stderr.isTerminal() ? "bar" : "lines";
 * ```
 */
export type ProgressMode = "auto" | "bar" | "lines" | "none";

/**
 * What one update shows.
 *
 * @example
 * ```ts
 * import type { ProgressInfo } from "./progress.ts";
 * const info: ProgressInfo = { loss: 0.69, lr: 1e-3, tokens: 4096, logged: true };
 * ```
 */
export interface ProgressInfo {
  /** The last loss read back (may be from an earlier step). */
  readonly loss?: number;
  /** This step's learning rate (default group). */
  readonly lr: number;
  /** Tokens fed so far in this run (for tokens/s). */
  readonly tokens?: number;
  /** Whether this step's values were read back (the device has caught up; plain lines print only then). */
  readonly logged: boolean;
  /** Extra text for the line, e.g. validation metrics. */
  readonly note?: string;
}

/**
 * A progress display.
 *
 * @example
 * ```ts
 * import { createProgress, type Progress } from "./progress.ts";
 * const p: Progress = createProgress({ total: 10, start: 0, mode: "none" });
 * p.update(1, { lr: 1e-3, logged: false });
 * p.stop();
 * ```
 */
export interface Progress {
  /** Shows that `step` is done. */
  update(step: number, info: ProgressInfo): void;
  /** Prints a line of its own (above the bar); `pause` also does what {@link Progress.pause} does. */
  message(line: string, options?: { readonly pause?: boolean }): void;
  /** Stops the training clock: what runs until {@link Progress.resume} (compiling, evaluating, saving) is not in the ETA. */
  pause(): void;
  /** Restarts the training clock (an update also does). */
  resume(): void;
  /** Ends the display (a bar leaves its last state on screen). */
  stop(): void;
}

/**
 * Options of {@link createProgress}.
 *
 * @example
 * ```ts
 * import type { ProgressOptions } from "./progress.ts";
 * const options: ProgressOptions = { total: 100, start: 40, mode: "lines", write: (l) => console.log(l) };
 * ```
 */
export interface ProgressOptions {
  /** The last step of the run. */
  readonly total: number;
  /** Steps already done (a resumed run). */
  readonly start: number;
  /** Default `auto`. */
  readonly mode?: ProgressMode;
  /** Where plain lines go (default `console.error`). */
  readonly write?: (line: string) => void;
  /** Clock in milliseconds (default `performance.now`; tests pass their own). */
  readonly now?: () => number;
}

/**
 * Seconds as `m:ss` or `h:mm:ss`; `?` when unknown.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatEta } from "./progress.ts";
 * strictEqual(formatEta(75), "1:15");
 * strictEqual(formatEta(3725), "1:02:05");
 * ```
 */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const mmss = `${String(m).padStart(h > 0 ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

function formatNumber(v: number | undefined, digits: number): string {
  return v === undefined ? "-" : Number.isFinite(v) ? v.toFixed(digits) : String(v);
}

interface Sample {
  readonly ms: number; // training time so far (pauses excluded)
  readonly step: number;
  readonly tokens: number;
}

/**
 * Speed over a moving window of the last synchronized samples: the first
 * steps (slow while the device warms up) stop counting once the window has
 * moved past them, and a change of speed shows within a few logs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MovingRate } from "./progress.ts";
 * const rate = new MovingRate(2);
 * rate.add({ ms: 0, step: 0, tokens: 0 });
 * rate.add({ ms: 1000, step: 10, tokens: 100 }); // a slow start
 * rate.add({ ms: 1100, step: 20, tokens: 200 });
 * rate.add({ ms: 1200, step: 30, tokens: 300 }); // the window now spans steps 10..30
 * assert.equal(rate.stepsPerS(), 100);
 * assert.equal(rate.tokensPerS(), 1000);
 * ```
 */
export class MovingRate {
  readonly #size: number;
  #samples: Sample[] = [];

  /** A window of the last `size` intervals. */
  constructor(size = 10) {
    this.#size = size;
  }

  /** Adds a sample taken when the device had caught up. */
  add(sample: Sample): void {
    this.#samples.push(sample);
    if (this.#samples.length > this.#size + 1) this.#samples.shift();
  }

  /** Steps per second over the window (NaN until two samples). */
  stepsPerS(): number {
    return this.#per((s) => s.step);
  }

  /** Tokens per second over the window (NaN until two samples). */
  tokensPerS(): number {
    return this.#per((s) => s.tokens);
  }

  #per(value: (s: Sample) => number): number {
    const first = this.#samples[0], last = this.#samples.at(-1);
    if (first === undefined || last === undefined || last.ms <= first.ms) return NaN;
    return (value(last) - value(first)) / ((last.ms - first.ms) / 1000);
  }
}

const BAR_WIDTH = 24;

function barText(step: number, total: number): string {
  const done = Math.round((BAR_WIDTH * step) / Math.max(total, 1));
  return "█".repeat(done) + "░".repeat(BAR_WIDTH - done);
}

/**
 * Creates the progress display for a run of `total` steps.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { createProgress } from "./progress.ts";
 * const lines: string[] = [];
 * const p = createProgress({ total: 2, start: 0, mode: "lines", write: (l) => lines.push(l) });
 * p.message("compiling 12 kernels…", { pause: true });
 * p.update(1, { loss: 2.5, lr: 1e-3, tokens: 64, logged: true });
 * p.stop();
 * strictEqual(lines[1], "step 1/2  loss 2.5000  lr 1.00e-3  - tok/s  ETA ?");
 * ```
 */
export function createProgress(options: ProgressOptions): Progress {
  const mode = options.mode === undefined || options.mode === "auto"
    ? (Deno.stderr.isTerminal() ? "bar" : "lines")
    : options.mode;
  if (mode === "none") return { update() {}, message() {}, pause() {}, resume() {}, stop() {} };
  const now = options.now ?? (() => performance.now());
  const { total } = options;
  const rate = new MovingRate();
  // Training time excludes pauses (compiling, evaluating, saving): the clock
  // stops at a pause and restarts at resume (or the next update).
  let trainMs = 0, runningSince: number | undefined = now();
  const elapsed = () => trainMs + (runningSince === undefined ? 0 : now() - runningSince);
  // No sample at the start: the first logged update (the first step, which
  // includes finishing compilation) is the window's baseline.
  const status = (step: number, info: ProgressInfo) => {
    if (info.logged) rate.add({ ms: elapsed(), step, tokens: info.tokens ?? 0 });
    const tps = rate.tokensPerS();
    const eta = (total - step) / rate.stepsPerS();
    return { tps: Number.isNaN(tps) ? undefined : tps, eta: formatEta(eta) };
  };
  const pause = () => {
    if (runningSince !== undefined) trainMs += now() - runningSince;
    runningSince = undefined;
  };
  const resumeClock = () => {
    runningSince ??= now();
  };

  if (mode === "lines") {
    const write = options.write ?? ((line: string) => console.error(line));
    return {
      update(step, info) {
        resumeClock();
        const { tps, eta } = status(step, info);
        if (!info.logged) return;
        write(
          `step ${step}/${total}  loss ${formatNumber(info.loss, 4)}  lr ${
            info.lr.toExponential(2)
          }  ${formatNumber(tps, 0)} tok/s  ETA ${eta}` + (info.note ? `  ${info.note}` : ""),
        );
      },
      message(line, opts) {
        if (opts?.pause) pause();
        write(line);
      },
      pause,
      resume: resumeClock,
      stop() {},
    };
  }
  const encoder = new TextEncoder();
  const out = (text: string) => Deno.stderr.writeSync(encoder.encode(text));
  let shown = "";
  const draw = (line: string) => {
    shown = line;
    out(`\r\x1b[2K${line}`);
  };
  const message = (line: string, opts?: { readonly pause?: boolean }) => {
    if (opts?.pause) pause();
    // The line goes above the bar, which is drawn again under it.
    out(`\r\x1b[2K${line}\n`);
    if (shown !== "") out(shown);
  };
  // Redrawn at most every 100 ms (and at every logged step): fast steps would
  // otherwise spend their time writing to the terminal.
  let drawnAt = -Infinity;
  return {
    update(step, info) {
      resumeClock();
      const { tps, eta } = status(step, info);
      const t = now();
      if (!info.logged && !info.note && step !== total && t - drawnAt < 100) return;
      drawnAt = t;
      draw(
        `${barText(step, total)} ${step}/${total} | loss ${formatNumber(info.loss, 4)} | lr ${
          info.lr.toExponential(2)
        } | ${formatNumber(tps, 0)} tok/s | ETA ${eta}`,
      );
      if (info.note) message(`step ${step}: ${info.note}`);
    },
    message,
    pause,
    resume: resumeClock,
    stop() {
      if (shown !== "") out("\n");
      shown = "";
    },
  };
}
