/**
 * Folding an adapter into its base weights, as compiled graphs: the merge of
 * every targeted layer is one graph (`W ± ΔW` per layer) that runs on the CPU
 * reference or on the GPU like any other.
 *
 * VeRA: `ΔW = (lambdaB[:, None] ⊙ B_s) @ (lambdaD[:, None] ⊙ A_s)`.
 * LoRA: `ΔW = (alpha / r) · B @ A`.
 *
 * @module
 */
import { type Graph, makeGraph, makeNode, type Node } from "../compiler/ir.ts";
import { bcast, fill, mul, reshape } from "../ops/build.ts";
import type { Target } from "./targets.ts";
import { lambdaBName, lambdaDName, slicedProjections, type VeraAdapter } from "./vera.ts";
import { type LoraAdapter, loraAName, loraBName, loraRank, loraScale } from "./lora.ts";
import { evaluate } from "../backends/cpu/interpreter.ts";
import { isAdapterParam } from "./_adapt.ts";
import * as ops from "../ops/mod.ts";

/** Either adapter kind. */
export type Adapter = VeraAdapter | LoraAdapter;

function vector(name: string, length: number): Node {
  return makeNode(ops.param, [], {
    shape: [length],
    dtype: "f32",
    role: "frozen",
    init: { kind: "zeros" },
  }, name);
}

function matrix(name: string, shape: readonly number[]): Node {
  return makeNode(ops.param, [], {
    shape: [...shape],
    dtype: "f32",
    role: "frozen",
    init: { kind: "zeros" },
  }, name);
}

/** ΔW `[out, in]` of one target, built from the adapter's params (as frozen params). */
export function deltaWeight(adapter: Adapter, target: Target): Node {
  if (adapter.kind === "vera") {
    const r = adapter.config.r;
    const { aSlice, bSlice } = slicedProjections(adapter, target);
    const lambdaD = reshape(vector(lambdaDName(target.module), r), [r, 1]);
    const lambdaB = reshape(vector(lambdaBName(target.module), target.outFeatures), [
      target.outFeatures,
      1,
    ]);
    const scaledB = mul(bSlice, bcast(lambdaB, bSlice.shape));
    const scaledA = mul(aSlice, bcast(lambdaD, aSlice.shape));
    return makeNode(ops.matmul, [scaledB, scaledA], {});
  }
  const r = loraRank(adapter.config, target.module);
  const a = matrix(loraAName(target.module), [r, target.inFeatures]);
  const b = matrix(loraBName(target.module), [target.outFeatures, r]);
  return mul(makeNode(ops.matmul, [b, a], {}), fill(loraScale(adapter.config, target.module), []));
}

/**
 * The merge graph: for each target, output `<weight>` = `W + sign·ΔW`, reading
 * the base weight and the adapter's params as params.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { vera } from "./vera.ts";
 * import { mergeGraph } from "./merge.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * deepStrictEqual(Object.keys(mergeGraph(adapter).outputs), ["layers.0.attn.q_proj.weight"]);
 * ```
 */
export function mergeGraph(adapter: Adapter, sign: 1 | -1 = 1): Graph {
  const outputs: Record<string, Node> = {};
  for (const t of adapter.targets) {
    const w = matrix(t.weight, [t.outFeatures, t.inFeatures]);
    outputs[t.weight] = makeNode(sign > 0 ? ops.add : ops.sub, [w, deltaWeight(adapter, t)], {});
  }
  return makeGraph({ inputs: [], outputs, meta: { merge: adapter.kind, sign } });
}

/** Runs a graph of merged weights: {@link cpuMergeRunner}, or `webgpuMergeRunner` (adapters/gpu_merge.ts). */
export type MergeRunner = (graph: Graph, params: Readonly<Record<string, Float32Array>>) =>
  | Record<string, Float32Array>
  | Promise<Record<string, Float32Array>>;

/** The CPU runner: float32 rounding like the GPU. */
export const cpuMergeRunner: MergeRunner = (graph, params) => {
  const out = evaluate(graph, { params }, { precision: "f32" });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Float32Array.from(v.data)]));
};

/** Options of {@link merge}. */
export interface MergeOptions {
  /** Where the merge graph runs (default: the CPU reference in f32). */
  readonly runner?: MergeRunner;
  /** Refuse results containing NaN or ±Infinity (safe merge). */
  readonly safe?: boolean;
}

async function applyMerge(
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  sign: 1 | -1,
  options: MergeOptions,
): Promise<Record<string, Float32Array>> {
  const graph = mergeGraph(adapter, sign);
  for (const p of graph.params) {
    if (params[p.name!] === undefined) throw new Error(`merge: missing tensor "${p.name}"`);
  }
  const merged = await (options.runner ?? cpuMergeRunner)(graph, params);
  if (options.safe) {
    for (const [name, w] of Object.entries(merged)) {
      const bad = w.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new Error(
          `safe merge refused: ${name} would hold ${w[bad]} at element ${bad}; nothing was changed`,
        );
      }
    }
  }
  const result: Record<string, Float32Array> = {};
  for (const [name, value] of Object.entries(params)) {
    if (isAdapterParam(name)) continue;
    result[name] = merged[name] ?? value;
  }
  return result;
}

export { isAdapterParam } from "./_adapt.ts";

/**
 * Folds the adapter into the base weights: returns the base params with each
 * targeted weight replaced by `W + ΔW` and the adapter's own params removed.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { merge } from "./merge.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * const merged = await merge(adapter, initParams(graph));
 * strictEqual("layers.0.attn.q_proj.vera_lambda_b" in merged, false);
 * ```
 */
export function merge(
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  options: MergeOptions = {},
): Promise<Record<string, Float32Array>> {
  return applyMerge(adapter, params, 1, options);
}

/**
 * Removes a merged adapter again: `W − ΔW` per target. `params` holds the
 * merged weights and the adapter's params.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { merge, unmerge } from "./merge.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * const params = initParams(graph);
 * const merged = await merge(adapter, params);
 * const back = await unmerge(adapter, { ...params, ...merged });
 * strictEqual(back["layers.0.attn.q_proj.weight"].length, 16);
 * ```
 */
export function unmerge(
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  options: MergeOptions = {},
): Promise<Record<string, Float32Array>> {
  return applyMerge(adapter, params, -1, options);
}

/**
 * {@link merge} that refuses a non-finite result, naming the layer and element.
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { safeMerge } from "./merge.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * const params = initParams(graph);
 * params["layers.0.attn.q_proj.vera_lambda_b"][0] = Infinity;
 * await rejects(safeMerge(adapter, params), { message: /^safe merge refused: layers\.0\.attn\.q_proj\.weight/ });
 * ```
 */
export function safeMerge(
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  options: MergeOptions = {},
): Promise<Record<string, Float32Array>> {
  return applyMerge(adapter, params, 1, { ...options, safe: true });
}

/**
 * Merges and returns the base graph (un-adapted, with its own param roles)
 * with the merged weights: the adapter is gone from the model.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { mergeAndUnload } from "./merge.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * const { graph: unloaded } = await mergeAndUnload(base, adapter, initParams(graph));
 * strictEqual(unloaded, base);
 * ```
 */
export async function mergeAndUnload(
  baseGraph: Graph,
  adapter: Adapter,
  params: Readonly<Record<string, Float32Array>>,
  options: MergeOptions = {},
): Promise<{ graph: Graph; params: Record<string, Float32Array> }> {
  return { graph: baseGraph, params: await merge(adapter, params, options) };
}
