/**
 * Write your own graph rewrite. Rules are data: a pattern (op, named
 * captures, predicates) and a function returning the replacement. This one
 * turns a training graph into an inference graph by removing every dropout,
 * and a second rule freezes every LayerNorm parameter.
 *
 *   deno run -A examples/custom_rewrite_rule.ts
 */
import {
  gptGraph,
  type Graph,
  graphNodes,
  makeNode,
  ops,
  rewrite,
  type Rule,
  validate,
} from "../mod.ts";

const training = gptGraph(
  { vocabSize: 64, maxSeqLen: 16, dModel: 32, heads: 4, layers: 2, head: "lm", dropout: 0.1 },
  { batch: 2, seqLen: 16 },
);

// dropout(x, seed) → x: match any dropout node and capture its first operand.
const stripDropout: Rule = {
  name: "strip-dropout",
  pattern: { op: "dropout", inputs: [{ capture: "x" }, {}] },
  rewrite: ({ captures }) => captures.x,
};

// Params whose module path ends in ln1/ln2/ln_f become frozen (same name, shape and init).
const freezeLayerNorms: Rule = {
  name: "freeze-layernorm",
  pattern: { op: "param", name: /(^|\.)ln(1|2|_f)\./, attrs: { role: "trainable" } },
  rewrite: ({ node }) => makeNode(ops.param, [], { ...node.attrs, role: "frozen" }, node.name),
};

let applied = 0;
const inference = validate(
  rewrite(training, [stripDropout, freezeLayerNorms], { onRewrite: () => applied++ }),
);
const count = (op: string, g: Graph) => graphNodes(g).filter((n) => n.op === op).length;

console.log(`rules applied: ${applied}`);
console.log(`dropout nodes: ${count("dropout", training)} → ${count("dropout", inference)}`);
const trainable = (g: Graph) => g.params.filter((p) => p.attrs.role === "trainable").length;
console.log(`trainable params: ${trainable(training)} → ${trainable(inference)}`);
