/**
 * Merging into a Hugging Face model directory: the merged weights are
 * written with the base's tensor names, stored layout (GPT-2's Conv1D
 * weights stay `[in, out]`) and dtype, next to the base's config.json and
 * tokenizer files, so transformers' `from_pretrained` loads the result. A
 * trained `modules_to_save` head is carried over — also one the base lacks
 * (a new classification head), which turns the config into a
 * `*ForSequenceClassification` one with the adapter's class names.
 *
 * @module
 */
import type { LoadedModel } from "../nn/families.ts";
import { encodeSafetensors, type SafetensorsDType, type TensorInput } from "../io/safetensors.ts";
import { writeDirAtomic } from "../io/atomic.ts";
import { type Adapter, merge, type MergeRunner } from "./merge.ts";
import { matchesModule } from "./targets.ts";

/** What {@link mergeToHfFiles} did, by tensor name. */
export interface HfMergeReport {
  /** Targeted weights, replaced by `W + ΔW`. */
  readonly merged: string[];
  /** Base tensors replaced by a saved module of the adapter. */
  readonly replaced: string[];
  /** Saved-module tensors the base lacks (a new head). */
  readonly added: string[];
  /** Base tensors left out (the LM head of a model turned classifier). */
  readonly dropped: string[];
  /** Base tensors copied unchanged. */
  readonly copied: string[];
}

/** Files of a model directory that hold weights: the merged model.safetensors replaces them all. */
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|gguf|h5|msgpack)$|^model.*\.index\.json$/;

/**
 * transformers' sequence-classification architecture of a model class
 * (`GPT2LMHeadModel` → `GPT2ForSequenceClassification`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifierArchitecture } from "./merge_hf.ts";
 * assert.equal(classifierArchitecture("GPT2LMHeadModel"), "GPT2ForSequenceClassification");
 * assert.equal(classifierArchitecture("Qwen2ForCausalLM"), "Qwen2ForSequenceClassification");
 * ```
 */
export function classifierArchitecture(architecture: string): string {
  if (architecture.endsWith("ForSequenceClassification")) return architecture;
  return architecture.replace(/(LMHeadModel|ForCausalLM|Model)$/, "") + "ForSequenceClassification";
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  }
  return out;
}

