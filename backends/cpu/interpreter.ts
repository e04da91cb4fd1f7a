/**
 * The reference interpreter: runs any Graph on the CPU, in float64 (the
 * oracle for every GPU kernel and gradient test) or rounding every float
 * result to float32 (to mimic the GPU's arithmetic).
 *
 * @module
 */
import {
  type CpuData,
  type CpuTensor,
  formatType,
  type Graph,
  type Node,
  sizeOf,
  topoSort,
} from "../../compiler/ir.ts";
import { allocData } from "../../ops/rules.ts";
import type { TensorData } from "../host_data.ts";

export type { TensorData } from "../host_data.ts";

/** Named values for a graph's inputs and params. */
export interface Feeds {
  /** Values for `input` leaves, by name. Unknown names are an error. */
  readonly inputs?: Readonly<Record<string, TensorData>>;
  /** Values for `param` leaves, by module path. Extra entries are ignored. */
  readonly params?: Readonly<Record<string, TensorData>>;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** `"f64"` (default): exact reference. `"f32"`: round every float result to float32. */
  readonly precision?: "f64" | "f32";
}

/** Converts a fed value into the CPU representation of `node`, checking its size. */
export function toCpuTensor(node: Node, value: TensorData, what: string): CpuTensor {
  const raw = "data" in value && !ArrayBuffer.isView(value) ? (value as CpuTensor).data : value;
  const length = (raw as ArrayLike<number>).length;
  const expected = sizeOf(node.shape);
  if (length !== expected) {
    throw new Error(
      `${what} "${node.name}" expects ${
        formatType(node)
      } (${expected} elements), got ${length} elements`,
    );
  }
  const data = allocData(node.dtype, expected);
  data.set(raw as ArrayLike<number>);
  return { shape: node.shape, dtype: node.dtype, data };
}

function roundToF32(data: CpuData): void {
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(data[i]);
}

/**
 * Runs `graph` on the CPU and returns every output.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { trace } from "../../compiler/trace.ts";
 * import { evaluate } from "./interpreter.ts";
 * const g = trace((x) => x.mul(2).sum(), [{ name: "x", shape: [3] }]);
 * strictEqual(evaluate(g, { inputs: { x: [1, 2, 3] } }).out.data[0], 12);
 * ```
 */
export function evaluate(
  graph: Graph,
  feeds: Feeds = {},
  options: EvaluateOptions = {},
): Record<string, CpuTensor> {
  const f32 = options.precision === "f32";
  const inputFeeds = feeds.inputs ?? {};
  const known = new Set(graph.inputs.map((n) => n.name));
  for (const name of Object.keys(inputFeeds)) {
    if (!known.has(name)) {
      throw new Error(
        `unknown input "${name}" (the graph takes: ${[...known].join(", ") || "none"})`,
      );
    }
  }
  const values = new Map<number, CpuTensor>();
  for (const node of topoSort(Object.values(graph.outputs))) {
    let value: CpuTensor;
    if (node.op === "input" || node.op === "param") {
      const source = node.op === "input" ? inputFeeds : feeds.params ?? {};
      const fed = source[node.name!];
      if (fed === undefined) {
        throw new Error(`${node.op} "${node.name}" (${formatType(node)}) was not fed`);
      }
      value = toCpuTensor(node, fed, node.op);
      // Fed values are f32 on a GPU too: round them, not only op results.
      if (f32 && node.dtype === "f32") roundToF32(value.data);
    } else {
      const operands = node.inputs.map((n) => values.get(n.id)!);
      const data = node.def.cpu(operands, { node });
      if (f32 && node.dtype === "f32") roundToF32(data);
      value = { shape: node.shape, dtype: node.dtype, data };
    }
    values.set(node.id, value);
  }
  const result: Record<string, CpuTensor> = {};
  for (const [name, node] of Object.entries(graph.outputs)) result[name] = values.get(node.id)!;
  return result;
}
