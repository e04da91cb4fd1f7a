/**
 * The native compact adapter: one safetensors file holding the config (with
 * the projection seed) in its metadata and only the trained vectors. The
 * projections are regenerated from the seed, so a VeRA adapter is a few
 * kilobytes where the PEFT export must carry `vera_A` and `vera_B`.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { decodeSafetensors, encodeSafetensors, type TensorInput } from "../io/safetensors.ts";
import {
  lambdaBName,
  lambdaDName,
  type ResolvedVeraConfig,
  resolveVeraConfig,
  vera,
  VERA_STREAM_A,
  VERA_STREAM_B,
} from "./vera.ts";
import { lora, loraAName, loraBName, loraRank, resolveLoraConfig } from "./lora.ts";
import type { Adapter } from "./merge.ts";
import { savedModuleParams } from "./peft.ts";
import { adapterConfigFromPeft, type PeftAdapterFiles } from "./peft_import.ts";
import { findTargets, weightsGraph } from "./targets.ts";
import { kaimingUniformBound, uniformSymmetric } from "../runtime/threefry.ts";

/** Metadata key holding the adapter description. */
export const COMPACT_METADATA_KEY = "wgrad.adapter";
/** Format tag and version written into the metadata. */
export const COMPACT_FORMAT = "wgrad-compact/1";

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

/**
 * Encodes an adapter compactly: config + seed in metadata, vectors as F32.
 *
 * @example
 * ```ts
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { encodeCompact } from "./compact.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(g, { r: 2, targetModules: ["q_proj"] });
 * console.log(encodeCompact(adapter, initParams(graph), graph).length < 1000); // true
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
  const tensors: Record<string, TensorInput> = {};
  const entries = [
    ...adapterParamNames(adapter),
    ...(graph ? savedModuleParams(adapter, graph) : []),
  ];
  for (const { name, shape } of entries) {
    const data = params[name];
    const size = shape.reduce((a, b) => a * b, 1);
    if (data === undefined || data.length !== size) {
      throw new Error(`compact export: tensor "${name}" missing or not of shape [${shape}]`);
    }
    tensors[name] = { dtype: "F32", shape, data };
  }
  const description = { format: COMPACT_FORMAT, kind: adapter.kind, config: adapter.config };
  return encodeSafetensors(tensors, { [COMPACT_METADATA_KEY]: JSON.stringify(description) });
}

/**
 * Decodes a compact adapter and applies it to `base`: returns the adapted
 * graph, the adapter, and its params keyed by graph name.
 *
 * @example
 * ```ts
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { decodeCompact, encodeCompact } from "./compact.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(g, { r: 2, targetModules: ["q_proj"] });
 * const back = decodeCompact(g, encodeCompact(adapter, initParams(graph)));
 * console.log(back.adapter.targets.length); // 1
 * ```
 */
