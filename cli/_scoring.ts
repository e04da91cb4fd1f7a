/**
 * What `predict` and `eval` share: the base model with an optional PEFT
 * adapter applied (unmerged, exactly the adapted model), the task and class
 * names it was trained for, and running it over token rows.
 */
import type { Graph } from "../compiler/ir.ts";
import { importPeft, readPeft } from "../adapters/peft_import.ts";
import type { LoadedModel } from "../nn/families.ts";
import type { DataTask } from "../data/files.ts";
import { classificationRows, lmRows, rowEvalBatches, type TokenRow } from "../data/token_rows.ts";
import { loadDataFile } from "../data/files.ts";
import { classificationTask, lmTexts } from "../train/evaluation.ts";
import type { StepRunner } from "../train/runner.ts";
import { softmax } from "../train/metrics_cls.ts";
import { CONFIG_FLAG, type FlagSpec, intFlag, parseFlags, required, UsageError } from "./_args.ts";
import { backendOf, flag, type TrainCommandOptions } from "./_train_common.ts";
import { DATA_FLAGS, initialParams, loadBase, taskGraph } from "./_task.ts";

/** Flags of `predict` and `eval`. */
export const SCORING_FLAGS: Record<string, FlagSpec> = {
  base: flag("base model: a file written by pretrain or a Hugging Face directory"),
  adapter: flag("PEFT adapter directory (from finetune's run/adapter)"),
  data: flag("spam | names | FILE (.jsonl, .csv, .txt)"),
  seq: flag("tokens per example (default: the base's maxSeqLen)"),
  batch: flag("rows per forward pass", "8"),
  backend: flag(
    "auto | webgpu | wasm | cpu (auto: WebGPU on a hardware GPU, else wasm SIMD threads)",
    "auto",
  ),
  json: { type: "boolean", help: "print one JSON document on stdout" },
  task: DATA_FLAGS.task,
  "text-column": DATA_FLAGS["text-column"],
  "label-column": DATA_FLAGS["label-column"],
  config: CONFIG_FLAG,
};

/** A model ready to score: its graph, params, task and class names. */
export interface ScoringModel {
  readonly base: LoadedModel;
  readonly graph: Graph;
  readonly params: Record<string, Float32Array>;
  readonly task: DataTask;
  /** Class names (classification). */
  readonly labels?: string[];
}

function labelsOf(id2label: unknown, classes: number): string[] {
  const names = Array.from({ length: classes }, (_, i) => String(i));
  if (id2label && typeof id2label === "object") {
    for (const [k, v] of Object.entries(id2label)) {
      const i = Number(k);
      if (Number.isInteger(i) && i >= 0 && i < classes && typeof v === "string") names[i] = v;
    }
  }
  return names;
}

/**
 * Loads `--base` and applies `--adapter`: the task is classification when
 * the adapter saved a classification head (or the base has one, as a
 * transformers *ForSequenceClassification checkpoint does), else `lm`.
 */
