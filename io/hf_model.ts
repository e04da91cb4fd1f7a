/**
 * Hugging Face model directories: `config.json`, weights in `model.safetensors` or sharded behind
 * `model.safetensors.index.json` (F32, F16 or BF16, widened to f32), and `tokenizer.json`.
 * Weights come out in graph layout (`[out, in]`), transposed where the family stores them
 * `[in, out]` (GPT-2's Conv1D), and are checked against the shapes of the family's graph.
 *
 * @module
 */
import { loadHfTokenizer } from "../data/hf_tokenizer.ts";
import { getFamily } from "../nn/family_registry.ts";
import type { LoadedModel, ModelFamily } from "../nn/family_types.ts";
import { readSafetensors } from "./safetensors.ts";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const text = await Deno.readTextFile(path).catch((e: Error) => {
    throw new Error(`cannot read ${path}: ${e.message}`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(json)) throw new Error(`${path}: expected a JSON object`);
  return json;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Tensors the checkpoint may hold that are not weights (GPT-2's old causal-mask buffers). */
const BUFFER = /\.attn\.(masked_)?bias$/;
const FLOAT_DTYPES = new Set(["F32", "F16", "BF16"]);

interface RawTensor {
  dtype: string;
  shape: number[];
  data: Float32Array;
  file: string;
}

async function readShard(path: string, wanted?: Set<string>): Promise<Map<string, RawTensor>> {
  const file = await readSafetensors(path).catch((e: Error) => {
    throw new Error(`cannot read ${path}: ${e.message}`);
  });
  const out = new Map<string, RawTensor>();
  for (const [name, t] of file.tensors) {
    if (wanted && !wanted.has(name)) continue;
    if (BUFFER.test(name)) continue;
    if (!FLOAT_DTYPES.has(t.dtype)) {
      throw new Error(`${path}: tensor "${name}" is ${t.dtype}; weights must be F32, F16 or BF16`);
    }
    out.set(name, { dtype: t.dtype, shape: t.shape, data: t.data as Float32Array, file: path });
  }
  return out;
}

/**
 * Every tensor of the directory's checkpoint, as stored (no transposition), from
 * `model.safetensors` or the shards named by `model.safetensors.index.json`.
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { readHfWeights } from "./hf_model.ts";
 * await rejects(readHfWeights("no-such-dir"), { message: /^no-such-dir: neither model.safetensors nor / });
 * ```
 */
export async function readHfWeights(
  dir: string,
): Promise<Map<string, { dtype: string; shape: number[]; data: Float32Array; file: string }>> {
  const single = `${dir}/model.safetensors`;
  const indexPath = `${dir}/model.safetensors.index.json`;
  if (await exists(indexPath)) {
    const index = await readJsonObject(indexPath);
    const map = index.weight_map;
    if (!isRecord(map)) throw new Error(`${indexPath}: field "weight_map" must be an object`);
    const byShard = new Map<string, Set<string>>();
    for (const [name, shard] of Object.entries(map)) {
      if (
        typeof shard !== "string" || shard === "" || shard.includes("/") || shard.includes("\\")
      ) {
        throw new Error(
          `${indexPath}: field "weight_map" entry "${name}" must be a shard file name in ${dir}`,
        );
      }
      if (!byShard.has(shard)) byShard.set(shard, new Set());
      byShard.get(shard)!.add(name);
    }
    if (byShard.size === 0) throw new Error(`${indexPath}: field "weight_map" is empty`);
    const all = new Map<string, RawTensor>();
    for (const [shard, names] of byShard) {
      const path = `${dir}/${shard}`;
      if (!(await exists(path))) {
        throw new Error(`${indexPath}: shard "${shard}" (of tensor "${[...names][0]}") is missing`);
      }
      const tensors = await readShard(path, names);
      for (const name of names) {
        if (!tensors.has(name) && !BUFFER.test(name)) {
          throw new Error(`${path}: tensor "${name}" listed in ${indexPath} is not in the shard`);
        }
      }
      for (const [name, t] of tensors) all.set(name, t);
    }
    return all;
  }
  if (await exists(single)) return await readShard(single);
  throw new Error(`${dir}: neither model.safetensors nor model.safetensors.index.json found`);
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  }
  return out;
}

/**
 * Turns stored tensors into graph-layout weights, checking each against the family's LM graph:
 * a missing weight or a wrong shape is an error naming the tensor and the file. Tensors the graph
 * does not use (e.g. a saved `score.weight`) are kept, transposed by the same rule.
 */
function toGraphLayout(
  family: ModelFamily,
  config: LoadedModel["config"],
  stored: Map<string, RawTensor>,
  dir: string,
): { weights: Record<string, Float32Array>; dtypes: Record<string, string> } {
  const weights: Record<string, Float32Array> = {};
  const dtypes: Record<string, string> = {};
  const shapes = new Map<string, number[]>();
  for (const [name, t] of stored) {
    const transposed = family.storedLayout(name).transposed && t.shape.length === 2;
    weights[name] = transposed ? transpose2d(t.data, t.shape[0], t.shape[1]) : t.data;
    shapes.set(name, transposed ? [t.shape[1], t.shape[0]] : t.shape);
    dtypes[name] = t.dtype;
  }
  const graph = family.graph(config, { batch: 1, seqLen: 1, task: "lm" });
  for (const p of graph.params) {
    const name = p.name!;
    // Checkpoints saved from the bare base model (GPT2Model, LlamaModel; e.g. the original gpt2)
    // lack the "transformer." / "model." prefix that the *LMHeadModel names carry.
    const bare = name.slice(name.indexOf(".") + 1);
    if (!shapes.has(name) && name.includes(".") && shapes.has(bare)) {
      weights[name] = weights[bare];
      dtypes[name] = dtypes[bare];
      shapes.set(name, shapes.get(bare)!);
      stored.set(name, stored.get(bare)!);
      delete weights[bare];
      delete dtypes[bare];
    }
    const shape = shapes.get(name);
    if (!shape) throw new Error(`${dir}: checkpoint has no tensor "${name}"`);
    const want = [...p.shape];
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      const t = stored.get(name)!;
      const storedWant = family.storedLayout(name).transposed && want.length === 2
        ? [want[1], want[0]]
        : want;
      throw new Error(
        `${t.file}: tensor "${name}" has shape [${t.shape}], config.json implies [${storedWant}]`,
      );
    }
  }
  return { weights, dtypes };
}

/**
 * Loads a Hugging Face model directory through the family its `config.json` `model_type` names.
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { loadHfModel } from "./hf_model.ts";
 * await rejects(loadHfModel("no-such-dir"), { message: /^cannot read no-such-dir\/config.json: / });
 * ```
 */
export async function loadHfModel(dir: string): Promise<LoadedModel> {
  const configPath = `${dir}/config.json`;
  const json = await readJsonObject(configPath);
  const modelType = json.model_type;
  if (typeof modelType !== "string") {
    throw new Error(`${configPath}: field "model_type" must be a string`);
  }
  let family: ModelFamily;
  try {
    family = getFamily(modelType);
  } catch (e) {
    throw new Error(`${configPath}: field "model_type": ${(e as Error).message}`);
  }
  const config = family.configFromJson(json, configPath);
  const stored = await readHfWeights(dir);
  const { weights, dtypes } = toGraphLayout(family, config, stored, dir);
  const tokenizer = await loadHfTokenizer(dir);
  return {
    family,
    config,
    weights,
    dtypes,
    tokenizer,
    source: { path: dir, kind: "hf-dir", configJson: json },
  };
}
