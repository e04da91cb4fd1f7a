/**
 * The native compact adapter: one safetensors file holding the config (with
 * the projection seed) in its metadata and only the trained vectors. The
 * projections are regenerated from the seed, so a VeRA adapter is a few
 * kilobytes where the PEFT export must carry `vera_A` and `vera_B`.
 *
 * A SHA-256 checksum over the kind, the config, every tensor and the first
 * values of the projections this version generates from the seed is stored
 * beside them and verified on read: a file whose seed, config or vectors
 * were changed — or that another generator would expand differently — is
 * refused instead of merging into different weights.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Graph } from "../compiler/ir.ts";
import { decodeSafetensors, encodeSafetensors, type TensorInput } from "../io/safetensors.ts";
import {
  lambdaBName,
  lambdaDName,
  vera,
  VERA_STREAM_A,
  VERA_STREAM_B,
  type VeraConfig,
} from "./vera.ts";
import { lora, loraAName, loraBName, type LoraConfig, loraRank } from "./lora.ts";
import type { Adapter } from "./merge.ts";
import { savedModuleParams } from "./peft.ts";
import { type PeftAdapterFiles, peftSource } from "./peft_import.ts";
import { resolveAdapter, type ResolvedAdapter, type ResolveOptions } from "./resolve.ts";
import { kaimingUniformBound, uniformSymmetric } from "../prng/threefry.ts";

/** Metadata key holding the adapter description. */
export const COMPACT_METADATA_KEY = "wgrad.adapter";
/** Format tag and version written into the metadata (version 2 added the checksum). */
export const COMPACT_FORMAT = "wgrad-compact/2";

/** How many leading projection values go into the checksum. */
const PROJECTION_PREFIX = 16;

function adapterParamNames(adapter: Adapter): { name: string; shape: number[] }[] {
  const r = adapter.config.r;
  return adapter.targets.flatMap((t) =>
    adapter.kind === "vera"
      ? [{ name: lambdaBName(t.module), shape: [t.outFeatures] }, {
        name: lambdaDName(t.module),
        shape: [r],
      }]
      : [
        { name: loraAName(t.module), shape: [loraRank(adapter.config, t.module), t.inFeatures] },
        { name: loraBName(t.module), shape: [t.outFeatures, loraRank(adapter.config, t.module)] },
      ]
  );
}

/** JSON with object keys sorted, so the checksum does not depend on key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value).sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * The checksum of a compact adapter: its kind and config, each tensor (name, shape, bytes) and,
 * for VeRA, the first projection values its seed generates here.
 */