export async function scoringModel(
  values: Record<string, unknown>,
  shape: { batch: number; seqLen?: number },
): Promise<ScoringModel> {
  const basePath = String(values.base);
  const base = await loadBase(basePath);
  const seqLen = shape.seqLen ?? base.config.maxSeqLen;
  const headWeight = `${base.family.classificationHead}.weight`;
  const adapterDir = values.adapter as string | undefined;
  const files = adapterDir === undefined
    ? undefined
    : await readPeft(adapterDir).catch((e: Error) => {
      throw new UsageError(e.message);
    });
  const headShape = files?.shapes[headWeight] ??
    (base.weights[headWeight]
      ? [base.weights[headWeight].length / base.config.hiddenSize]
      : undefined);
  const id2label = files?.config.id2label ?? base.source.configJson?.id2label;
  let task: DataTask = headShape ? "classification" : "lm";
  const wanted = values.task as string | undefined;
  if (wanted !== undefined && wanted !== "lm" && wanted !== "classification") {
    throw new UsageError(`--task must be lm or classification, got "${wanted}"`);
  }
  if (wanted === "classification" && !headShape) {
    throw new UsageError(
      `${
        adapterDir ?? basePath
      }: no classification head "${headWeight}" (fine-tune a classifier first)`,
    );
  }
  if (wanted === "lm") task = "lm";
  const numClasses = task === "classification" ? headShape![0] : undefined;
  const plain = taskGraph(base, task, { batch: shape.batch, seqLen, numClasses });
  let graph = plain, adapterParams: Record<string, Float32Array> = {};
  if (files) {
    try {
      const imported = importPeft(plain, files, adapterDir);
      graph = imported.graph;
      adapterParams = imported.params;
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const params = initialParams(graph, base, 0, adapterParams);
  const labels = numClasses === undefined ? undefined : labelsOf(id2label, numClasses);
  return { base, graph, params, task, labels };
}

/** Per-row results: class probabilities (classification) or summed NLL and counted tokens (LM). */
export interface RowScore {
  readonly probabilities?: number[];
  readonly nll?: number;
  readonly tokens?: number;
}

/**
 * Runs the model over rows in order and scores each row: softmax of the
 * classifier's logits, or the next-token negative log-likelihood summed over
 * the row's counted targets.
 */
export async function scoreRows(
  runner: StepRunner,
  graph: Graph,
  rows: readonly TokenRow[],
  padId: number,
): Promise<RowScore[]> {
  const [b, t] = graph.inputs.find((n) => n.name === "tokens")!.shape;
  const out: RowScore[] = [];
  const lm = graph.inputs.some((n) => n.name === "targets");
  for (const batch of rowEvalBatches(rows, { batchSize: b, seqLen: t, padId })) {
    const { logits } = await runner.run(batch.feeds, { read: ["logits"] });
    const data = logits as Float32Array;
    if (!lm) {
      const c = data.length / b;
      for (let i = 0; i < batch.rows; i++) {
        out.push({ probabilities: softmax(data.subarray(i * c, (i + 1) * c)) });
      }
      continue;
    }
    const v = data.length / (b * t);
    const targets = batch.feeds.targets;
    for (let i = 0; i < batch.rows; i++) {
      let nll = 0, tokens = 0;
      for (let j = 0; j < t; j++) {
        const target = targets[i * t + j];
        if (target < 0) continue;
        const row = data.subarray((i * t + j) * v, (i * t + j + 1) * v);
        let max = -Infinity;
        for (const x of row) max = Math.max(max, x);
        let sum = 0;
        for (const x of row) sum += Math.exp(x - max);
        nll += Math.log(sum) + max - row[target];
        tokens++;
      }
      out.push({ nll, tokens });
    }
  }
  return out;
}

/** The examples to score: rows, each example's text and label (-1: none) and its rows. */
export interface ScoringData {
  readonly rows: TokenRow[];
  /** Per example: its text (the prompt and completion joined for LM). */
  readonly texts: string[];
  /** Per example: the class index, -1 when the row has no label (classification). */
  readonly actual: number[];
  /** Per example: the index of its first row and how many rows it has. */
  readonly spans: { start: number; count: number }[];
}

/**
 * The data of `--data` for scoring: a whole file (labels mapped onto the
 * model's classes; `unlabelled` lets rows lack one), or the test split of a
 * bundled set.
 */
export async function scoringData(
  values: Record<string, unknown>,
  model: ScoringModel,
  seqLen: number,
  unlabelled: boolean,
): Promise<ScoringData> {
  const path = String(values.data);
  const tokenizer = model.base.tokenizer;
  let examples: { text: string; label: number }[] = [];
  let documents: { prompt: string; completion: string }[] = [];
  if (path === "spam" || path === "names") {
    if (model.task === "classification") examples = classificationTask(path).test;
    else documents = lmTexts(path).test.map((completion) => ({ prompt: "", completion }));
  } else {
    if (!/\.(jsonl|ndjson|csv|txt|text)$/i.test(path)) {
      throw new UsageError(
        `--data must be spam, names or a .jsonl, .csv or .txt file, got "${path}"`,
      );
    }
    const data = await loadDataFile(path, {
      task: model.task,
      labels: model.labels,
      unlabelled,
      textColumn: values["text-column"] as string | undefined,
      labelColumn: values["label-column"] as string | undefined,
    }).catch((e: Error) => {
      throw new UsageError(e.message);
    });
    if (data.task === "classification") examples = data.examples;
    else documents = data.documents;
  }
  const rows: TokenRow[] = [], spans: { start: number; count: number }[] = [];
  const add = (more: TokenRow[]) => {
    spans.push({ start: rows.length, count: more.length });
    rows.push(...more);
  };
  if (model.task === "classification") {
    for (const e of examples) add(classificationRows([e], tokenizer, seqLen));
    return {
      rows,
      texts: examples.map((e) => e.text),
      actual: examples.map((e) => e.label),
      spans,
    };
  }
  for (const d of documents) add(lmRows([d], tokenizer, seqLen));
  return {
    rows,
    texts: documents.map((d) => d.prompt + d.completion),
    actual: documents.map(() => -1),
    spans,
  };
}

/**
 * What `predict` and `eval` share: parse the flags, load the model (and adapter) and the data
 * file, and score every row on `--backend`. `unlabelled` allows rows without a label.
 */
export async function scoreDataFile(
  command: string,
  args: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
  options: TrainCommandOptions & { readonly unlabelled: boolean },
): Promise<{
  values: Record<string, string | boolean | undefined>;
  model: ScoringModel;
  data: ScoringData;
  scores: RowScore[];
}> {
  const { values } = parseFlags(command, args, flags);
  required(values, "base", command);
  required(values, "data", command);
  const batch = intFlag(values, "batch")!;
  const runnerFactory = backendOf(values, options);
  const model = await scoringModel(values, { batch, seqLen: intFlag(values, "seq") });
  const seqLen = model.graph.inputs[0].shape[1];
  const data = await scoringData(values, model, seqLen, options.unlabelled);
  if (data.texts.length === 0) throw new UsageError(`${command}: ${values.data}: no examples`);
  const runner = await runnerFactory(model.graph);
  const tokenizer = model.base.tokenizer;
  try {
    await runner.setParams(model.params);
    const padId = tokenizer.padId ?? tokenizer.eosId ?? 0;
    return { values, model, data, scores: await scoreRows(runner, model.graph, data.rows, padId) };
  } finally {
    runner.dispose();
  }
}
