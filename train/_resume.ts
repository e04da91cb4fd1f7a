/** What resuming a run needs: the starting params, and a checkpoint complete enough to continue. */
import type { Checkpoint, Json } from "./checkpoint.ts";
import type { BatchSource } from "./evaluation.ts";
import type { MetricsRecord } from "./metrics.ts";
import { initOptimizerState } from "./optim.ts";
import { updatedParams } from "./runner.ts";
import type { TrainOptions, TrainResult } from "./train_types.ts";

function differingKeys(a: Json | undefined, b: Json | undefined): string[] {
  const obj = (v: Json | undefined) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? v : { value: v ?? null };
  const x = obj(a), y = obj(b);
  return [...new Set([...Object.keys(x), ...Object.keys(y)])]
    .filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]));
}

/** The step's starting params: defaults, given values, then the checkpoint's. */
export function startingParams(options: TrainOptions): Record<string, Float32Array> {
  const { step, resume } = options;
  const updated = new Set(updatedParams(step));
  if (resume !== undefined) {
    const where = options.checkpoint?.path ?? "the checkpoint";
    for (const name of updated) {
      if (!Object.hasOwn(resume.params, name)) {
        throw new Error(`resume: ${where} is incomplete: it has no tensor "${name}"`);
      }
    }
    for (const name of Object.keys(resume.params)) {
      if (!updated.has(name)) {
        throw new Error(`resume: ${where} holds "${name}", which this run does not train`);
      }
    }
    const diff = differingKeys(resume.config, options.checkpoint?.config);
    if (diff.length > 0) {
      const file = options.checkpoint?.path === undefined ? "" : ` (${options.checkpoint.path})`;
      throw new Error(
        `resume: the checkpoint was written by a different run (${diff.join(", ")})${file}`,
      );
    }
  }
  const all = { ...initOptimizerState(step), ...options.params, ...resume?.params };
  const values: Record<string, Float32Array> = {};
  for (const p of step.params) {
    const v = all[p.name!];
    if (v === undefined) throw new Error(`train: no initial value for param "${p.name}"`);
    values[p.name!] = v;
  }
  return values;
}

/**
 * Refuses a checkpoint that lacks what the run saves: the data position (when the data source has
 * one, the batches would otherwise restart in another order) and the RNG state.
 */
export function checkResumable(resume: Checkpoint, source: BatchSource, path?: string): void {
  const where = path ?? "the checkpoint";
  const missing = (field: string, why: string) =>
    new Error(`resume: ${where} is incomplete: its "${field}" field is empty (${why})`);
  const hasPosition = source.state !== null && source.state !== undefined;
  if (hasPosition && (resume.data === null || resume.data === undefined)) {
    throw missing("data", "the data position; the batches would restart in another order");
  }
  const seed = (resume.rng as { seed?: unknown } | null | undefined)?.seed;
  if (!Number.isSafeInteger(seed)) throw missing("rng", "the seed of the per-step dropout");
}

/** The result of a resumed run that had no step left: the checkpoint's params, the logged metrics. */
export function finishedResult(
  resume: Checkpoint,
  records: readonly MetricsRecord[],
  updated: readonly string[],
): TrainResult {
  const last = [...records].reverse().find((r) => Number.isFinite(r.loss));
  return {
    step: resume.step,
    loss: last?.loss ?? NaN,
    gradNorm: last?.grad_norm ?? NaN,
    stepMs: NaN,
    tokensPerS: NaN,
    records,
    params: Object.fromEntries(updated.map((name) => [name, resume.params[name]])),
  };
}
