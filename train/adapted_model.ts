/**
 * The model after training, in three calls: {@link loadAdapter} reads a PEFT
 * adapter directory (what `finetune` and `fit` runs export),
 * {@link evaluateModel} measures a model with or without it on examples, and
 * {@link withAdapter} folds it into the weights for `generate`. {@link evaluate}
 * is `evaluateModel` for a loaded model and the CPU interpreter for a graph.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import type { CpuTensor } from "../compiler/ir.ts";
import {
  evaluate as evaluateGraph,
  type EvaluateOptions,
  type Feeds,
} from "../backends/cpu/interpreter.ts";
import { merge } from "../adapters/merge.ts";
import { importPeft, type PeftAdapterFiles, readPeft } from "../adapters/peft_import.ts";
import type { LoadedModel } from "../nn/families.ts";
import { initParams } from "../nn/init.ts";
import type { ClassificationExample } from "../data/classification_batches.ts";
import type { LmDocument } from "../data/files.ts";
import { classificationRows, lmRows, rowEvalBatches } from "../data/token_rows.ts";
import { type EvalMetrics, evaluateModel as evaluateRunner } from "./evaluation.ts";
import { runnerFactoryFor } from "./executable_runner.ts";
import type { BackendChoice } from "../backends/compile.ts";

/**
 * A PEFT adapter directory, read and checked for its own consistency (the
 * check against a base happens when it is applied).
 *
 * @example
 * ```ts
 * import type { LoadedAdapter } from "./adapted_model.ts";
 * const describe = (a: LoadedAdapter) => `${a.files.kind} adapter from ${a.path}`;
 * ```
 */
export interface LoadedAdapter {
  /** The directory it was read from. */
  readonly path: string;
  /** Its config and tensors. */
  readonly files: PeftAdapterFiles;
  /** Class names of a classifier adapter (`id2label`), in class order. */
  readonly labels?: readonly string[];
}

/**
 * Reads the PEFT adapter directory `dir` (`adapter_config.json` and `adapter_model.safetensors`).
 *
 * @example
 * ```ts
 * import { loadAdapter } from "./adapted_model.ts";
 * await loadAdapter("runs/spam/adapter").catch((e) => console.error(e.message));
 * ```
 */
export async function loadAdapter(dir: string): Promise<LoadedAdapter> {
  const files = await readPeft(dir);
  const id2label = files.config.id2label;
  let labels: string[] | undefined;
  if (id2label !== null && typeof id2label === "object") {
    const entries = Object.entries(id2label as Record<string, unknown>)
      .map(([k, v]) => [Number(k), String(v)] as const)
      .sort((a, b) => a[0] - b[0]);
    labels = entries.map(([, v]) => v);
  }
  return { path: dir, files, ...(labels ? { labels } : {}) };
}

/**
 * Options of {@link evaluateModel}.
 *
 * @example
 * ```ts
 * import type { EvaluateModelOptions } from "./adapted_model.ts";
 * const options: EvaluateModelOptions = { batch: 8, backend: "cpu" };
 * ```
 */
export interface EvaluateModelOptions {
  /** The adapter to apply (unmerged: exactly the model that was trained). */
  readonly adapter?: LoadedAdapter;
  /** Rows per batch (default 16). */
  readonly batch?: number;
  /** Tokens per row (default: the model's `maxSeqLen`). */
  readonly seqLen?: number;
  /** `cpu` (default) or `webgpu`. */
  readonly backend?: BackendChoice;
}

/** Examples to measure: labelled texts (a classifier) or documents (a language model). */
export type EvaluationData = readonly ClassificationExample[] | readonly LmDocument[];

function isClassification(data: EvaluationData): data is readonly ClassificationExample[] {
  return data.length > 0 && "label" in data[0];
}

function modelGraph(
  model: LoadedModel,
  data: EvaluationData,
  adapter: LoadedAdapter | undefined,
  shape: { batch: number; seqLen: number },
): { graph: Graph; params: Record<string, Float32Array> } {
  const head = `${model.family.classificationHead}.weight`;
  const classification = isClassification(data);
  let numClasses: number | undefined;
  if (classification) {
    const stored = adapter?.files.shapes[head]?.[0] ??
      (model.weights[head] ? model.weights[head].length / model.config.hiddenSize : undefined);
    numClasses = stored ?? Math.max(...data.map((e) => e.label)) + 1;
  }
  const plain = model.family.graph(model.config, {
    ...shape,
    task: classification ? "classification" : "lm",
    ...(numClasses === undefined ? {} : { numClasses }),
  });
  const imported = adapter ? importPeft(plain, adapter.files, adapter.path) : undefined;
  const graph = imported?.graph ?? plain;
  const params = initParams(graph, { seed: 0 });
  for (const p of graph.params) {
    const name = p.name!;
    const value = imported?.params[name] ?? model.weights[name];
    if (value !== undefined && value.length === params[name].length) params[name] = value;
    else if (classification && name.startsWith(model.family.classificationHead + ".")) {
      throw new Error(
        `evaluateModel: ${model.source.path} has no classification head "${name}" ` +
          `(pass the adapter of a fine-tuned classifier)`,
      );
    } else if (value === undefined && !name.includes("lora_") && !name.includes("vera_")) {
      throw new Error(`evaluateModel: ${model.source.path} has no "${name}"`);
    }
  }
  return { graph, params };
}

