/**
 * Training checkpoints: everything a run needs to continue exactly where it
 * stopped — the params that training changes (trainable weights and
 * optimizer state), the step, the data iterator's position, the RNG state
 * and the run's config — in one safetensors file. Tensors are the params
 * (F32, by module path; optimizer state as `optim.<state>.<param>`); the
 * `__metadata__` key `wgrad.checkpoint` holds the rest as JSON.
 *
 * Writes are atomic (temporary sibling, fsync, rename: io/atomic.ts), so a
 * crash or a kill mid-write leaves the previous checkpoint whole.
 *
 * Also here: base model files (what `pretrain` writes and `finetune`
 * reads), the weights plus the GPT config under the metadata key `wgrad.gpt`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * const path = `${await Deno.makeTempDir()}/checkpoint.safetensors`;
 * await saveCheckpoint(path, {
 *   step: 10,
 *   params: { "classifier.weight": new Float32Array(4) },
 *   shapes: { "classifier.weight": [2, 2] },
 *   data: { epoch: 0, index: 10, seed: 0 },
 *   rng: { seed: 0 },
 *   config: { method: "vera" },
 * });
 * strictEqual((await loadCheckpoint(path)).step, 10);
 * ```
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { type GptConfig, gptGraph } from "../nn/gpt.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type TensorInput,
  writeSafetensors,
} from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { readFileBounded } from "../io/read_file.ts";

/**
 * The `__metadata__` key holding a checkpoint's JSON.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { CHECKPOINT_METADATA_KEY, encodeCheckpoint } from "./checkpoint.ts";
 * import { decodeSafetensors } from "../io/safetensors.ts";
 * const bytes = encodeCheckpoint({ step: 1, params: {} });
 * strictEqual(JSON.parse(decodeSafetensors(bytes).metadata[CHECKPOINT_METADATA_KEY]).step, 1);
 * ```
 */
export const CHECKPOINT_METADATA_KEY = "wgrad.checkpoint";

/**
 * The format tag written into that JSON.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { CHECKPOINT_FORMAT } from "./checkpoint.ts";
 * strictEqual(CHECKPOINT_FORMAT, "wgrad-checkpoint/1");
 * ```
 */
export const CHECKPOINT_FORMAT = "wgrad-checkpoint/1";

/**
 * A plain JSON value (what the data, RNG and config fields hold).
 *
 * @example
 * ```ts
 * import type { Json } from "./checkpoint.ts";
 * const config: Json = { method: "vera", r: 256, targets: ["q_proj", "v_proj"] };
 * ```
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * What a checkpoint holds.
 *
 * @example
 * ```ts
 * import type { Checkpoint } from "./checkpoint.ts";
 * const c: Checkpoint = { step: 0, params: { w: new Float32Array(2) }, data: { epoch: 0, index: 0, seed: 0 } };
 * ```
 */
export interface Checkpoint {
  /** Steps completed (the next step to run is `step + 1`). */
  readonly step: number;
  /** Params training changes: trainable weights and optimizer state, as f32. */
  readonly params: Readonly<Record<string, Float32Array>>;
  /** Each param's shape (default: one dimension of its length). */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
  /** The data iterator's state (e.g. `{ epoch, index, seed }`), to resume its batches. */
  readonly data?: Json;
  /** The RNG state (e.g. the base seed of the per-step dropout seeds). */
  readonly rng?: Json;
  /** The run's config, to check that a resumed run is the same run. */
  readonly config?: Json;
}

/**
 * A checkpoint read back: shapes are always present.
 *
 * @example
 * ```ts
 * import { type LoadedCheckpoint, loadCheckpoint } from "./checkpoint.ts";
 * const shapesOf = async (path: string) => ((await loadCheckpoint(path)) as LoadedCheckpoint).shapes;
 * ```
 */
export interface LoadedCheckpoint extends Checkpoint {
  /** Each param's shape, as stored. */
  readonly shapes: Readonly<Record<string, readonly number[]>>;
}

/**
 * The bytes of a checkpoint file (a safetensors file; see the module doc).
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { encodeCheckpoint } from "./checkpoint.ts";
 * const bytes = encodeCheckpoint({ step: 1, params: { w: new Float32Array([1, 2]) } });
 * ok(bytes.length > 0);
 * ```
 */
