/**
 * Which model and which data: what `finetune`, `predict` and `eval` share.
 * The base is any model `loadModel` reads (a wgrad base file or a Hugging
 * Face directory); the data is a bundled set (`spam`, `names`) or a file
 * (`.jsonl`, `.csv`, `.txt`), tokenized with the base's tokenizer.
 */
import type { Graph } from "../compiler/ir.ts";
import { type LoadedModel, loadModel } from "../nn/families.ts";
import { type DataSet, type DataTask, loadDataFile, splitData } from "../data/files.ts";
import {
  classificationRows,
  lmRows,
  type RowTokenizer,
  type TokenRow,
} from "../data/token_rows.ts";
import type { Splits } from "../data/split.ts";
import { classificationTask, lmTexts } from "../train/evaluation.ts";
import { isAdapterParam } from "../adapters/merge.ts";
import { initParams } from "../nn/init.ts";
import { type FlagSpec, UsageError } from "./_args.ts";
import { resolveBase } from "./_hub.ts";

const flag = (help: string, fallback?: string): FlagSpec => ({
  type: "string",
  help,
  default: fallback,
});

/** Flags that pick the data and the task. */
export const DATA_FLAGS: Record<string, FlagSpec> = {
  task: flag("lm | classification (default: classification when the data has labels)"),
  "eval-data": flag("validation/test data file (default: a deterministic split of --data)"),
  "text-column": flag("CSV column / JSONL field of the text (default text)"),
  "label-column": flag(
    "CSV column / JSONL field of the label (default label; implies classification)",
  ),
};

/** Class names of the bundled sets (label 0, 1). */
const NAMED_LABELS: Record<string, string[]> = {
  spam: ["ham", "spam"],
  names: ["female", "male"],
};

/** A task's data as token rows. */
export interface TaskData {
  readonly task: DataTask;
  /** Class names (classification). */
  readonly labels?: string[];
  readonly rows: Splits<TokenRow>;
  /** The texts behind the rows of each split (classification), for predictions. */
  readonly texts?: Splits<string>;
}