export function decodeCompact(
  base: Graph,
  bytes: Uint8Array,
): { graph: Graph; adapter: Adapter; params: Record<string, Float32Array> } {
  const file = decodeSafetensors(bytes);
  const text = file.metadata[COMPACT_METADATA_KEY];
  if (text === undefined) {
    throw new Error(`compact adapter: metadata has no "${COMPACT_METADATA_KEY}" entry`);
  }
  let description: { format?: unknown; kind?: unknown; config?: unknown };
  try {
    description = JSON.parse(text);
  } catch (e) {
    throw new Error(`compact adapter: metadata is not valid JSON (${(e as Error).message})`);
  }
  if (description.format !== COMPACT_FORMAT) {
    throw new Error(
      `compact adapter: format ${JSON.stringify(description.format)}, expected ${COMPACT_FORMAT}`,
    );
  }
  if (typeof description.config !== "object" || description.config === null) {
    throw new Error("compact adapter: config missing");
  }
  // deno-lint-ignore no-explicit-any
  const config = description.config as any;
  const result = description.kind === "vera"
    ? vera(base, config)
    : description.kind === "lora"
    ? lora(base, config)
    : (() => {
      throw new Error(`compact adapter: unknown kind ${JSON.stringify(description.kind)}`);
    })();
  const params: Record<string, Float32Array> = {};
  const entries = [
    ...adapterParamNames(result.adapter),
    ...savedModuleParams(result.adapter, result.graph),
  ];
  for (const { name, shape } of entries) {
    const t = file.tensors.get(name);
    if (t === undefined) {
      if (savedModuleParams(result.adapter, result.graph).some((p) => p.name === name)) continue;
      throw new Error(`compact adapter: missing tensor ${name}`);
    }
    if (t.shape.join() !== shape.join() || !(t.data instanceof Float32Array)) {
      throw new Error(
        `compact adapter: tensor ${name} is ${t.dtype}[${t.shape}], the model needs F32[${shape}]`,
      );
    }
    params[name] = t.data;
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
 * Converts a PEFT adapter directory's contents into the compact format. For
 * VeRA this is allowed only when the stored projections are exactly the ones
 * this project regenerates from `projection_prng_key` (checked bit for bit).
 *
 * @example
 * ```ts
 * import { compactFromPeft } from "./compact.ts";
 * const lora = { kind: "lora" as const, config: { peft_type: "LORA", r: 1, lora_alpha: 2, target_modules: ["q"] },
 *   tensors: { "q.lora_A.weight": new Float32Array(2), "q.lora_B.weight": new Float32Array(2) },
 *   shapes: { "q.lora_A.weight": [1, 2], "q.lora_B.weight": [2, 1] } };
 * console.log(compactFromPeft(lora).length > 0); // true
 * ```
 */
export function compactFromPeft(files: PeftAdapterFiles): Uint8Array {
  const described = adapterConfigFromPeft(files);
  let config: ResolvedVeraConfig | ReturnType<typeof resolveLoraConfig>;
  if (described.kind === "vera") {
    const resolved = resolveVeraConfig(described.config);
    checkProjections(files, resolved.projectionPrngKey, resolved.r);
    config = resolved;
  } else {
    config = resolveLoraConfig(described.config);
  }
  const tensors: Record<string, TensorInput> = {};
  for (const [name, data] of Object.entries(files.tensors)) {
    if (name === "vera_A" || name === "vera_B") continue;
    tensors[name] = { dtype: "F32", shape: files.shapes[name], data };
  }
  const description = { format: COMPACT_FORMAT, kind: files.kind, config };
  return encodeSafetensors(tensors, { [COMPACT_METADATA_KEY]: JSON.stringify(description) });
}

/**
 * Reads a compact adapter against a model's weight shapes alone (no graph):
 * the adapter (seeded projections) and its tensors by graph name.
 *
 * @example
 * ```ts
 * import { adapterFromCompact, compactFromPeft } from "./compact.ts";
 * const bytes = compactFromPeft({ kind: "lora", config: { peft_type: "LORA", r: 1, target_modules: ["q"] },
 *   tensors: { "q.lora_A.weight": new Float32Array(2), "q.lora_B.weight": new Float32Array(2) },
 *   shapes: { "q.lora_A.weight": [1, 2], "q.lora_B.weight": [2, 1] } });
 * console.log(adapterFromCompact(bytes, { "q.weight": [2, 2] }).adapter.kind); // "lora"
 * ```
 */
export function adapterFromCompact(
  bytes: Uint8Array,
  weights: Readonly<Record<string, readonly number[]>>,
): { adapter: Adapter; tensors: Record<string, Float32Array> } {
  const file = decodeSafetensors(bytes);
  const text = file.metadata[COMPACT_METADATA_KEY];
  if (text === undefined) {
    throw new Error(`compact adapter: metadata has no "${COMPACT_METADATA_KEY}" entry`);
  }
  const description = JSON.parse(text);
  if (description.format !== COMPACT_FORMAT) {
    throw new Error(`compact adapter: unknown format ${description.format}`);
  }
  const graph = weightsGraph(weights);
  const targets = findTargets(graph, description.config);
  const tensors: Record<string, Float32Array> = {};
  for (const [name, t] of file.tensors) {
    if (!(t.data instanceof Float32Array)) {
      throw new Error(`compact adapter: ${name} is ${t.dtype}, expected F32`);
    }
    tensors[name] = t.data;
  }
  const adapter: Adapter = description.kind === "vera"
    ? {
      kind: "vera",
      config: resolveVeraConfig(description.config),
      targets,
      maxIn: Math.max(...targets.map((t) => t.inFeatures)),
      maxOut: Math.max(...targets.map((t) => t.outFeatures)),
      projections: "seed",
    }
    : { kind: "lora", config: resolveLoraConfig(description.config), targets };
  return { adapter, tensors };
}