export function encodeCheckpoint(checkpoint: Checkpoint): Uint8Array {
  const { step, params, shapes = {} } = checkpoint;
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new Error(`checkpoint: step must be an integer ≥ 0, got ${step}`);
  }
  const tensors: Record<string, TensorInput> = {};
  for (const [name, data] of Object.entries(params)) {
    if (!(data instanceof Float32Array)) {
      throw new Error(`checkpoint: param "${name}" must be a Float32Array`);
    }
    tensors[name] = { dtype: "F32", shape: shapes[name] ?? [data.length], data };
  }
  const meta = {
    format: CHECKPOINT_FORMAT,
    step,
    data: checkpoint.data ?? null,
    rng: checkpoint.rng ?? null,
    config: checkpoint.config ?? null,
  };
  return encodeSafetensors(tensors, { [CHECKPOINT_METADATA_KEY]: JSON.stringify(meta) });
}

/**
 * Writes a checkpoint atomically: readers (and a crash at any moment) see
 * the previous file or the complete new one, never a partial write.
 *
 * @example
 * ```ts
 * import { saveCheckpoint } from "./checkpoint.ts";
 * const path = `${await Deno.makeTempDir()}/ckpt.safetensors`;
 * await saveCheckpoint(path, { step: 3, params: { w: new Float32Array([0.5]) } });
 * ```
 */
export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(checkpoint));
}

/**
 * Decodes checkpoint bytes; `where` names the source in errors.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeCheckpoint, encodeCheckpoint } from "./checkpoint.ts";
 * const bytes = encodeCheckpoint({ step: 2, params: { w: new Float32Array(3) }, rng: { seed: 7 } });
 * deepStrictEqual(decodeCheckpoint(bytes).rng, { seed: 7 });
 * ```
 */
export function decodeCheckpoint(bytes: Uint8Array, where = "checkpoint"): LoadedCheckpoint {
  const file = decodeSafetensors(bytes);
  const raw = file.metadata[CHECKPOINT_METADATA_KEY];
  if (raw === undefined) {
    throw new Error(`${where}: not a wgrad checkpoint (no "${CHECKPOINT_METADATA_KEY}" metadata)`);
  }
  let meta: Record<string, Json>;
  try {
    meta = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${where}: "${CHECKPOINT_METADATA_KEY}" is not JSON: ${(e as Error).message}`);
  }
  if (meta === null || typeof meta !== "object" || meta.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `${where}: unsupported checkpoint format ${
        JSON.stringify((meta as Record<string, Json> | null)?.format)
      } (expected "${CHECKPOINT_FORMAT}")`,
    );
  }
  const step = meta.step;
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw new Error(
      `${where}: its "step" field must be an integer ≥ 0, got ${JSON.stringify(step)}`,
    );
  }
  const params: Record<string, Float32Array> = {};
  const shapes: Record<string, number[]> = {};
  for (const [name, t] of file.tensors) {
    if (t.dtype !== "F32") throw new Error(`${where}: tensor "${name}" is ${t.dtype}, not F32`);
    params[name] = t.data as Float32Array;
    shapes[name] = t.shape;
  }
  return { step, params, shapes, data: meta.data, rng: meta.rng, config: meta.config };
}

/**
 * Reads a checkpoint written by {@link saveCheckpoint}. Errors name the file
 * and what is wrong (missing, not safetensors, not a checkpoint).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * const path = `${await Deno.makeTempDir()}/ckpt.safetensors`;
 * await saveCheckpoint(path, { step: 5, params: { w: new Float32Array([1]) }, data: { index: 5 } });
 * const ckpt = await loadCheckpoint(path);
 * strictEqual(ckpt.step, 5);
 * deepStrictEqual(ckpt.data, { index: 5 });
 * deepStrictEqual(ckpt.params.w, new Float32Array([1]));
 * ```
 */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileBounded(path, Number.MAX_SAFE_INTEGER, "checkpoint");
  } catch (e) {
    const message = (e as Error).message;
    throw new Error(
      message.startsWith("checkpoint") ? message : `cannot read checkpoint ${path}: ${message}`,
    );
  }
  try {
    return decodeCheckpoint(bytes, path);
  } catch (e) {
    const message = (e as Error).message;
    throw new Error(message.startsWith(path) ? message : `${path}: ${message}`);
  }
}

/**
 * The `__metadata__` key of a base model file that holds its GPT config as JSON.
 *
 * @example
 * ```ts
 * import { GPT_METADATA_KEY } from "./checkpoint.ts";
 * import { readSafetensors } from "../io/safetensors.ts";
 * const configOf = async (path: string) => JSON.parse((await readSafetensors(path)).metadata[GPT_METADATA_KEY]);
 * ```
 */
export const GPT_METADATA_KEY = "wgrad.gpt";

/**
 * Writes a pretrained model atomically: every param of `graph` as F32 and the
 * model config as JSON under the `wgrad.gpt` metadata key, so later commands
 * can rebuild the graph.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { loadBaseModel, saveBaseModel } from "./checkpoint.ts";
 * const config = { vocabSize: 16, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" as const };
 * const graph = gptGraph(config, { batch: 1, seqLen: 4 });
 * const path = `${await Deno.makeTempDir()}/base.safetensors`;
 * await saveBaseModel(path, config, graph, initParams(graph));
 * strictEqual((await loadBaseModel(path)).config.dModel, 4);
 * ```
 */
