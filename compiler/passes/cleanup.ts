/**
 * Cleanup passes: dead-code elimination, common-subexpression elimination
 * and constant folding, each a Graph → Graph function.
 *
 * @module
 */
import {
  type AttrValue,
  type Graph,
  makeGraph,
  makeNode,
  type Node,
  sizeOf,
  topoSort,
} from "../ir.ts";
import { rewrite, type Rule } from "../rewrite.ts";
import * as ops from "../../ops/mod.ts";

/**
 * Drops every node the outputs do not reach. Params that become unused leave
 * `graph.params`; inputs stay in the signature unless `pruneInputs` is set.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { dce } from "./cleanup.ts";
 * import { param, trace } from "../trace.ts";
 * const g = trace((x) => { param("unused", [2]); return x.exp(); }, [{ name: "x", shape: [2] }]);
 * strictEqual(dce(g).params.length, 0);
 * ```
 */
export function dce(graph: Graph, options: { pruneInputs?: boolean } = {}): Graph {
  let inputs = graph.inputs;
  if (options.pruneInputs) {
    const used = new Set<number>();
    const stack = [...Object.values(graph.outputs)];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (used.has(n.id)) continue;
      used.add(n.id);
      stack.push(...n.inputs);
    }
    inputs = inputs.filter((n) => used.has(n.id));
  }
  return makeGraph({ inputs, outputs: graph.outputs, meta: graph.meta });
}

/**
 * Merges structurally equal nodes. Construction already hash-conses, so this
 * rebuilds every node through the intern table: identical subtrees built
 * separately (e.g. by two rule applications) collapse into one.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { cse } from "./cleanup.ts";
 * import { trace } from "../trace.ts";
 * const g = trace((x) => x.exp().add(x.exp()), [{ name: "x", shape: [2] }]);
 * const add = cse(g).outputs.out;
 * strictEqual(add.inputs[0] === add.inputs[1], true);
 * ```
 */
export function cse(graph: Graph): Graph {
  // Every node goes back through makeNode's intern table, even when its
  // operands are unchanged, so duplicates built by hand collapse too.
  const memo = new Map<Node, Node>();
  for (const n of topoSort([...graph.inputs, ...Object.values(graph.outputs)])) {
    memo.set(n, makeNode(n.def, n.inputs.map((i) => memo.get(i)!), n.attrs, n.name));
  }
  return makeGraph({
    inputs: graph.inputs.map((n) => memo.get(n)!),
    outputs: Object.fromEntries(Object.entries(graph.outputs).map(([k, n]) => [k, memo.get(n)!])),
    meta: graph.meta,
  });
}

/** Largest constant (in elements) that folding may materialise. */
export const FOLD_LIMIT = 4096;

/** Ops that must never be folded: leaves and ops whose value is not a function of their operands alone. */
const UNFOLDABLE = new Set(["input", "param", "const", "random", "iota", "dropout"]);

function isConst(n: Node): boolean {
  return n.op === "const";
}

/** Folds an op whose operands are all constants into one constant (small results only). */
export const constantFoldRule: Rule = {
  name: "constant-fold",
  pattern: {
    where: (n) =>
      !UNFOLDABLE.has(n.op) && n.inputs.length > 0 && n.inputs.every(isConst) &&
      sizeOf(n.shape) <= FOLD_LIMIT,
  },
  rewrite: ({ node }) => {
    // Operands are rounded to f32 first, so folding computes what the GPU would.
    const operands = node.inputs.map((c) => {
      const data = c.def.cpu([], { node: c });
      if (c.dtype === "f32") {
        for (let i = 0; i < data.length; i++) data[i] = Math.fround(data[i]);
      }
      return { shape: c.shape, dtype: c.dtype, data };
    });
    const data = node.def.cpu(operands, { node });
    const values = [...data].map((v) => (node.dtype === "f32" ? Math.fround(v) : v));
    const first = values[0];
    // A uniform result stays a compact fill, so later rules (x·1, x+0) can see it.
    const uniform = values.every((v) => Object.is(v, first));
    const attrs: Record<string, AttrValue> = uniform && values.length > 0
      ? { value: first, shape: [...node.shape], dtype: node.dtype }
      : { data: values, shape: [...node.shape], dtype: node.dtype };
    return makeNode(ops.const, [], attrs);
  },
};

/**
 * Evaluates every subgraph whose leaves are constants (with results up to
 * {@link FOLD_LIMIT} elements) at compile time, in f32 like the GPU would.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { constantFold } from "./cleanup.ts";
 * import { constant, trace } from "../trace.ts";
 * const g = trace((x) => x.mul(constant(2).add(3)), [{ name: "x", shape: [] }]);
 * strictEqual(constantFold(g).outputs.out.inputs[1].attrs.value, 5);
 * ```
 */
export function constantFold(graph: Graph): Graph {
  return rewrite(graph, [constantFoldRule]);
}