/**
 * Measures `model` (with `options.adapter`) on `data`: mean loss and accuracy
 * for labelled texts, mean loss per target token for documents.
 *
 * @example
 * ```ts
 * import { loadModel } from "../nn/families.ts";
 * import { evaluateModel } from "./adapted_model.ts";
 * const model = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
 * const m = await evaluateModel(model, [{ prompt: "", completion: "Free money now" }], { batch: 1 });
 * console.log(m.loss, Math.exp(m.loss)); // loss per byte and perplexity
 * ```
 */
export async function evaluateModel(
  model: LoadedModel,
  data: EvaluationData,
  options: EvaluateModelOptions = {},
): Promise<EvalMetrics> {
  if (data.length === 0) throw new Error("evaluateModel: no examples");
  const batch = options.batch ?? 16;
  const seqLen = options.seqLen ?? model.config.maxSeqLen;
  const { graph, params } = modelGraph(model, data, options.adapter, { batch, seqLen });
  const rows = isClassification(data)
    ? classificationRows(data, model.tokenizer, seqLen)
    : lmRows(data as readonly LmDocument[], model.tokenizer, seqLen);
  const padId = model.tokenizer.padId ?? model.tokenizer.eosId ?? 0;
  const runner = await runnerFactoryFor(options.backend ?? "cpu")(graph);
  try {
    await runner.setParams(params);
    return await evaluateRunner(
      runner,
      rowEvalBatches(rows, { batchSize: batch, seqLen, padId }),
    );
  } finally {
    runner.dispose();
  }
}

/**
 * `model` with `adapter` merged into its weights (ΔW folded into each targeted
 * weight), e.g. to `generate` with a fine-tuned language model.
 *
 * @example
 * ```ts
 * import { loadModel } from "../nn/families.ts";
 * import { generate } from "../nn/generate.ts";
 * import { loadAdapter, withAdapter } from "./adapted_model.ts";
 * const base = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
 * const tuned = Deno.args[0] ? await withAdapter(base, await loadAdapter(Deno.args[0])) : base;
 * const r = await generate(tuned, { prompt: "Free ", maxNewTokens: 8, temperature: 0, backend: "cpu" });
 * console.log(r.text);
 * ```
 */
export async function withAdapter(
  model: LoadedModel,
  adapter: LoadedAdapter,
): Promise<LoadedModel> {
  const plain = model.family.graph(model.config, { batch: 1, seqLen: 1, task: "lm" });
  const imported = importPeft(plain, adapter.files, adapter.path);
  const merged = await merge(imported.adapter, { ...model.weights, ...imported.params });
  const weights = { ...model.weights };
  for (const name of Object.keys(model.weights)) if (merged[name]) weights[name] = merged[name];
  return { ...model, weights };
}

/**
 * Runs a graph on the float64 CPU interpreter (every output, synchronously), or
 * measures a loaded model on examples as {@link evaluateModel} does (a promise of
 * the loss, and the accuracy of a classifier).
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { trace } from "../compiler/trace.ts";
 * import { loadModel } from "../nn/families.ts";
 * import { evaluate } from "./adapted_model.ts";
 * const g = trace((x) => x.mul(2).sum(), [{ name: "x", shape: [3] }]);
 * strictEqual(evaluate(g, { inputs: { x: [1, 2, 3] } }).out.data[0], 12);
 * const model = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
 * const measured = await evaluate(model, [{ prompt: "", completion: "Hello" }], { batch: 1 });
 * strictEqual(measured.count, 5);
 * ok(Number.isFinite(measured.loss));
 * ```
 */
export function evaluate(
  graph: Graph,
  feeds?: Feeds,
  options?: EvaluateOptions,
): Record<string, CpuTensor>;
/**
 * Measures a loaded model (with `options.adapter`) on examples: {@link evaluateModel}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadModel } from "../nn/families.ts";
 * import { evaluate } from "./adapted_model.ts";
 * const model = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
 * strictEqual((await evaluate(model, [{ prompt: "", completion: "Hi" }], { batch: 1 })).count, 2);
 * ```
 */
export function evaluate(
  model: LoadedModel,
  data: EvaluationData,
  options?: EvaluateModelOptions,
): Promise<EvalMetrics>;
export function evaluate(
  target: Graph | LoadedModel,
  second?: Feeds | EvaluationData,
  options?: EvaluateOptions | EvaluateModelOptions,
): Record<string, CpuTensor> | Promise<EvalMetrics> {
  if ("family" in target) {
    return evaluateModel(target, second as EvaluationData, options as EvaluateModelOptions);
  }
  return evaluateGraph(target, second as Feeds, options as EvaluateOptions);
}
