/**
 * Algebraic simplification as rewrite rules: identities (x·1, x+0, x−0, x/1,
 * −−x), shape-op chains (transpose∘transpose, reshape∘reshape, no-op
 * reshape/broadcast/slice/pad/cast/sum) and broadcast folding.
 *
 * @module
 */
import { type Graph, makeNode, type Node } from "../ir.ts";
import { type Match, rewrite, type Rule } from "../rewrite.ts";
import * as ops from "../../ops/mod.ts";

function isFill(n: Node, value: number): boolean {
  return n.op === "const" && n.attrs.data === undefined && n.attrs.value === value;
}

const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** `x op c → x` when the constant operand is the identity of op. */
function identity(
  name: string,
  op: string,
  value: number,
  side: "left" | "right" | "both",
): Rule[] {
  const rules: Rule[] = [];
  if (side !== "left") {
    rules.push({
      name: `${name}-right`,
      pattern: { op, inputs: [{ capture: "x" }, { where: (n) => isFill(n, value) }] },
      rewrite: ({ captures }) => captures.x,
    });
  }
  if (side !== "right") {
    rules.push({
      name: `${name}-left`,
      pattern: { op, inputs: [{ where: (n) => isFill(n, value) }, { capture: "x" }] },
      rewrite: ({ captures }) => captures.x,
    });
  }
  return rules;
}

const operand = ({ node }: Match) => node.inputs[0];

/** The simplification rules, for use alone or combined with other rule lists. */
export const simplifyRules: readonly Rule[] = [
  ...identity("mul-one", "mul", 1, "both"),
  ...identity("add-zero", "add", 0, "both"),
  ...identity("sub-zero", "sub", 0, "right"),
  ...identity("div-one", "div", 1, "right"),
  {
    name: "neg-neg",
    pattern: { op: "neg", inputs: [{ op: "neg", inputs: [{ capture: "x" }] }] },
    rewrite: ({ captures }) => captures.x,
  },
  {
    name: "permute-identity",
    pattern: { op: "permute", where: (n) => (n.attrs.perm as number[]).every((p, i) => p === i) },
    rewrite: operand,
  },
  {
    name: "permute-permute",
    pattern: { op: "permute", inputs: [{ op: "permute", capture: "inner" }] },
    rewrite: ({ node, captures }) => {
      const p1 = captures.inner.attrs.perm as number[];
      const p2 = node.attrs.perm as number[];
      return makeNode(ops.permute, [captures.inner.inputs[0]], { perm: p2.map((p) => p1[p]) });
    },
  },
  {
    name: "reshape-noop",
    pattern: { op: "reshape", where: (n) => same(n.shape, n.inputs[0].shape) },
    rewrite: operand,
  },
  {
    name: "reshape-reshape",
    pattern: { op: "reshape", inputs: [{ op: "reshape", capture: "inner" }] },
    rewrite: ({ node, captures }) =>
      makeNode(ops.reshape, [captures.inner.inputs[0]], { shape: [...node.shape] }),
  },
  {
    name: "broadcast-noop",
    pattern: { op: "broadcast", where: (n) => same(n.shape, n.inputs[0].shape) },
    rewrite: operand,
  },
  {
    name: "broadcast-broadcast",
    pattern: { op: "broadcast", inputs: [{ op: "broadcast", capture: "inner" }] },
    rewrite: ({ node, captures }) =>
      makeNode(ops.broadcast, [captures.inner.inputs[0]], { shape: [...node.shape] }),
  },
  {
    name: "broadcast-fill",
    pattern: {
      op: "broadcast",
      inputs: [{ op: "const", where: (n) => n.attrs.data === undefined }],
    },
    rewrite: ({ node }) =>
      makeNode(ops.const, [], {
        value: node.inputs[0].attrs.value,
        shape: [...node.shape],
        dtype: node.dtype,
      }),
  },
  {
    name: "reshape-fill",
    pattern: { op: "reshape", inputs: [{ op: "const", where: (n) => n.attrs.data === undefined }] },
    rewrite: ({ node }) =>
      makeNode(ops.const, [], {
        value: node.inputs[0].attrs.value,
        shape: [...node.shape],
        dtype: node.dtype,
      }),
  },
  {
    name: "cast-noop",
    pattern: { op: "cast", where: (n) => n.dtype === n.inputs[0].dtype },
    rewrite: operand,
  },
  {
    name: "reduce-no-axes",
    pattern: { op: ["sum", "max"], where: (n) => (n.attrs.axes as number[]).length === 0 },
    rewrite: operand,
  },
  {
    name: "slice-full",
    pattern: { op: "slice", where: (n) => same(n.shape, n.inputs[0].shape) },
    rewrite: operand,
  },
  {
    name: "pad-zero",
    pattern: { op: "pad", where: (n) => same(n.shape, n.inputs[0].shape) },
    rewrite: operand,
  },
];

/**
 * Applies {@link simplifyRules} to a fixed point.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { simplify } from "./simplify.ts";
 * import { trace } from "../trace.ts";
 * const g = trace((x) => x.T.T.mul(1).add(0), [{ name: "x", shape: [2, 3] }]);
 * strictEqual(simplify(g).outputs.out.op, "input");
 * ```
 */
export function simplify(graph: Graph): Graph {
  return rewrite(graph, simplifyRules);
}