export async function saveBaseModel(
  path: string,
  config: GptConfig,
  graph: Graph,
  params: Readonly<Record<string, Float32Array>>,
): Promise<void> {
  const tensors: Record<string, TensorInput> = {};
  for (const p of graph.params) {
    tensors[p.name!] = { dtype: "F32", shape: p.shape, data: params[p.name!] };
  }
  await writeSafetensors(path, tensors, { [GPT_METADATA_KEY]: JSON.stringify(config) });
}

/**
 * Reads a base model written by {@link saveBaseModel} (the `pretrain`
 * command): its GPT config and its f32 weights. Errors name the file and
 * what is wrong (unreadable, no `wgrad.gpt` metadata, a config that does not
 * build, a non-F32 tensor).
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { loadBaseModel } from "./checkpoint.ts";
 * await rejects(loadBaseModel("missing.safetensors"), { message: /^cannot read base model / });
 * ```
 */
export async function loadBaseModel(
  path: string,
): Promise<{ config: GptConfig; weights: Record<string, Float32Array> }> {
  const file = await readSafetensors(path).catch((e: Error) => {
    throw new Error(`cannot read base model ${path}: ${e.message}`);
  });
  const raw = file.metadata[GPT_METADATA_KEY];
  if (raw === undefined) {
    throw new Error(
      `${path}: no "${GPT_METADATA_KEY}" metadata (not a base model written by pretrain)`,
    );
  }
  const weights: Record<string, Float32Array> = {};
  for (const [name, t] of file.tensors) {
    if (t.dtype !== "F32") throw new Error(`${path}: tensor "${name}" is ${t.dtype}, not F32`);
    weights[name] = t.data as Float32Array;
  }
  const config = baseConfig(raw, path, weights);
  let body: Graph;
  try {
    body = gptGraph({ ...config, head: "lm" }, { batch: 1, seqLen: config.maxSeqLen });
  } catch (e) {
    throw new Error(`${path}: bad "${GPT_METADATA_KEY}" metadata: ${(e as Error).message}`);
  }
  // The config must describe the file: a claimed width the tensors do not have is refused here,
  // before anything is sized from it.
  for (const p of body.params) {
    if (p.name === "lm_head.weight") continue;
    const t = file.tensors.get(p.name!);
    if (t === undefined || t.shape.join() !== p.shape.join()) {
      throw new Error(
        `${path}: "${GPT_METADATA_KEY}" metadata does not fit the file: the model needs ` +
          `${p.name} [${p.shape}], the file has ${t ? `[${t.shape}]` : "no such tensor"}`,
      );
    }
  }
  return { config, weights };
}

/**
 * A base model's config read field by field (errors name `where` and the field), bounded by the
 * weights the file holds, so a forged config cannot make the model graph huge.
 */
function baseConfig(raw: string, path: string, weights: Record<string, Float32Array>): GptConfig {
  const where = `${path}: bad "${GPT_METADATA_KEY}" metadata`;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${where}: must be a JSON object, got ${JSON.stringify(value)}`);
  }
  const config = value as Record<string, unknown>;
  const values = Object.values(weights).reduce((n, w) => n + w.length, 0);
  const tensors = Object.keys(weights).length;
  const int = (field: string, max: number, what: string) => {
    const v = config[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
      throw new Error(`${where}: "${field}" must be an integer ≥ 1, got ${JSON.stringify(v)}`);
    }
    if (v > max) throw new Error(`${where}: "${field}" is ${v}, more than ${what} (${max})`);
    return v;
  };
  const dModel = int("dModel", Number.MAX_SAFE_INTEGER, "");
  const heads = int("heads", Number.MAX_SAFE_INTEGER, "");
  if (dModel % heads !== 0) {
    // The model's own rule (nn/gpt.ts), checked before the size bounds below.
    throw new Error(`${where}: gpt: ${heads} heads do not divide dModel ${dModel}`);
  }
  int("dModel", values, "the file's weight values");
  const head = config.head ?? "lm";
  if (head !== "lm" && head !== "classifier") {
    throw new Error(`${where}: "head" must be "lm" or "classifier", got ${JSON.stringify(head)}`);
  }
  return {
    ...(config as unknown as GptConfig),
    vocabSize: int("vocabSize", Math.floor(values / dModel), "its weights can embed"),
    maxSeqLen: int("maxSeqLen", Math.floor(values / dModel), "its weights can embed"),
    dModel,
    heads,
    layers: int("layers", tensors, "the file's tensors"),
    head,
  };
}
