/** The readable text form of a graph (like a jaxpr). */
import { attrKey, type Attrs, formatType, type Graph, graphNodes, type Node } from "./ir.ts";

const HIDDEN_ATTRS = new Set(["shape", "dtype", "init", "data"]);

function formatAttrs(node: Node): string {
  const attrs: Attrs = node.attrs;
  const shown = Object.keys(attrs).filter((k) => !HIDDEN_ATTRS.has(k)).sort();
  if (node.op === "const" && attrs.data !== undefined) shown.push("data");
  if (shown.length === 0) return "";
  const parts = shown.map((k) => {
    const text = attrKey(attrs[k]);
    return `${k}=${text.length > 40 ? text.slice(0, 37) + "..." : text}`;
  });
  return `[${parts.join(" ")}]`;
}

/**
 * Formats a graph as text: inputs and params with their types, one line per
 * node, then the named outputs. Node ids are renumbered from 1 in order.
 */
export function print(graph: Graph): string {
  const nodes = graphNodes(graph);
  const names = new Map<number, string>();
  let counter = 0;
  for (const n of nodes) {
    if (n.op === "input" || n.op === "param") names.set(n.id, n.name!);
    else names.set(n.id, `%${++counter}`);
  }
  const lines: string[] = [];
  const inputs = graph.inputs.map((n) => `${n.name}:${formatType(n)}`).join(" ");
  lines.push(inputs ? `{ lambda ${inputs} ;` : "{ lambda ;");
  for (const p of graph.params) {
    lines.push(`  param ${p.name}:${formatType(p)} ${p.attrs.role}`);
  }
  lines.push("  let");
  for (const n of nodes) {
    if (n.op === "input" || n.op === "param") continue;
    const args = n.inputs.map((i) => names.get(i.id)).join(" ");
    lines.push(
      `    ${names.get(n.id)}:${formatType(n)} = ${n.op}${formatAttrs(n)}${args ? " " + args : ""}`,
    );
  }
  const outs = Object.entries(graph.outputs).map(([k, n]) => `${k}: ${names.get(n.id)}`);
  lines.push(`  in { ${outs.join(", ")} } }`);
  return lines.join("\n");
}

/** One node as a line of text, for error messages. */
export function printNode(node: Node): string {
  const args = node.inputs.map((i) => `${i.op}#${i.id}:${formatType(i)}`).join(", ");
  return `#${node.id}:${formatType(node)} = ${node.op}${formatAttrs(node)}(${args})` +
    (node.name ? ` "${node.name}"` : "");
}

/**
 * Prints the part of a graph within `radius` steps downstream of the node
 * named `name` (a param or input), with each node's operands: enough to see
 * how one layer was rewritten without printing the whole model.
 */
export function printAround(graph: Graph, name: string, radius = 4): string {
  const nodes = graphNodes(graph);
  const start = nodes.find((n) => n.name === name);
  if (start === undefined) throw new Error(`printAround: no node named "${name}"`);
  const users = new Map<number, Node[]>();
  for (const n of nodes) for (const i of n.inputs) users.set(i.id, [...(users.get(i.id) ?? []), n]);
  const keep = new Set<number>([start.id]);
  let frontier = [start];
  for (let step = 0; step < radius; step++) {
    frontier = frontier.flatMap((n) => users.get(n.id) ?? []).filter((n) => !keep.has(n.id));
    for (const n of frontier) keep.add(n.id);
  }
  const label = (n: Node) => n.name ?? `%${n.id}`;
  return nodes.filter((n) => keep.has(n.id) && n !== start).map((n) => {
    const args = n.inputs.map((i) => (keep.has(i.id) || i.name ? label(i) : `${label(i)}:${i.op}`));
    return `%${n.id}:${formatType(n)} = ${n.op}${formatAttrs(n)} ${args.join(" ")}`;
  }).join("\n");
}

/**
 * How errors name a tensor: `add#12 f32[2,5,8]` or `param "embed.weight" f32[11,8]`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../ops/mod.ts";
 * import { describeNode } from "./print.ts";
 * import { makeNode } from "./ir.ts";
 * strictEqual(describeNode(makeNode(ops.input, [], { shape: [2], dtype: "i32" }, "tokens")), 'input "tokens" i32[2]');
 * ```
 */
export function describeNode(node: Node): string {
  return node.name === undefined
    ? `${node.op}#${node.id} ${formatType(node)}`
    : `${node.op} "${node.name}" ${formatType(node)}`;
}
