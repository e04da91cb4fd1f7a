/**
 * `fit` on a loaded model (`loadModel`: a Hugging Face directory or a wgrad
 * base file) and plain examples: the task graph of the model's family, its
 * weights as the starting params, the examples tokenized and batched, and
 * the classification head trained alongside an adapter (PEFT's
 * `modules_to_save`), as the `finetune` command does.
 */
import type { Graph } from "../compiler/ir.ts";
import type { LoadedModel } from "../nn/families.ts";
import type { ClassificationExample } from "../data/classification_batches.ts";
import type { LmDocument } from "../data/files.ts";
import {
  classificationRows,
  lmRows,
  RowBatcher,
  rowEvalBatches,
  type TokenRow,
} from "../data/token_rows.ts";
import type { EvalBatch } from "./evaluation.ts";

/**
 * Examples a loaded model trains on: labelled texts (a classifier, class
 * indices from 0), documents (`prompt`, `completion`: a language model whose
 * loss counts the completion) or plain texts (a language model).
 *
 * @example
 * ```ts
 * import type { FitExamples } from "./_fit_model.ts";
 * const spam: FitExamples = [{ text: "WIN CASH NOW", label: 1 }, { text: "lunch at 1?", label: 0 }];
 * ```
 */
export type FitExamples =
  | readonly ClassificationExample[]
  | readonly LmDocument[]
  | readonly string[];

/** Whether `value` is a loaded model rather than a graph. */
export function isLoadedModel(value: unknown): value is LoadedModel {
  return typeof value === "object" && value !== null && "family" in value && "weights" in value;
}

/** Whether `data` is an array of examples (rather than of feed batches). */
export function isExamples(data: unknown): data is FitExamples {
  if (!Array.isArray(data) || data.length === 0) return false;
  const first = data[0];
  return typeof first === "string" ||
    (typeof first === "object" && first !== null && ("text" in first || "completion" in first));
}

/** A loaded model prepared for `fit`. */
export interface PreparedModel {
  /** The task graph (classifier or language model) of the model's family. */
  readonly graph: Graph;
  /** The model's weights, for the params the graph shares with it. */
  readonly params: Record<string, Float32Array>;
  /** Training batches, shuffled anew each epoch, without end. */
  readonly data: Iterable<Readonly<Record<string, Int32Array>>>;
  /** Batches in one pass over the examples. */
  readonly batchesPerEpoch: number;
  /** Eval batches of `evalExamples`, if given. */
  readonly evalBatches?: () => Iterable<EvalBatch>;
  /** The classification head's module name (to keep trainable with an adapter), if a classifier. */
  readonly head?: string;
}

function rowsOf(model: LoadedModel, examples: FitExamples, seqLen: number): TokenRow[] {
  const first = examples[0];
  if (typeof first === "string") {
    const docs = (examples as readonly string[]).map((completion) => ({ prompt: "", completion }));
    return lmRows(docs, model.tokenizer, seqLen);
  }
  if ("label" in first) {
    return classificationRows(
      examples as readonly ClassificationExample[],
      model.tokenizer,
      seqLen,
    );
  }
  if ("completion" in first) {
    return lmRows(examples as readonly LmDocument[], model.tokenizer, seqLen);
  }
  const texts = examples as readonly { text: string }[];
  return lmRows(texts.map((e) => ({ prompt: "", completion: e.text })), model.tokenizer, seqLen);
}

/**
 * Builds what `fit` needs from a loaded model and examples.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadModel } from "../nn/families.ts";
 * import { prepareModel } from "./_fit_model.ts";
 * const model = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
 * const prepared = prepareModel(model, [{ text: "hi", label: 0 }, { text: "WIN", label: 1 }], {
 *   batch: 2,
 *   seqLen: 16,
 *   seed: 0,
 * });
 * strictEqual(prepared.batchesPerEpoch, 1);
 * strictEqual(prepared.head, "classifier");
 * ```
 */
export function prepareModel(
  model: LoadedModel,
  examples: FitExamples,
  options: {
    readonly batch: number;
    readonly seqLen?: number;
    readonly seed: number;
    readonly numClasses?: number;
    readonly evalExamples?: FitExamples;
  },
): PreparedModel {
  const seqLen = options.seqLen ?? model.config.maxSeqLen;
  const first = examples[0];
  const classification = typeof first === "object" && "label" in first;
  let numClasses: number | undefined;
  if (classification) {
    const labels = (examples as readonly ClassificationExample[]).map((e) => e.label);
    numClasses = options.numClasses ?? Math.max(2, Math.max(...labels) + 1);
  }
  const graph = model.family.graph(model.config, {
    batch: options.batch,
    seqLen,
    task: classification ? "classification" : "lm",
    ...(numClasses === undefined ? {} : { numClasses }),
  });
  // The model's weights where the graph has a param of that name and size (a new head has none).
  const params: Record<string, Float32Array> = {};
  for (const p of graph.params) {
    const w = model.weights[p.name!];
    if (w !== undefined && w.length === p.shape.reduce((a, b) => a * b, 1)) params[p.name!] = w;
  }
  const padId = model.tokenizer.padId ?? model.tokenizer.eosId ?? 0;
  const rows = rowsOf(model, examples, seqLen);
  const batchOptions = { batchSize: options.batch, seqLen, padId, seed: options.seed };
  const evalRows = options.evalExamples && rowsOf(model, options.evalExamples, seqLen);
  return {
    graph,
    params,
    data: { [Symbol.iterator]: () => new RowBatcher(rows, batchOptions) },
    batchesPerEpoch: Math.ceil(rows.length / options.batch),
    ...(evalRows === undefined ? {} : {
      evalBatches: () => rowEvalBatches(evalRows, { batchSize: options.batch, seqLen, padId }),
    }),
    ...(classification ? { head: model.family.classificationHead } : {}),
  };
}
