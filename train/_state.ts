/**
 * The host side of step graphs: naming and zero-filling optimizer state,
 * feeding the per-step scalars, and applying `meta.updates` in a CPU loop.
 */
import { type Graph, sizeOf } from "../compiler/ir.ts";
import { initValue } from "../nn/init.ts";
import type { CpuTensor } from "../compiler/ir.ts";
import type { TensorData } from "../backends/cpu/interpreter.ts";

function updatesOf(graph: Graph): Readonly<Record<string, string>> {
  const updates = graph.meta.updates;
  if (updates === undefined || updates === null || typeof updates !== "object") return {};
  return updates as Record<string, string>;
}

/**
 * Names of the state params of a step or accumulation graph: the frozen
 * params that `meta.updates` writes (optimizer state and accumulators),
 * sorted.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { adamw, optimizerStateNames, trainStep } from "./optim.ts";
 * const model = trace((x) => ({ loss: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * deepStrictEqual(optimizerStateNames(trainStep(model, { optimizer: adamw() })), [
 *   "optim.exp_avg.w",
 *   "optim.exp_avg_sq.w",
 * ]);
 * ```
 */
export function optimizerStateNames(graph: Graph): string[] {
  const written = new Set(Object.values(updatesOf(graph)));
  return graph.params
    .filter((p) => p.attrs.role === "frozen" && written.has(p.name!))
    .map((p) => p.name!);
}

/**
 * Initial values (zeros, from their init descriptors) for every state param
 * of a step or accumulation graph, as f32 arrays keyed by name.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { initOptimizerState, sgd, trainStep } from "./optim.ts";
 * const model = trace((x) => ({ loss: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const step = trainStep(model, { optimizer: sgd({ momentum: 0.9 }) });
 * deepStrictEqual(initOptimizerState(step), { "optim.momentum_buffer.w": new Float32Array([0, 0]) });
 * ```
 */
export function initOptimizerState(graph: Graph): Record<string, Float32Array> {
  const names = new Set(optimizerStateNames(graph));
  return Object.fromEntries(
    graph.params.filter((p) => names.has(p.name!)).map((p) => [p.name!, initValue(p, 0)]),
  );
}

/**
 * The CPU loop's half of `meta.updates`: a new param record in which every
 * updated param holds its `update:<name>` output (other entries are kept).
 * The values keep the outputs' precision (float64 from the reference
 * interpreter).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { applyUpdates } from "./optim.ts";
 * const params = { w: new Float32Array([1, 2]) };
 * const outputs = { "update:w": { shape: [2], dtype: "f32" as const, data: new Float64Array([0.5, 1.5]) } };
 * deepStrictEqual(applyUpdates(params, outputs, { "update:w": "w" }).w, new Float64Array([0.5, 1.5]));
 * ```
 */
export function applyUpdates(
  params: Readonly<Record<string, TensorData>>,
  outputs: Readonly<Record<string, CpuTensor>>,
  updates: Readonly<Record<string, string>>,
): Record<string, TensorData> {
  const next: Record<string, TensorData> = { ...params };
  for (const [output, name] of Object.entries(updates)) {
    const value = outputs[output];
    if (value === undefined) {
      throw new Error(`applyUpdates: no output "${output}" (the update of "${name}")`);
    }
    const old = params[name];
    const oldLength = old === undefined
      ? undefined
      : "data" in old && !ArrayBuffer.isView(old)
      ? (old as CpuTensor).data.length
      : (old as ArrayLike<number>).length;
    if (oldLength !== undefined && oldLength !== sizeOf(value.shape)) {
      throw new Error(
        `applyUpdates: "${output}" has ${
          sizeOf(value.shape)
        } elements, param "${name}" has ${oldLength}`,
      );
    }
    next[name] = value.data;
  }
  return next;
}

/**
 * The per-step scalar inputs of a step graph: `step` and the learning rate of
 * every group, as f32 feeds. `lr` is one rate for every group, or a record by
 * group (`default` for the `lr` input); every group with params must get one.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { adamw, hyperparameterFeeds, trainStep } from "./optim.ts";
 * const model = trace((x) => ({ loss: x.mul(param("head.w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const step = trainStep(model, { optimizer: adamw(), groups: [{ name: "head", match: /^head\./ }] });
 * deepStrictEqual(hyperparameterFeeds(step, { step: 3, lr: { default: 1e-4, head: 1e-3 } }), {
 *   lr: new Float32Array([1e-4]), // f32-rounded
 *   "lr.head": new Float32Array([1e-3]),
 *   step: new Float32Array([3]),
 * });
 * ```
 */
export function hyperparameterFeeds(
  graph: Graph,
  values: { readonly step: number; readonly lr: number | Readonly<Record<string, number>> },
): Record<string, Float32Array> {
  const meta = graph.meta.optimizer as { lrInputs?: Record<string, string[]> } | undefined;
  if (meta?.lrInputs === undefined) {
    throw new Error("hyperparameterFeeds: not a step graph (no meta.optimizer; use trainStep)");
  }
  if (!Number.isSafeInteger(values.step) || values.step < 1) {
    throw new Error(`hyperparameterFeeds: step must be a 1-based integer, got ${values.step}`);
  }
  const feeds: Record<string, Float32Array> = {};
  for (const input of Object.keys(meta.lrInputs)) {
    const group = input === "lr" ? "default" : input.slice("lr.".length);
    // The default `lr` input stays in the signature even when every param is in a named group.
    const unused = meta.lrInputs[input].length === 0 ? 0 : undefined;
    const rate = typeof values.lr === "number" ? values.lr : values.lr[group] ?? unused;
    if (typeof rate !== "number" || !Number.isFinite(rate)) {
      throw new Error(
        `hyperparameterFeeds: no learning rate for group "${group}" (input ${input})`,
      );
    }
    feeds[input] = new Float32Array([rate]);
  }
  feeds.step = new Float32Array([values.step]);
  return feeds;
}
