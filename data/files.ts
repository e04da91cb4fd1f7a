/**
 * Your own data from files: `.jsonl` (`{"text", "label"}` for classification,
 * `{"text"}` or `{"prompt", "completion"}` for language modelling), `.csv`
 * (a header row, RFC 4180 quoting) and `.txt` (one document). Every bad row
 * is an error that names the file, the line and the field.
 *
 * @module
 */
import type { ClassificationExample } from "./classification_batches.ts";
import { splitBy, type Splits } from "./split.ts";
import { parseCsv } from "./_csv.ts";

/** The two tasks a data file can hold. */
export type DataTask = "lm" | "classification";

/** A language-modelling document: the loss counts the completion's tokens only. */
export interface LmDocument {
  /** Context the model reads but is not trained to produce ("" for plain text). */
  readonly prompt: string;
  /** The text the loss is computed on. */
  readonly completion: string;
}

/** A classification data set: examples with class indices into `labels`. */
export interface ClassificationData {
  /** Always `classification`. */
  readonly task: "classification";
  /** The class names; an example's `label` indexes this list. */
  readonly labels: string[];
  /** The rows, in file order. */
  readonly examples: ClassificationExample[];
}

/** A language-modelling data set. */
export interface LmData {
  /** Always `lm`. */
  readonly task: "lm";
  /** The documents, in file order. */
  readonly documents: LmDocument[];
}

/**
 * A parsed data file.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { parseDataFile, type DataSet } from "./files.ts";
 * const d: DataSet = parseDataFile('{"text":"hi","label":"greeting"}\n{"text":"bye","label":"farewell"}', "a.jsonl");
 * deepStrictEqual(d, {
 *   task: "classification",
 *   labels: ["farewell", "greeting"], // sorted; examples hold their index
 *   examples: [{ text: "hi", label: 1 }, { text: "bye", label: 0 }],
 * });
 * ```
 */
export type DataSet = ClassificationData | LmData;

/** Options of {@link parseDataFile} and {@link loadDataFile}. */
export interface DataFileOptions {
  /** `lm` or `classification`; default: classification when the rows have labels. */
  readonly task?: DataTask;
  /** CSV column / JSONL field of the text (default `text`). */
  readonly textColumn?: string;
  /** CSV column / JSONL field of the label (default `label`); naming one implies classification. */
  readonly labelColumn?: string;
  /**
   * Class names to map labels onto (e.g. those an adapter was trained with):
   * a label outside them is an error, and one class only is then allowed.
   */
  readonly labels?: readonly string[];
  /** Rows may lack a label (prediction on unlabelled data); they get label -1. */
  readonly unlabelled?: boolean;
}

/** One row before the task is decided. */
interface Row {
  readonly line: number;
  readonly text?: string;
  readonly label?: string;
  readonly prompt?: string;
  readonly completion?: string;
}

const typeName = (v: unknown) => v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;

