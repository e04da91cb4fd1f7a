/**
 * The WebGPU {@link MergeRunner}: the merge graph of `adapters/merge.ts`
 * (`W ± ΔW` for every target) compiled for the GPU and run once.
 *
 * @module
 */
import { type BackendChoice, compile } from "../backends/compile.ts";
import type { MergeRunner } from "./merge.ts";

/**
 * Runs a merge graph on WebGPU: compiles it, uploads only the params the
 * graph reads (the targeted weights and the adapter's tensors), runs it once
 * and reads every output back.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { merge } from "./merge.ts";
 * import { webgpuMergeRunner } from "./gpu_merge.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * const merged = await merge(adapter, initParams(graph), { runner: webgpuMergeRunner });
 * strictEqual(merged["layers.0.attn.q_proj.weight"].length, 16);
 * ```
 */
export const webgpuMergeRunner: MergeRunner = backendMergeRunner("webgpu");

/**
 * A {@link MergeRunner} on any backend (`auto` resolves to the fastest here).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { backendMergeRunner } from "./gpu_merge.ts";
 * import { param, trace } from "../compiler/trace.ts";
 * const g = trace(() => ({ w: param("w", [2]).mul(2) }), []);
 * deepStrictEqual((await backendMergeRunner("wasm")(g, { w: new Float32Array([1, 2]) })).w, new Float32Array([2, 4]));
 * ```
 */
export function backendMergeRunner(backend: BackendChoice): MergeRunner {
  return async (graph, params): Promise<Record<string, Float32Array>> => {
    const exe = await compile(graph, { backend });
    try {
      const reads = exe.graph.params.map((p) => p.name!);
      for (const name of reads) {
        if (params[name] === undefined) throw new Error(`merge: missing tensor "${name}"`);
      }
      exe.setParams(Object.fromEntries(reads.map((name) => [name, params[name]])));
      const names = Object.keys(graph.outputs);
      const run = await exe.run({}, { read: names });
      const out: Record<string, Float32Array> = {};
      for (const name of names) {
        const value = await run.read(name);
        out[name] = value instanceof Float32Array ? value : Float32Array.from(value);
      }
      return out;
    } finally {
      exe.destroy();
    }
  };
}
