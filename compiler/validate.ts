/** The graph validator: checks every invariant of the IR; passes call it in tests. */
import { formatType, type Graph, graphNodes, type Node, topoSort } from "./ir.ts";
import { printNode } from "./print.ts";

function fail(message: string, node?: Node): never {
  throw new Error(`invalid graph: ${message}${node ? `\n  at ${printNode(node)}` : ""}`);
}

/**
 * Checks a graph: known ops, shapes and dtypes that re-infer to what is
 * stored, operands created before users, leaves without operands, unique
 * input and param names, every reachable input declared, `params` equal to
 * the reachable params. Returns the graph; throws a message naming the node.
 */
export function validate(graph: Graph): Graph {
  if (Object.keys(graph.outputs).length === 0) fail("no outputs");
  const inputNames = new Set<string>();
  for (const n of graph.inputs) {
    if (n.op !== "input") fail(`graph input is a ${n.op} node`, n);
    if (!n.name) fail("input without a name", n);
    if (inputNames.has(n.name)) fail(`input "${n.name}" appears twice`, n);
    inputNames.add(n.name);
  }
  const declared = new Set<Node>(graph.inputs);
  const paramNames = new Map<string, Node>();
  for (const n of graphNodes(graph)) {
    if (n.def?.name !== n.op) {
      fail(`node op "${n.op}" is not its definition's (${n.def?.name ?? "none"})`, n);
    }
    let type;
    try {
      type = n.def.infer(n.inputs, n.attrs);
    } catch (e) {
      fail((e as Error).message, n);
    }
    if (type.shape.join() !== n.shape.join() || type.dtype !== n.dtype) {
      fail(`stored type ${formatType(n)} but op infers ${formatType(type)}`, n);
    }
    for (const i of n.inputs) {
      if (i.id >= n.id) fail(`operand #${i.id} is not older than its user`, n);
    }
    const leaf = ["input", "param", "const", "random", "iota"].includes(n.op);
    if (leaf && n.inputs.length > 0) fail("a leaf has operands", n);
    if (n.op === "input" && !declared.has(n)) {
      fail(
        inputNames.has(n.name!)
          ? `input "${n.name}" read here is not the node declared in graph.inputs under that name`
          : `input "${n.name}" is used but not declared in graph.inputs`,
        n,
      );
    }
    if (n.op === "param") {
      if (!n.name) fail("param without a name", n);
      const other = paramNames.get(n.name);
      if (other !== undefined && other !== n) fail(`two different params named "${n.name}"`, n);
      if (inputNames.has(n.name)) fail(`"${n.name}" is both an input and a param`, n);
      paramNames.set(n.name, n);
    }
  }
  const reachable = topoSort(Object.values(graph.outputs)).filter((n) => n.op === "param");
  const listed = new Set(graph.params.map((p) => p.id));
  if (reachable.length !== graph.params.length || reachable.some((p) => !listed.has(p.id))) {
    fail("graph.params does not match the params reachable from the outputs");
  }
  return graph;
}
