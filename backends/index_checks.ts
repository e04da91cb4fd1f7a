/**
 * Host-side range checks for integer inputs that index: token ids fed to a
 * `gather` and class labels fed to `crossEntropy`. A GPU kernel cannot throw,
 * so without these an out-of-range id would silently become NaN or garbage;
 * the CPU reference throws, and so does the WebGPU executable, before upload.
 */
import type { Graph, Node } from "../compiler/ir.ts";
import { graphNodes } from "../compiler/ir.ts";
import type { TensorData } from "./cpu/interpreter.ts";
import { VIEW_OPS } from "../ops/mod.ts";

/** The valid range of one input's values. */
export interface IndexBound {
  /** Values must be below this. */
  readonly limit: number;
  /** Negative values are allowed (cross-entropy's ignored labels). */
  readonly allowNegative: boolean;
  /** What the values index, for the error message. */
  readonly what: string;
}

/** The input leaf an operand reads through views only, or undefined. */
function sourceInput(node: Node): Node | undefined {
  let n = node;
  while (VIEW_OPS.has(n.op)) n = n.inputs[0];
  return n.op === "input" ? n : undefined;
}

/**
 * The bounds of every input that feeds gather indices or cross-entropy
 * labels through views, the tightest one when several ops read it.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { indexBounds } from "./index_checks.ts";
 * import { param, trace } from "../compiler/trace.ts";
 * const g = trace((ids) => param("embed.weight", [5, 2]).gather(ids).sum(), [{ name: "ids", shape: [3], dtype: "i32" }]);
 * strictEqual(indexBounds(g).get("ids")?.limit, 5);
 * ```
 */
export function indexBounds(graph: Graph): Map<string, IndexBound> {
  const bounds = new Map<string, IndexBound>();
  const note = (operand: Node, bound: IndexBound) => {
    const input = sourceInput(operand);
    if (input === undefined) return;
    const prev = bounds.get(input.name!);
    if (
      prev === undefined || bound.limit < prev.limit || (prev.allowNegative && !bound.allowNegative)
    ) {
      bounds.set(input.name!, {
        limit: Math.min(bound.limit, prev?.limit ?? Infinity),
        allowNegative: bound.allowNegative && (prev?.allowNegative ?? true),
        what: bound.what,
      });
    }
  };
  for (const n of graphNodes(graph)) {
    if (n.op === "gather") {
      const table = n.inputs[0];
      note(n.inputs[1], {
        limit: table.shape[0],
        allowNegative: false,
        what: `rows of ${table.name ?? "a table"} [${table.shape}]`,
      });
    } else if (n.op === "crossEntropy") {
      const classes = n.inputs[0].shape[n.inputs[0].shape.length - 1];
      note(n.inputs[1], { limit: classes, allowNegative: true, what: `${classes} classes` });
    }
  }
  return bounds;
}

/** Throws naming the input, position and value when a fed index is out of range. */
export function checkIndexInputs(
  bounds: ReadonlyMap<string, IndexBound>,
  feeds: Readonly<Record<string, TensorData>>,
): void {
  for (const [name, bound] of bounds) {
    const value = feeds[name];
    if (value === undefined) continue;
    const data = ("data" in value && !ArrayBuffer.isView(value) ? value.data : value) as ArrayLike<
      number
    >;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v >= bound.limit || (v < 0 && !bound.allowNegative)) {
        throw new Error(
          `input "${name}": value ${v} at position ${i} is out of range for ${bound.what}` +
            (bound.allowNegative ? " (negative values are ignored)" : ""),
        );
      }
    }
  }
}

/** Throws listing the known names when a fed name is not one of them (inputs, params). */
export function checkNames(
  kind: string,
  given: Iterable<string>,
  known: ReadonlySet<string>,
): void {
  for (const name of given) {
    if (!known.has(name)) {
      throw new Error(
        `unknown ${kind} "${name}" (expected one of: ${[...known].join(", ") || "none"})`,
      );
    }
  }
}
