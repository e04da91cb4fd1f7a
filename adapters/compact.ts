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
import { lambdaBName, lambdaDName, vera } from "./vera.ts";
import { lora, loraAName, loraBName } from "./lora.ts";
import type { Adapter } from "./merge.ts";
import { savedModuleParams } from "./peft.ts";

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
        { name: loraAName(t.module), shape: [r, t.inFeatures] },
        { name: loraBName(t.module), shape: [t.outFeatures, r] },
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