function checksum(
  kind: string,
  config: unknown,
  tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
): string {
  const hash = createHash("sha256");
  hash.update(canonicalJson({ kind, config }));
  for (const name of [...tensors.keys()].sort()) {
    const { shape, data } = tensors.get(name)!;
    hash.update(`\n${name}[${shape.join(",")}]`);
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  if (kind === "vera") {
    const seed = (config as { projectionPrngKey?: number }).projectionPrngKey ?? 0;
    for (const stream of [VERA_STREAM_A, VERA_STREAM_B]) {
      const prefix = uniformSymmetric(seed, stream, PROJECTION_PREFIX, 1);
      hash.update(new Uint8Array(prefix.buffer));
    }
  }
  return hash.digest("hex");
}

function encode(
  kind: string,
  config: unknown,
  entries: Map<string, { shape: number[]; data: Float32Array }>,
): Uint8Array {
  const tensors: Record<string, TensorInput> = {};
  for (const [name, { shape, data }] of entries) tensors[name] = { dtype: "F32", shape, data };
  const description = {
    format: COMPACT_FORMAT,
    kind,
    config,
    checksum: checksum(kind, config, entries),
  };
  return encodeSafetensors(tensors, { [COMPACT_METADATA_KEY]: JSON.stringify(description) });
}

/**
 * Encodes an adapter compactly: config + seed in metadata, vectors as F32, and a checksum.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { encodeCompact } from "./compact.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(g, { r: 2, targetModules: ["q_proj"] });
 * assert.ok(encodeCompact(adapter, initParams(graph), graph).length < 1200);
 * ```
 */
export function encodeCompact(
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  graph?: Graph,
): Uint8Array {
  if (adapter.kind === "vera" && adapter.projections === "stored") {
    throw new Error(
      "compact export needs seeded projections; this adapter's came from a PEFT file",
    );
  }
  const entries = new Map<string, { shape: number[]; data: Float32Array }>();
  for (
    const { name, shape } of [
      ...adapterParamNames(adapter),
      ...(graph ? savedModuleParams(adapter, graph) : []),
    ]
  ) {
    const data = params[name];
    const size = shape.reduce((a, b) => a * b, 1);
    if (data === undefined || data.length !== size) {
      throw new Error(`compact export: tensor "${name}" missing or not of shape [${shape}]`);
    }
    entries.set(name, { shape, data });
  }
  return encode(adapter.kind, adapter.config, entries);
}

/** A compact file's description and tensors, its checksum verified. */
function readCompact(
  bytes: Uint8Array,
  where: string,
): {
  kind: "vera" | "lora";
  config: VeraConfig | LoraConfig;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
} {
  const fail = (message: string): never => {
    throw new Error(`compact adapter ${where}: ${message}`);
  };
  const file = decodeSafetensors(bytes);
  const text = file.metadata[COMPACT_METADATA_KEY];
  if (text === undefined) fail(`metadata has no "${COMPACT_METADATA_KEY}" entry`);
  let description: Record<string, unknown> = {};
  try {
    description = JSON.parse(text!);
  } catch (e) {
    fail(`metadata "${COMPACT_METADATA_KEY}" is not valid JSON (${(e as Error).message})`);
  }
  if (description === null || typeof description !== "object" || Array.isArray(description)) {
    fail(`metadata "${COMPACT_METADATA_KEY}" is not a JSON object`);
  }
  if (description.format === "wgrad-compact/1") {
    fail(
      `format wgrad-compact/1 carries no checksum, so changes to its seed or config cannot be ` +
        `detected; export it again from its PEFT directory (export --format compact)`,
    );
  }
  if (description.format !== COMPACT_FORMAT) {
    fail(`"format" is ${JSON.stringify(description.format)}, expected "${COMPACT_FORMAT}"`);
  }
  const { kind, config } = description;
  if (kind !== "vera" && kind !== "lora") {
    fail(`"kind" is ${JSON.stringify(kind)}, expected "vera" or "lora"`);
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    fail(`"config" must be a JSON object, got ${JSON.stringify(config)}`);
  }
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of file.tensors) {
    if (!(t.data instanceof Float32Array) || t.dtype !== "F32") {
      fail(`tensor ${name} is ${t.dtype}, expected F32`);
    }
    tensors.set(name, { shape: [...t.shape], data: t.data as Float32Array });
  }
  const expected = checksum(kind as string, config, tensors);
  if (description.checksum !== expected) {
    fail(
      `checksum mismatch: the config, seed or vectors were changed after the file was written ` +
        `(stored ${JSON.stringify(description.checksum)}, computed "${expected}")`,
    );
  }
  return {
    kind: kind as "vera" | "lora",
    config: config as VeraConfig | LoraConfig,
    tensors,
  };
}

/**
 * Decodes a compact adapter and applies it to `base`: returns the adapted
 * graph, the adapter, and its params keyed by graph name. The checksum and
 * every tensor's shape are verified; an unused tensor is an error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { decodeCompact, encodeCompact } from "./compact.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(g, { r: 2, targetModules: ["q_proj"] });
 * const back = decodeCompact(g, encodeCompact(adapter, initParams(graph)));
 * assert.equal(back.adapter.targets.length, 1);
 * ```
 */
export function decodeCompact(
  base: Graph,
  bytes: Uint8Array,
): { graph: Graph; adapter: Adapter; params: Record<string, Float32Array> } {
  const { kind, config, tensors } = readCompact(bytes, "<memory>");
  const result = kind === "vera"
    ? vera(base, config as VeraConfig)
    : lora(base, config as LoraConfig);
  const params: Record<string, Float32Array> = {};
  const saved = savedModuleParams(result.adapter, result.graph);
  for (const { name, shape } of [...adapterParamNames(result.adapter), ...saved]) {
    const t = tensors.get(name);
    if (t === undefined) {
      if (saved.some((p) => p.name === name)) continue;
      throw new Error(`compact adapter: missing tensor ${name}`);
    }
    if (t.shape.join() !== shape.join()) {
      throw new Error(
        `compact adapter: tensor ${name} is [${t.shape}], the model needs [${shape}]`,
      );
    }
    params[name] = t.data;
  }
  const unused = [...tensors.keys()].sort().find((name) => !(name in params));
  if (unused !== undefined) {
    throw new Error(`compact adapter: tensor ${unused} is not used by its config`);
  }
  return { ...result, params };
}

