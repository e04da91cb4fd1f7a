/**
 * VeRA as a compiler pass: trace the reference GPT, rewrite it with `vera`,
 * and look at one targeted layer before and after, then the adapter summary.
 *
 *   deno run -A examples/vera_rewrite.ts
 */
import { formatSummary, gptGraph, printAround, summary, vera } from "../mod.ts";

const base = gptGraph(
  { vocabSize: 260, maxSeqLen: 64, dModel: 64, heads: 4, layers: 2, head: "classifier" },
  { batch: 8, seqLen: 64 },
);
const { graph, adapter } = vera(base, {
  r: 256,
  targetModules: ["q_proj", "v_proj"],
  modulesToSave: ["classifier"],
});

console.log("layers.0.attn.q_proj before the rewrite:");
console.log(printAround(base, "layers.0.attn.q_proj.weight", 4));
console.log(
  "\nafter (x Wᵀ + lambda_b ⊙ ((lambda_d ⊙ x A_sᵀ) B_sᵀ); A and B are seeded random nodes):",
);
console.log(printAround(graph, "layers.0.attn.q_proj.weight", 4));
console.log("the adapter branch, from lambda_d:");
console.log(printAround(graph, "layers.0.attn.q_proj.vera_lambda_d", 5));
console.log("\n" + formatSummary(summary(adapter, graph)));
