/** The run's metrics log: `metrics.jsonl`, one JSON object per logged step, appended as it goes. */
import { writeFileAtomic } from "../io/atomic.ts";

/**
 * One logged step.
 *
 * @example
 * ```ts
 * import type { MetricsRecord } from "./metrics.ts";
 * const r: MetricsRecord = { step: 10, loss: 0.5, lr: 1e-3, grad_norm: 0.8, tokens_per_s: 4000, eval_accuracy: 0.9 };
 * ```
 */
export interface MetricsRecord {
  /** The step (1-based; 0 for the evaluation before training, which has only `eval_*` fields). */
  readonly step: number;
  /** Training loss of that step's batch (absent at step 0). */
  readonly loss?: number;
  /** Learning rate of the default group (absent at step 0). */
  readonly lr?: number;
  /** Global gradient norm before clipping (absent at step 0). */
  readonly grad_norm?: number;
  /** Tokens fed per second of training since the previous logged step (absent at step 0). */
  readonly tokens_per_s?: number;
  /** Other fields: `lr.<group>`, `eval_loss`, `eval_accuracy`, ... */
  readonly [key: string]: number | undefined;
}

/**
 * The records of a `metrics.jsonl` text. A last line cut short by a crash (no newline at its end,
 * and not valid JSON) is dropped with a warning on stderr; any other bad line is an error naming
 * the file and the line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMetrics } from "./metrics.ts";
 * const text = '{"step":1,"loss":2}\n{"step":2,"lo';
 * assert.deepEqual(parseMetrics(text, "metrics.jsonl").map((r) => r.step), [1]);
 * ```
 */
export function parseMetrics(text: string, path: string): MetricsRecord[] {
  const lines = text.split("\n");
  const records: MetricsRecord[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    const torn = i === lines.length - 1; // no newline after it: the write was cut short
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (e) {
      if (torn) {
        console.error(
          `warning: ${path}: dropped the incomplete last line ${i + 1} (${line.length} characters)`,
        );
        break;
      }
      throw new Error(`${path}: line ${i + 1} is not valid JSON (${(e as Error).message})`);
    }
    const step = (record as { step?: unknown })?.step;
    if (typeof record !== "object" || record === null || !Number.isInteger(step)) {
      throw new Error(`${path}: line ${i + 1} has no integer "step" field`);
    }
    records.push(record as MetricsRecord);
  }
  return records;
}

/**
 * An append-only `metrics.jsonl`. Opening it for a resumed run keeps the
 * records up to the resumed step and drops later ones (they belonged to
 * the interrupted tail), so the file reads as one uninterrupted run.
 *
 * @example
 * ```ts
 * import { MetricsLog } from "./metrics.ts";
 * const path = `${await Deno.makeTempDir()}/metrics.jsonl`;
 * const log = await MetricsLog.open(path);
 * await log.append({ step: 1, loss: 2.5, lr: 1e-3, grad_norm: 1, tokens_per_s: 100 });
 * log.close();
 * ```
 */
export class MetricsLog {
  readonly #file: Deno.FsFile;
  readonly #records: MetricsRecord[];

  private constructor(file: Deno.FsFile, records: MetricsRecord[]) {
    this.#file = file;
    this.#records = records;
  }

  /**
   * Opens `path`: fresh (truncated) unless `keepUpTo` is given, in which case
   * records with `step ≤ keepUpTo` are kept.
   *
   * @example
   * ```ts
   * import { MetricsLog } from "./metrics.ts";
   * const log = await MetricsLog.open(`${await Deno.makeTempDir()}/m.jsonl`, { keepUpTo: 0 });
   * log.close();
   * ```
   */
  static async open(path: string, options: { keepUpTo?: number } = {}): Promise<MetricsLog> {
    let kept: MetricsRecord[] = [];
    if (options.keepUpTo !== undefined) {
      const text = await Deno.readTextFile(path).catch((e) => {
        if (e instanceof Deno.errors.NotFound) return "";
        throw new Error(`cannot read ${path}: ${e.message}`);
      });
      kept = parseMetrics(text, path).filter((r) => r.step <= options.keepUpTo!);
    }
    // The kept records replace the file in one atomic step, so a crash here loses nothing.
    await writeFileAtomic(path, kept.map((r) => JSON.stringify(r) + "\n").join(""));
    const file = await Deno.open(path, { write: true, append: true });
    return new MetricsLog(file, kept);
  }

  /**
   * Every record so far (kept and appended).
   *
   * @example
   * ```ts
   * import { strictEqual } from "node:assert/strict";
   * import { MetricsLog } from "./metrics.ts";
   * const log = await MetricsLog.open(`${await Deno.makeTempDir()}/m.jsonl`);
   * strictEqual(log.records.length, 0);
   * log.close();
   * ```
   */
  get records(): readonly MetricsRecord[] {
    return this.#records;
  }

  /**
   * Appends one record as a line (non-finite numbers are written as null).
   *
   * @example
   * ```ts
   * import { MetricsLog } from "./metrics.ts";
   * const log = await MetricsLog.open(`${await Deno.makeTempDir()}/m.jsonl`);
   * await log.append({ step: 1, loss: 1, lr: 0.1, grad_norm: 0.5, tokens_per_s: 10 });
   * log.close();
   * ```
   */
  async append(record: MetricsRecord): Promise<void> {
    this.#records.push(record);
    const line = new TextEncoder().encode(JSON.stringify(record) + "\n");
    let written = 0;
    while (written < line.length) written += await this.#file.write(line.subarray(written));
  }

  /**
   * Closes the file.
   *
   * @example
   * ```ts
   * import { MetricsLog } from "./metrics.ts";
   * (await MetricsLog.open(`${await Deno.makeTempDir()}/m.jsonl`)).close();
   * ```
   */
  close(): void {
    this.#file.close();
  }
}
