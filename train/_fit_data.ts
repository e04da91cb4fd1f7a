/**
 * What {@link fit} trains on: the graph, batches and params of a run (a loaded model's prepared
 * from examples), the data as the trainer's batch source, and how many steps `epochs` makes.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { Feed } from "./runner.ts";
import { type BatchSource, type EvalBatch, feedsOf } from "./evaluation.ts";
import type { ClassificationBatch, LmBatch } from "../data/batches.ts";
import { isExamples, isLoadedModel, prepareModel } from "./_fit_model.ts";
import type { FitBatch, FitData, FitOptions } from "./fit_types.ts";

/**
 * The graph, data, params and eval batches of a run: a loaded model's prepared from examples.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { prepareFit } from "./_fit_data.ts";
 * const model = trace((x) => ({ loss: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const run = prepareFit({ model, data: [{ x: [1, 2] }], steps: 1 });
 * strictEqual(run.graph, model);
 * strictEqual(run.batchesPerEpoch, undefined); // counted from the data by stepsOf
 * ```
 */
export function prepareFit(options: FitOptions): {
  graph: Graph;
  data: FitData;
  params?: Readonly<Record<string, Float32Array>>;
  evalBatches?: readonly EvalBatch[] | (() => Iterable<EvalBatch>);
  batchesPerEpoch?: number;
  defaults: { targets?: readonly string[]; head?: string };
} {
  const seed = options.seed ?? 0;
  if (!isLoadedModel(options.model)) {
    if (isExamples(options.data) || options.eval?.examples) {
      throw new Error(
        "fit: examples train a loaded model (loadModel); a graph takes batches of feeds",
      );
    }
    return {
      graph: options.model,
      data: options.data as FitData,
      params: options.params,
      evalBatches: options.eval?.batches,
      defaults: {},
    };
  }
  const model = options.model;
  if (!isExamples(options.data)) {
    throw new Error(
      "fit: a loaded model trains on examples: [{ text, label }], [{ prompt, completion }] or texts",
    );
  }
  const prepared = prepareModel(model, options.data, {
    batch: options.batch ?? 8,
    ...(options.seqLen === undefined ? {} : { seqLen: options.seqLen }),
    seed,
    ...(options.numClasses === undefined ? {} : { numClasses: options.numClasses }),
    ...(options.eval?.examples ? { evalExamples: options.eval.examples } : {}),
  });
  return {
    graph: prepared.graph,
    data: prepared.data as FitData,
    params: { ...prepared.params, ...options.params },
    evalBatches: options.eval?.batches ?? prepared.evalBatches,
    batchesPerEpoch: prepared.batchesPerEpoch,
    defaults: { targets: model.family.defaultTargets, head: prepared.head },
  };
}

function toFeeds(batch: FitBatch): Readonly<Record<string, Feed>> {
  // Batches from data/ carry their size and text alongside the tensors; feedsOf keeps the tensors.
  const b = batch as Record<string, unknown>;
  return typeof b.batchSize === "number" && b.tokens instanceof Int32Array
    ? feedsOf(batch as ClassificationBatch | LmBatch)
    : batch as Readonly<Record<string, Feed>>;
}

/**
 * The data as the trainer's batch source; its state counts the batches taken.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { sourceOfData } from "./_fit_data.ts";
 * const source = sourceOfData([{ x: [1] }, { x: [2] }]);
 * const taken = [source.next(), source.next(), source.next()];
 * deepStrictEqual(taken, [{ x: [1] }, { x: [2] }, { x: [1] }]); // an array cycles as epochs
 * deepStrictEqual(source.state, { batches: 3 });
 * ```
 */
export function sourceOfData(data: FitData): BatchSource {
  const fresh: () => Iterable<FitBatch> = typeof data === "function"
    ? data
    : Array.isArray(data)
    ? () => data
    : (() => {
      let used = false;
      return () => {
        if (used) return [];
        used = true;
        return data as Iterable<FitBatch>;
      };
    })();
  const cycles = typeof data === "function" || Array.isArray(data);
  let iterator = fresh()[Symbol.iterator]();
  let taken = 0;
  return {
    next() {
      let r = iterator.next();
      if (r.done && cycles) {
        iterator = fresh()[Symbol.iterator]();
        r = iterator.next();
      }
      if (r.done) return undefined;
      taken++;
      return toFeeds(r.value);
    },
    get state() {
      return { batches: taken };
    },
  };
}

/**
 * `steps`, or `epochs` passes over the data counted in batches.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { stepsOf } from "./_fit_data.ts";
 * const model = trace((x) => ({ loss: x.mul(param("w", [1])).sum() }), [{ name: "x", shape: [1] }]);
 * strictEqual(stepsOf({ model, data: [{ x: [1] }, { x: [2] }], epochs: 3 }), 6);
 * throws(() => stepsOf({ model, data: [], steps: 1, epochs: 1 }), /either steps or epochs/);
 * ```
 */
export function stepsOf(options: FitOptions, batchesPerEpoch?: number): number {
  const { steps, epochs, data } = options;
  if ((steps === undefined) === (epochs === undefined)) {
    throw new Error("fit: give either steps or epochs");
  }
  if (steps !== undefined) return steps;
  if (!(Number.isSafeInteger(epochs) && epochs! >= 1)) {
    throw new Error(`fit: epochs must be an integer ≥ 1, got ${epochs}`);
  }
  let perEpoch: number;
  if (batchesPerEpoch !== undefined) perEpoch = batchesPerEpoch;
  else if (Array.isArray(data)) perEpoch = data.length;
  else if (typeof data === "function") {
    perEpoch = 0;
    for (const _ of (data as () => Iterable<FitBatch>)()) perEpoch++;
  } else {
    throw new Error("fit: epochs needs data as an array or a function returning a fresh iterable");
  }
  if (perEpoch === 0) throw new Error("fit: the data has no batches");
  return epochs! * perEpoch;
}
