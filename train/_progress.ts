/**
 * Progress on stderr: a `cli-progress` bar (step/total, loss, lr, tokens/s,
 * ETA) when stderr is a terminal, plain lines at each logged step otherwise
 * (logs and CI), or nothing.
 */
import process from "node:process";

// cli-progress is loaded only when a bar is shown (a terminal), from a
// specifier in a variable so that `deno cache mod.ts` does not download it.
const CLI_PROGRESS = "npm:cli-progress@3.12.0";

interface Bar {
  start(total: number, start: number, payload: Record<string, string>): void;
  update(value: number, payload: Record<string, string>): void;
  stop(): void;
}

/**
 * How progress is shown: `auto` picks `bar` on a terminal, `lines` elsewhere.
 *
 * @example
 * ```ts
 * import type { ProgressMode } from "./_progress.ts";
 * const mode: ProgressMode = Deno.stderr.isTerminal() ? "bar" : "lines";
 * ```
 */
export type ProgressMode = "auto" | "bar" | "lines" | "none";

/**
 * What one update shows.
 *
 * @example
 * ```ts
 * import type { ProgressInfo } from "./_progress.ts";
 * const info: ProgressInfo = { loss: 0.69, lr: 1e-3, tokensPerS: 5000, logged: true };
 * ```
 */
export interface ProgressInfo {
  /** The last loss read back (may be from an earlier step). */
  readonly loss?: number;
  /** This step's learning rate (default group). */
  readonly lr: number;
  /** Tokens per second at the last read. */
  readonly tokensPerS?: number;
  /** Whether this step's values were read back (plain lines print only then). */
  readonly logged: boolean;
  /** Extra text for the line, e.g. validation metrics. */
  readonly note?: string;
}

/**
 * A progress display.
 *
 * @example
 * ```ts
 * import { createProgress, type Progress } from "./_progress.ts";
 * const p: Progress = createProgress({ total: 10, start: 0, mode: "none" });
 * p.update(1, { lr: 1e-3, logged: false });
 * p.stop();
 * ```
 */
export interface Progress {
  /** Shows that `step` is done. */
  update(step: number, info: ProgressInfo): void;
  /** Ends the display (a bar leaves its last state on screen). */
  stop(): void;
}

/**
 * Options of {@link createProgress}.
 *
 * @example
 * ```ts
 * import type { ProgressOptions } from "./_progress.ts";
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
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const mmss = `${String(m).padStart(h > 0 ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

function formatNumber(v: number | undefined, digits: number): string {
  return v === undefined ? "-" : Number.isFinite(v) ? v.toFixed(digits) : String(v);
}

/**
 * Creates the progress display for a run of `total` steps.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { createProgress } from "./_progress.ts";
 * const lines: string[] = [];
 * const p = createProgress({ total: 2, start: 0, mode: "lines", write: (l) => lines.push(l) });
 * p.update(1, { loss: 2.5, lr: 1e-3, logged: true });
 * p.stop();
 * ok(lines[0].startsWith("step 1/2  loss 2.5000  lr 1.00e-3  "));
 * ```
 */
export function createProgress(options: ProgressOptions): Progress {
  const mode = options.mode === undefined || options.mode === "auto"
    ? (Deno.stderr.isTerminal() ? "bar" : "lines")
    : options.mode;
  if (mode === "none") return { update() {}, stop() {} };
  const started = performance.now();
  const { total, start } = options;
  if (mode === "lines") {
    const write = options.write ?? ((line: string) => console.error(line));
    return {
      update(step, info) {
        if (!info.logged) return;
        const elapsed = (performance.now() - started) / 1000;
        const eta = (elapsed / Math.max(1, step - start)) * (total - step);
        write(
          `step ${step}/${total}  loss ${formatNumber(info.loss, 4)}  lr ${
            info.lr.toExponential(2)
          }  ` +
            `${formatNumber(info.tokensPerS, 0)} tok/s  ETA ${formatEta(eta)}` +
            (info.note ? `  ${info.note}` : ""),
        );
      },
      stop() {},
    };
  }
  const payload = (info?: ProgressInfo) => ({
    loss: formatNumber(info?.loss, 4),
    lr: info === undefined ? "-" : info.lr.toExponential(2),
    tps: formatNumber(info?.tokensPerS, 0),
  });
  // The bar appears once its module has loaded (a few milliseconds, or a
  // download on first use); until then only the latest state is kept.
  let bar: Bar | undefined;
  let latest: [number, ProgressInfo] | undefined;
  let stopped = false;
  import(CLI_PROGRESS).then((mod) => {
    if (stopped) return;
    const cliProgress = mod.default ?? mod;
    bar = new cliProgress.SingleBar({
      format: "{bar} {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}",
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    }, cliProgress.Presets.shades_classic) as Bar;
    bar.start(total, start, payload());
    if (latest !== undefined) bar.update(latest[0], payload(latest[1]));
  }, () => {
    // Without the package (offline) progress falls back to nothing rather than failing the run.
    stopped = true;
  });
  return {
    update: (step, info) => {
      latest = [step, info];
      bar?.update(step, payload(info));
    },
    stop: () => {
      stopped = true;
      bar?.stop();
    },
  };
}