/** Loads the base model; errors become usage errors (one line, exit 1). */
export async function loadBase(path: string): Promise<LoadedModel> {
  try {
    return await loadModel(await resolveBase(path));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function taskFlag(values: Record<string, unknown>): DataTask | undefined {
  const t = values.task;
  if (t === undefined) return undefined;
  if (t !== "lm" && t !== "classification") {
    throw new UsageError(`--task must be lm or classification, got "${t}"`);
  }
  return t;
}

async function readData(
  path: string,
  values: Record<string, unknown>,
  options: { task?: DataTask; labels?: readonly string[]; unlabelled?: boolean },
): Promise<DataSet> {
  try {
    return await loadDataFile(path, {
      ...options,
      textColumn: values["text-column"] as string | undefined,
      labelColumn: values["label-column"] as string | undefined,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * The data of `--data` (and `--eval-data`) as token rows of at most `seqLen`
 * tokens. `labels` maps a file's labels onto known classes (an adapter's);
 * `unlabelled` lets rows lack a label (predict).
 */
export async function loadTaskData(
  values: Record<string, unknown>,
  tokenizer: RowTokenizer,
  seqLen: number,
  options: { labels?: readonly string[]; unlabelled?: boolean; task?: DataTask } = {},
): Promise<TaskData> {
  const data = String(values.data);
  const task = options.task ?? taskFlag(values);
  if (data === "spam" || data === "names") {
    if (task === "lm") {
      const texts = lmTexts(data);
      const docs = (s: string[]) =>
        lmRows(s.map((completion) => ({ prompt: "", completion })), tokenizer, seqLen);
      return {
        task: "lm",
        rows: {
          train: docs(texts.train),
          validation: docs(texts.validation),
          test: docs(texts.test),
        },
      };
    }
    const splits = classificationTask(data);
    const rows = (s: typeof splits.train) => classificationRows(s, tokenizer, seqLen);
    const texts = (s: typeof splits.train) => s.map((e) => e.text);
    return {
      task: "classification",
      labels: NAMED_LABELS[data],
      rows: {
        train: rows(splits.train),
        validation: rows(splits.validation),
        test: rows(splits.test),
      },
      texts: {
        train: texts(splits.train),
        validation: texts(splits.validation),
        test: texts(splits.test),
      },
    };
  }
  if (!/\.(jsonl|ndjson|csv|txt|text)$/i.test(data)) {
    throw new UsageError(
      `--data must be spam, names or a .jsonl, .csv or .txt file, got "${data}"`,
    );
  }
  const main = await readData(data, values, { ...options, task });
  const evalPath = values["eval-data"] as string | undefined;
  const held = evalPath === undefined ? undefined : await readData(evalPath, values, {
    ...options,
    task: main.task,
    labels: main.task === "classification" ? main.labels : undefined,
  });
  if (main.task === "lm") {
    const toRows = (d: DataSet) => d.task === "lm" ? d.documents : [];
    const split = held ? undefined : splitData(main);
    const rows = (docs: ReturnType<typeof toRows>) => lmRows(docs, tokenizer, seqLen);
    return {
      task: "lm",
      rows: {
        train: rows(split ? split.train : main.documents),
        validation: rows(split ? split.validation : toRows(held!)),
        test: rows(split ? split.test : toRows(held!)),
      },
    };
  }
  const split = held?.task === "classification"
    ? { train: main.examples, validation: held.examples, test: held.examples }
    : splitData(main);
  const rows = (s: typeof split.train) => classificationRows(s, tokenizer, seqLen);
  const texts = (s: typeof split.train) => s.map((e) => e.text);
  return {
    task: "classification",
    labels: main.labels,
    rows: { train: rows(split.train), validation: rows(split.validation), test: rows(split.test) },
    texts: {
      train: texts(split.train),
      validation: texts(split.validation),
      test: texts(split.test),
    },
  };
}

/** Refuses a sequence length longer than the base model's positions. */
export function checkSeq(model: LoadedModel, seqLen: number): void {
  if (seqLen > model.config.maxSeqLen) {
    throw new UsageError(
      `--seq ${seqLen} exceeds the base model's maxSeqLen ${model.config.maxSeqLen} (${model.source.path})`,
    );
  }
}

/** The task's graph of the base model's family. */
export function taskGraph(
  model: LoadedModel,
  task: DataTask,
  shape: { batch: number; seqLen: number; numClasses?: number; dropout?: number },
): Graph {
  checkSeq(model, shape.seqLen);
  try {
    return model.family.graph(model.config, { ...shape, task });
  } catch (e) {
    throw new UsageError(`${model.source.path}: ${(e as Error).message}`);
  }
}

/**
 * Initial params: `provided` ones (an imported adapter's), the base weights
 * where the graph has them; adapter params and a classification head the
 * base lacks (or has with another number of classes) get the seeded init.
 */
export function initialParams(
  graph: Graph,
  model: LoadedModel,
  seed: number,
  provided: Readonly<Record<string, Float32Array>> = {},
): Record<string, Float32Array> {
  const head = `${model.family.classificationHead}.`;
  const params = initParams(graph, { seed });
  for (const p of graph.params) {
    const name = p.name!;
    if (isAdapterParam(name) || name in provided) {
      if (name in provided) params[name] = provided[name];
      continue;
    }
    const w = model.weights[name];
    const size = p.shape.reduce((a, b) => a * b, 1);
    if (name.startsWith(head) && (w === undefined || w.length !== size)) continue;
    if (w === undefined) {
      throw new UsageError(`${model.source.path}: the base model has no "${name}"`);
    }
    if (w.length !== size) {
      throw new UsageError(
        `${model.source.path}: "${name}" has ${w.length} values, the model needs [${p.shape}]`,
      );
    }
    params[name] = w;
  }
  return params;
}

/** The id2label / label2id maps of class names, as transformers writes them. */
export function labelMaps(labels: readonly string[]): {
  id2label: Record<string, string>;
  label2id: Record<string, number>;
} {
  return {
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
  };
}