function jsonRows(text: string, where: string, labelKey: string, textKey: string): Row[] {
  const rows: Row[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, "");
    if (raw.trim() === "") continue;
    const at = `${where}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new Error(`${at}: bad JSON (${(e as Error).message})`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`${at}: each line must be a JSON object, got ${typeName(value)}`);
    }
    const o = value as Record<string, unknown>;
    const str = (key: string) => {
      const v = o[key];
      if (v === undefined) return undefined;
      if (typeof v !== "string") {
        throw new Error(`${at}: field "${key}" must be a string, got ${typeName(v)}`);
      }
      return v;
    };
    let label: string | undefined;
    const l = o[labelKey];
    if (typeof l === "string") label = l;
    else if (typeof l === "number" && Number.isInteger(l)) label = String(l);
    else if (l !== undefined && l !== null) {
      throw new Error(
        `${at}: field "${labelKey}" must be a string or an integer, got ${
          typeof l === "number" ? l : typeName(l)
        }`,
      );
    }
    rows.push({
      line: i + 1,
      text: str(textKey),
      label,
      prompt: str("prompt"),
      completion: str("completion"),
    });
  }
  return rows;
}

function csvRows(
  text: string,
  where: string,
  textKey: string,
  labelKey: string,
  labelNamed: boolean,
): Row[] {
  const records = parseCsv(text, where);
  if (records.length === 0) throw new Error(`${where}: empty file (expected a header row)`);
  const header = records[0].fields.map((h) => h.trim());
  const seen = new Set<string>();
  for (const h of header) {
    if (seen.has(h)) {
      throw new Error(`${where}:${records[0].line}: column "${h}" appears twice in the header`);
    }
    seen.add(h);
  }
  const col = (name: string) => header.indexOf(name);
  const [ti, li, pi, ci] = [col(textKey), col(labelKey), col("prompt"), col("completion")];
  if (ti < 0 && (pi < 0 || ci < 0)) {
    throw new Error(
      `${where}:${records[0].line}: no column "${textKey}" in the header (columns: ${
        header.join(", ")
      }; choose one with --text-column)`,
    );
  }
  if (labelNamed && li < 0) {
    throw new Error(
      `${where}:${records[0].line}: no column "${labelKey}" in the header (columns: ${
        header.join(", ")
      }; choose one with --label-column)`,
    );
  }
  return records.slice(1).map(({ fields, line }) => {
    if (fields.length !== header.length) {
      throw new Error(
        `${where}:${line}: ${fields.length} fields, the header has ${header.length} (quote fields that hold commas)`,
      );
    }
    const get = (i: number) => i < 0 ? undefined : fields[i];
    const label = get(li);
    return {
      line,
      text: get(ti),
      label: label === undefined || label.trim() === "" ? undefined : label.trim(),
      prompt: get(pi),
      completion: get(ci),
    };
  });
}

function formatOf(where: string): "jsonl" | "csv" | "txt" {
  const ext = where.toLowerCase().match(/\.([a-z]+)$/)?.[1];
  if (ext === "jsonl" || ext === "ndjson") return "jsonl";
  if (ext === "csv") return "csv";
  if (ext === "txt" || ext === "text") return "txt";
  throw new Error(`${where}: unknown data format "${ext ?? ""}" (use .jsonl, .csv or .txt)`);
}

/** Class names in a stable order: numeric when every label is an integer, else by code units. */
function orderLabels(names: Iterable<string>): string[] {
  const all = [...new Set(names)];
  const numeric = all.every((n) => /^-?\d+$/.test(n));
  return numeric ? all.sort((a, b) => Number(a) - Number(b)) : all.sort();
}

function classification(rows: Row[], where: string, options: DataFileOptions): ClassificationData {
  const textKey = options.textColumn ?? "text";
  const labelKey = options.labelColumn ?? "label";
  for (const r of rows) {
    if (r.text === undefined) throw new Error(`${where}:${r.line}: missing field "${textKey}"`);
    if (r.text.trim() === "") throw new Error(`${where}:${r.line}: field "${textKey}" is empty`);
    if (r.label === undefined && !options.unlabelled) {
      throw new Error(
        `${where}:${r.line}: missing field "${labelKey}" (every row needs a label for classification)`,
      );
    }
  }
  const given = options.labels;
  const labels = given ? [...given] : orderLabels(rows.flatMap((r) => r.label ?? []));
  if (!given && !options.unlabelled && labels.length < 2) {
    throw new Error(
      `${where}: one class only (${
        JSON.stringify(labels[0])
      } in all ${rows.length} rows); classification needs at least 2`,
    );
  }
  const index = new Map(labels.map((l, i) => [l, i]));
  const examples = rows.map((r) => {
    if (r.label === undefined) return { text: r.text!, label: -1 };
    const i = index.get(r.label);
    if (i === undefined) {
      throw new Error(
        `${where}:${r.line}: label ${JSON.stringify(r.label)} is not one of the model's classes (${
          labels.join(", ")
        })`,
      );
    }
    return { text: r.text!, label: i };
  });
  return { task: "classification", labels, examples };
}

function lm(rows: Row[], where: string, textKey: string): LmData {
  const documents = rows.map((r) => {
    if (r.prompt !== undefined || r.completion !== undefined) {
      if (r.prompt === undefined) {
        throw new Error(`${where}:${r.line}: missing field "prompt" (it has "completion")`);
      }
      if (r.completion === undefined) {
        throw new Error(`${where}:${r.line}: missing field "completion" (it has "prompt")`);
      }
      if (r.completion === "") throw new Error(`${where}:${r.line}: field "completion" is empty`);
      return { prompt: r.prompt, completion: r.completion };
    }
    if (r.text === undefined) {
      throw new Error(
        `${where}:${r.line}: missing field "${textKey}" (or "prompt" and "completion")`,
      );
    }
    if (r.text.trim() === "") throw new Error(`${where}:${r.line}: field "${textKey}" is empty`);
    return { prompt: "", completion: r.text };
  });
  return { task: "lm", documents };
}

/**
 * Parses the contents of a data file; `where` is its name (the extension
 * picks the format, and errors start with it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDataFile } from "./files.ts";
 * const csv = 'text,label\n"Win $$$, now",spam\nSee you at 5,ham\n';
 * const data = parseDataFile(csv, "mail.csv");
 * assert.deepEqual(data, {
 *   task: "classification",
 *   labels: ["ham", "spam"],
 *   examples: [{ text: "Win $$$, now", label: 1 }, { text: "See you at 5", label: 0 }],
 * });
 * assert.throws(() => parseDataFile('{"text": 3}', "x.jsonl"), /x.jsonl:1: field "text" must be a string/);
 * ```
 */