function checkProjections(files: PeftAdapterFiles, seed: number, r: number): void {
  const a = files.shapes.vera_A, b = files.shapes.vera_B;
  if (a === undefined || b === undefined) {
    throw new Error("compact export: the VeRA adapter has no vera_A/vera_B");
  }
  const wantA = uniformSymmetric(seed, VERA_STREAM_A, r * a[1], kaimingUniformBound(a[1]));
  const wantB = uniformSymmetric(seed, VERA_STREAM_B, b[0] * r, kaimingUniformBound(r));
  const same = (x: Float32Array, y: Float32Array) =>
    x.length === y.length &&
    new Uint32Array(x.buffer, x.byteOffset, x.length).every((w, i) =>
      w === new Uint32Array(y.buffer, y.byteOffset, y.length)[i]
    );
  if (!same(files.tensors.vera_A, wantA) || !same(files.tensors.vera_B, wantB)) {
    throw new Error(
      `compact export: the stored projections are not the ones seed ${seed} generates here ` +
        "(they likely come from PyTorch's generator); keep the PEFT format, which stores them",
    );
  }
}

/**
 * Rewrites a PEFT adapter directory's contents as a compact file, after the
 * same checks a merge makes (`resolveAdapter`). VeRA projections must be the
 * ones this project generates from the seed (adapters exported by wgrad);
 * PEFT-made VeRA adapters keep the PEFT format.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compactFromPeft } from "./compact.ts";
 * const files = { kind: "lora" as const, config: { peft_type: "LORA", r: 1, target_modules: ["q"] },
 *   tensors: { "q.lora_A.weight": new Float32Array(2), "q.lora_B.weight": new Float32Array(2) },
 *   shapes: { "q.lora_A.weight": [1, 2], "q.lora_B.weight": [2, 1] } };
 * assert.ok(compactFromPeft(files).length > 0);
 * ```
 */
export function compactFromPeft(files: PeftAdapterFiles, where = "<memory>"): Uint8Array {
  const resolved = resolveAdapter(peftSource(files, where));
  const { adapter } = resolved;
  if (adapter.kind === "vera") {
    checkProjections(files, adapter.config.projectionPrngKey, adapter.config.r);
  }
  const entries = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, data] of Object.entries(resolved.tensors)) {
    if (name === "vera_A" || name === "vera_B") continue;
    entries.set(name, { shape: [...files.shapes[name]], data });
  }
  return encode(adapter.kind, adapter.config, entries);
}

/**
 * Reads a compact adapter against a model's stored weight shapes alone (no
 * graph), with the checksum and the same checks as a PEFT adapter
 * (`resolveAdapter`): the adapter (seeded projections) and its tensors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adapterFromCompact, compactFromPeft } from "./compact.ts";
 * const bytes = compactFromPeft({ kind: "lora", config: { peft_type: "LORA", r: 1, target_modules: ["q"] },
 *   tensors: { "q.lora_A.weight": new Float32Array(2), "q.lora_B.weight": new Float32Array(2) },
 *   shapes: { "q.lora_A.weight": [1, 2], "q.lora_B.weight": [2, 1] } });
 * assert.equal(adapterFromCompact(bytes, { "q.weight": [2, 2] }).adapter.kind, "lora");
 * ```
 */
export function adapterFromCompact(
  bytes: Uint8Array,
  weights: Readonly<Record<string, readonly number[]>>,
  where = "<memory>",
  options: ResolveOptions = {},
): ResolvedAdapter {
  const { kind, config, tensors } = readCompact(bytes, where);
  return resolveAdapter(
    {
      kind,
      config,
      tensors: Object.fromEntries([...tensors].map(([n, t]) => [n, t.data])),
      shapes: Object.fromEntries([...tensors].map(([n, t]) => [n, t.shape])),
      projections: "seed",
      where: `compact adapter ${where}`,
    },
    weights,
    options,
  );
}