/** The most common stored dtype of the base (new tensors get it). */
function mainDtype(dtypes: Record<string, string>): SafetensorsDType {
  const counts = new Map<string, number>();
  for (const d of Object.values(dtypes)) counts.set(d, (counts.get(d) ?? 0) + 1);
  return ([...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32") as SafetensorsDType;
}

type Report = { [K in keyof HfMergeReport]: string[] };

/** What every step of a merge reads: the base, the adapter and which of its modules were saved. */
interface MergeInputs {
  readonly model: LoadedModel;
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  readonly adapter: Adapter;
  readonly adapterParams: Readonly<Record<string, Float32Array>>;
  /** The adapter's trained copy of a tensor of a `modules_to_save` module, if it has one. */
  readonly saved: (name: string) => Float32Array | undefined;
  /** The adapter brings a classification head the base lacks: the LM head is left out. */
  readonly toClassifier: boolean;
}

function mergeInputs(
  model: LoadedModel,
  shapes: Readonly<Record<string, readonly number[]>>,
  adapter: Adapter,
  adapterParams: Readonly<Record<string, Float32Array>>,
): MergeInputs {
  const keep = adapter.config.modulesToSave;
  const saved = (name: string) => {
    const module = name.slice(0, name.lastIndexOf("."));
    return keep.length > 0 && matchesModule(module, keep) ? adapterParams[name] : undefined;
  };
  const head = model.family.classificationHead;
  const toClassifier = adapterParams[`${head}.weight`] !== undefined &&
    keep.some((m) => m === head) && model.weights[`${head}.weight`] === undefined;
  return { model, shapes, adapter, adapterParams, saved, toClassifier };
}

/** A graph-layout tensor in the base's stored layout (GPT-2's Conv1D weights back to `[in, out]`). */
function storedTensor(
  { model, shapes }: MergeInputs,
  name: string,
  data: Float32Array,
  dtype: string,
): TensorInput {
  const shape = shapes[name] ?? [data.length];
  const stored = model.family.storedLayout(name).transposed && shape.length === 2;
  return {
    dtype: dtype as SafetensorsDType,
    shape: stored ? [shape[1], shape[0]] : [...shape],
    data: stored ? transpose(data, shape[0], shape[1]) : data,
  };
}

/** Each base tensor merged, replaced by a saved module, dropped or copied, in the base's dtype. */
function baseTensors(
  inputs: MergeInputs,
  merged: Record<string, Float32Array>,
  tensors: Record<string, TensorInput>,
  report: Report,
) {
  const { model, shapes, adapter, toClassifier } = inputs;
  for (const name of Object.keys(model.weights)) {
    const dtype = model.dtypes[name] ?? "F32";
    const replacement = inputs.saved(name);
    if (toClassifier && name.startsWith("lm_head.")) report.dropped.push(name);
    else if (adapter.targets.some((t) => t.weight === name)) {
      tensors[name] = storedTensor(inputs, name, merged[name], dtype);
      report.merged.push(name);
    } else if (replacement !== undefined) {
      if (replacement.length !== model.weights[name].length) {
        throw new Error(
          `merge: saved module tensor ${name} has ${replacement.length} values, the base [${
            shapes[name]
          }]`,
        );
      }
      tensors[name] = storedTensor(inputs, name, replacement, dtype);
      report.replaced.push(name);
    } else {
      tensors[name] = storedTensor(inputs, name, model.weights[name], dtype);
      report.copied.push(name);
    }
  }
}

/** Saved-module tensors the base lacks (a new head), in the base's most common dtype. */
function addedTensors(inputs: MergeInputs, tensors: Record<string, TensorInput>, report: Report) {
  const { model } = inputs;
  const head = model.family.classificationHead;
  const dtype = mainDtype(model.dtypes);
  for (const [name, data] of Object.entries(inputs.adapterParams)) {
    if (name in model.weights || inputs.saved(name) === undefined) continue;
    const rows = name === `${head}.weight` ? data.length / model.config.hiddenSize : undefined;
    tensors[name] = {
      dtype,
      shape: rows === undefined ? [data.length] : [rows, model.config.hiddenSize],
      data,
    };
    report.added.push(name);
  }
}

/** The base's config.json, turned into a classifier's when the adapter saved a classification head. */
function mergedConfig({ model, adapter, adapterParams }: MergeInputs, id2label: unknown) {
  const config: Record<string, unknown> = { ...(model.source.configJson ?? {}) };
  const head = model.family.classificationHead;
  const headWeight = adapterParams[`${head}.weight`];
  if (headWeight === undefined || !adapter.config.modulesToSave.includes(head)) return config;
  const classes = headWeight.length / model.config.hiddenSize;
  const archs = Array.isArray(config.architectures) ? config.architectures as string[] : [];
  config.architectures = archs.length > 0
    ? archs.map(classifierArchitecture)
    : config.architectures;
  const names = Array.from({ length: classes }, (_, i) => `LABEL_${i}`);
  if (id2label && typeof id2label === "object") {
    for (const [k, v] of Object.entries(id2label)) {
      if (Number(k) >= 0 && Number(k) < classes && typeof v === "string") names[Number(k)] = v;
    }
  }
  config.id2label = Object.fromEntries(names.map((n, i) => [String(i), n]));
  config.label2id = Object.fromEntries(names.map((n, i) => [n, i]));
  config.num_labels = classes;
  return config;
}

/** The base directory's other files (tokenizer and such), read into `files`. */
async function readOtherFiles(dir: string, files: Record<string, Uint8Array | string>) {
  for await (const e of Deno.readDir(dir)) {
    if (e.name === "config.json" || WEIGHT_FILE.test(e.name)) continue;
    // The Hub cache links each file to its blob: follow links to files.
    const isFile = e.isFile || (e.isSymlink && (await Deno.stat(`${dir}/${e.name}`)).isFile);
    if (!isFile) continue;
    files[e.name] = await Deno.readFile(`${dir}/${e.name}`);
  }
}

/**
 * The files of the merged Hugging Face directory (`config.json`,
 * `model.safetensors` and every other non-weight file of the base, such as
 * the tokenizer's), and what was done to each tensor. `shapes` gives each
 * graph-layout weight's shape (`[out, in]` for linears).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { mergeToHfFiles } from "./merge_hf.ts";
 * // tests/adapters/merge_hf_test.ts merges adapters into the tiny GPT-2 and Llama fixtures.
 * strictEqual(typeof mergeToHfFiles, "function");
 * ```
 */
export async function mergeToHfFiles(
  model: LoadedModel,
  shapes: Readonly<Record<string, readonly number[]>>,
  adapter: Adapter,
  adapterParams: Readonly<Record<string, Float32Array>>,
  options: { runner?: MergeRunner; id2label?: unknown } = {},
): Promise<{ files: Record<string, Uint8Array | string>; report: HfMergeReport }> {
  const params: Record<string, Float32Array> = { ...adapterParams };
  for (const t of adapter.targets) params[t.weight] = model.weights[t.weight];
  const merged = await merge(adapter, params, { runner: options.runner, safe: true });
  const inputs = mergeInputs(model, shapes, adapter, adapterParams);
  const report: Report = { merged: [], replaced: [], added: [], dropped: [], copied: [] };
  const tensors: Record<string, TensorInput> = {};
  baseTensors(inputs, merged, tensors, report);
  addedTensors(inputs, tensors, report);
  const files: Record<string, Uint8Array | string> = {
    "config.json": JSON.stringify(mergedConfig(inputs, options.id2label), null, 2) + "\n",
    "model.safetensors": encodeSafetensors(tensors, { format: "pt" }),
  };
  await readOtherFiles(model.source.path, files);
  return { files, report };
}

/**
 * Merges an adapter into a Hugging Face directory and writes the merged
 * directory atomically (see {@link mergeToHfFiles}).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { mergeToHfDir } from "./merge_hf.ts";
 * strictEqual(typeof mergeToHfDir, "function");
 * ```
 */
export async function mergeToHfDir(
  out: string,
  ...args: Parameters<typeof mergeToHfFiles>
): Promise<HfMergeReport> {
  const { files, report } = await mergeToHfFiles(...args);
  await writeDirAtomic(out, files);
  return report;
}
