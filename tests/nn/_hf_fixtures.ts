/** Shared helpers of the Hugging Face fixture tests (tests/fixtures/hf, made by interop/make_hf_fixtures.py). */
import { compile } from "../../backends/compile.ts";
import type { LoadedModel } from "../../nn/families.ts";

export const FIXTURES = ["tiny-gpt2", "tiny-llama", "tiny-qwen2"] as const;

export function fixtureDir(name: string): string {
  return new URL(`../fixtures/hf/${name}`, import.meta.url).pathname;
}

export interface Reference {
  corpus: { text: string; ids: number[]; idsNoSpecial: number[]; decoded: string }[];
  prompt: string;
  logitsInput: number[];
  logitsShape: number[];
  logits: number[];
  greedy: number[];
  classification: { tokens: number[][]; padId: number; numClasses: number; logits: number[] };
}

export async function reference(name: string): Promise<Reference> {
  return JSON.parse(await Deno.readTextFile(`${fixtureDir(name)}/reference.json`));
}

/** LM logits of `tokens` (one row) on a backend. */
export async function lmLogits(
  model: LoadedModel,
  tokens: number[],
  backend: "cpu" | "webgpu",
): Promise<Float32Array> {
  const graph = model.family.graph(model.config, { batch: 1, seqLen: tokens.length, task: "lm" });
  const exe = await compile(graph, { backend });
  try {
    const params: Record<string, Float32Array> = {};
    for (const p of graph.params) params[p.name!] = model.weights[p.name!];
    exe.setParams(params);
    const run = await exe.run({ tokens, targets: tokens.map(() => -1) }, { read: ["logits"] });
    return Float32Array.from(await run.read("logits"));
  } finally {
    exe.destroy();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
