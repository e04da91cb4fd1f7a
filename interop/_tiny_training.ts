/**
 * Training the interop check's tiny models on the CPU: byte-level batches of a fixed text and
 * AdamW steps of `trainStep` run by the interpreter, so the weights PEFT is compared on are
 * reproducible.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import {
  adamw,
  applyUpdates,
  hyperparameterFeeds,
  initOptimizerState,
  trainStep,
} from "../train/optim.ts";
import { evaluate, type TensorData } from "../backends/cpu/interpreter.ts";

/**
 * A language-model batch from bytes of `text`: rows start `stride` bytes apart.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { lmBatch } from "./_tiny_training.ts";
 * const { tokens, targets } = lmBatch("abcd", 2, 2, 1);
 * deepStrictEqual([...tokens], [97, 98, 98, 99]);
 * deepStrictEqual([...targets], [98, 99, 99, 100]);
 * ```
 */
export function lmBatch(text: string, batch: number, seqLen: number, stride: number) {
  const bytes = new TextEncoder().encode(text);
  const tokens = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seqLen; t++) {
      const at = (b * stride + t) % (bytes.length - 1);
      tokens[b * seqLen + t] = bytes[at];
      targets[b * seqLen + t] = bytes[at + 1];
    }
  }
  return { tokens, targets };
}

/** A batch of {@link lmBatch}. */
export type Batch = ReturnType<typeof lmBatch>;
/** Weights by param name. */
export type Params = Record<string, Float32Array>;

function toF32(data: TensorData): Float32Array {
  return Float32Array.from(data as ArrayLike<number>);
}

function loss(graph: Graph, params: Params, batch: Batch): number {
  return evaluate(graph, { inputs: { ...batch }, params }).loss.data[0];
}

/**
 * `steps` AdamW steps on one fixed batch with the step graph on the CPU;
 * returns every param (trainable ones updated, rounded to f32) and the loss
 * before and after.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { lmBatch, train } from "./_tiny_training.ts";
 * const config = { vocabSize: 260, maxSeqLen: 4, dModel: 8, heads: 2, layers: 1, head: "lm" } as const;
 * const model = gptGraph(config, { batch: 2, seqLen: 4 });
 * const batch = lmBatch("the quick brown fox", 2, 4, 3);
 * const { before, after } = train(model, initParams(model, { seed: 0 }), batch, 3, 1e-2);
 * ok(after < before);
 * ```
 */
export function train(model: Graph, params: Params, batch: Batch, steps: number, lr: number) {
  const step = trainStep(model, { optimizer: adamw({ weightDecay: 0.01 }) });
  const updates = step.meta.updates as Record<string, string>;
  let state: Record<string, TensorData> = { ...params, ...initOptimizerState(step) };
  const before = loss(model, params, batch);
  for (let t = 1; t <= steps; t++) {
    const out = evaluate(step, {
      inputs: { ...batch, ...hyperparameterFeeds(step, { step: t, lr }) },
      params: state,
    });
    state = applyUpdates(state, out, updates);
  }
  const trained: Params = {};
  for (const p of model.params) trained[p.name!] = toF32(state[p.name!]);
  return { params: trained, before, after: loss(model, trained, batch) };
}

/**
 * The largest |value| over all the arrays.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { maxAbsOf } from "./_tiny_training.ts";
 * strictEqual(maxAbsOf([new Float32Array([1, -3]), new Float32Array([2])]), 3);
 * ```
 */
export function maxAbsOf(arrays: readonly Float32Array[]): number {
  return Math.max(...arrays.map((a) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
}

/**
 * The shape of each param of `graph`, by name.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { shapesOf } from "./_tiny_training.ts";
 * const graph = trace((x) => ({ y: x.mul(param("w", [3])) }), [{ name: "x", shape: [3] }]);
 * deepStrictEqual(shapesOf(graph), new Map([["w", [3]]]));
 * ```
 */
export function shapesOf(graph: Graph): Map<string, number[]> {
  return new Map(graph.params.map((p) => [p.name!, [...p.shape]]));
}
