/**
 * `graph.meta.updates`: which outputs replace which params after a run (a
 * training step's new weights). Every executable checks it the same way.
 *
 * @module
 */
import { formatType, type Graph } from "./ir.ts";

/**
 * Checks `graph.meta.updates` against the graph: each names an output and
 * the param of the same type it replaces after a run.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { graphUpdates } from "./graph_updates.ts";
 * import { makeGraph } from "./ir.ts";
 * import { param, trace } from "./trace.ts";
 * const g = trace((x) => ({ w: param("w", [2]).add(x) }), [{ name: "x", shape: [2] }]);
 * deepStrictEqual(graphUpdates(makeGraph({ ...g, meta: { updates: { w: "w" } } })), { w: "w" });
 * ```
 */
export function graphUpdates(graph: Graph): Record<string, string> {
  const updates = (graph.meta.updates ?? {}) as Record<string, string>;
  for (const [output, param] of Object.entries(updates)) {
    const out = graph.outputs[output];
    const p = graph.params.find((n) => n.name === param);
    if (out === undefined) {
      throw new Error(
        `meta.updates: no output "${output}" (outputs: ${Object.keys(graph.outputs).join(", ")})`,
      );
    }
    if (p === undefined) {
      throw new Error(
        `meta.updates: output "${output}" updates "${param}", which is not a param the graph reads`,
      );
    }
    if (formatType(out) !== formatType(p)) {
      throw new Error(
        `meta.updates: output "${output}" is ${formatType(out)} but param "${param}" is ${
          formatType(p)
        }`,
      );
    }
  }
  return { ...updates };
}