export function parseDataFile(text: string, where: string, options: DataFileOptions = {}): DataSet {
  const textKey = options.textColumn ?? "text";
  const labelKey = options.labelColumn ?? "label";
  text = text.replace(/^\uFEFF/, "");
  const format = formatOf(where);
  if (format === "txt") {
    if (options.task === "classification") {
      throw new Error(
        `${where}: a .txt file is one document for language modelling; use .jsonl or .csv with labels`,
      );
    }
    if (text.trim() === "") throw new Error(`${where}: the file is empty`);
    return { task: "lm", documents: [{ prompt: "", completion: text }] };
  }
  const rows = format === "csv"
    ? csvRows(text, where, textKey, labelKey, options.labelColumn !== undefined)
    : jsonRows(text, where, labelKey, textKey);
  if (rows.length === 0) throw new Error(`${where}: no examples in the file`);
  // A label column named on purpose means classification, even if the first row lacks it.
  const task = options.task ??
    (options.labels || options.labelColumn !== undefined || rows[0].label !== undefined
      ? "classification"
      : "lm");
  return task === "classification"
    ? classification(rows, where, options)
    : lm(rows, where, textKey);
}

/**
 * Reads and parses a data file (see {@link parseDataFile}).
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { loadDataFile } from "./files.ts";
 * await rejects(loadDataFile("missing.jsonl"), { message: /^cannot read missing\.jsonl: / });
 * ```
 */
export async function loadDataFile(path: string, options: DataFileOptions = {}): Promise<DataSet> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  return parseDataFile(text, path, options);
}

/**
 * Data sets smaller than this are not split: every example trains.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { MIN_SPLIT } from "./files.ts";
 * strictEqual(MIN_SPLIT, 20);
 * ```
 */
export const MIN_SPLIT = 20;

/**
 * Deterministic train/validation/test splits of a data set (80/10/10 by a
 * hash of each example's text, so the same text always lands in the same
 * split and duplicates never leak across splits). A set of fewer than
 * {@link MIN_SPLIT} examples is all training data.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseDataFile, splitData } from "./files.ts";
 * const data = parseDataFile("text,label\na,0\nb,1\n", "d.csv");
 * const splits = splitData(data);
 * strictEqual(splits.train.length, 2); // too few to hold any out
 * ```
 */
export function splitData(data: ClassificationData): Splits<ClassificationExample>;
/** The splits of a language-modelling data set. */
export function splitData(data: LmData): Splits<LmDocument>;
/** The splits of either kind of data set. */
export function splitData(data: DataSet): Splits<ClassificationExample> | Splits<LmDocument>;
export function splitData(
  data: DataSet,
): Splits<ClassificationExample> | Splits<LmDocument> {
  if (data.task === "lm") return splitItems(data.documents);
  return splitItems(data.examples);
}

function splitItems<T extends ClassificationExample | LmDocument>(items: T[]): Splits<T> {
  // Too few to hold out a tenth: all of it trains (evaluate with --eval-data).
  if (items.length < MIN_SPLIT) return { train: [...items], validation: [], test: [] };
  return splitBy(items, (e) => "text" in e ? e.text : `${e.prompt}\u0000${e.completion}`);
}
