/**
 * Generation speed with the K/V cache: tokens/s of the committed tiny fixtures and of
 * GPT-2-small / a ~100M-parameter Llama shape with random weights built here, plus per-token
 * time at the start and the end of a long continuation (it should stay flat: a step attends over
 * the whole cache whatever the position).
 *
 *   deno run -A bench/generate_bench.ts                 # fixtures, both backends
 *   deno run -A bench/generate_bench.ts gpt2-small-v40k 64   # one big shape, 64 new tokens (webgpu)
 *   deno run -A bench/generate_bench.ts llama-100m 64
 *
 * @module
 */
import { mulberry32 } from "../data/random.ts";
import { byteTokenizer } from "../data/hf_tokenizer.ts";
import { getFamily, type LoadedModel, loadModel } from "../nn/families.ts";
import { generate } from "../nn/generate.ts";
import { SHAPES } from "./_shapes.ts";

/** A model of a named shape with random weights (uniform ±0.02; norms at 1). */
function randomModel(name: string): LoadedModel {
  const json = SHAPES[name];
  const family = getFamily(String(json.model_type));
  const config = family.configFromJson(json, name);
  const graph = family.graph(config, { batch: 1, seqLen: 1, task: "lm" });
  const random = mulberry32(0);
  const weights: Record<string, Float32Array> = {};
  const dtypes: Record<string, string> = {};
  let count = 0;
  for (const p of graph.params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const w = new Float32Array(n);
    const norm = /norm|ln_/.test(p.name!) && p.name!.endsWith("weight");
    for (let i = 0; i < n; i++) w[i] = norm ? 1 : (random() - 0.5) * 0.04;
    weights[p.name!] = w;
    dtypes[p.name!] = "F32";
    count += n;
  }
  console.error(`${name}: ${(count / 1e6).toFixed(1)}M parameters`);
  return {
    family,
    config,
    weights,
    dtypes,
    tokenizer: byteTokenizer(),
    source: { path: name, kind: "hf-dir" },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(
  model: LoadedModel,
  label: string,
  newTokens: number,
  backend: "webgpu" | "cpu",
) {
  const promptIds = [1, 2, 3, 4, 5, 6, 7, 8];
  const r = await generate(model, {
    prompt: "",
    promptIds,
    maxNewTokens: newTokens,
    temperature: 0,
    stopAtEos: false,
    backend,
  });
  const k = Math.min(8, Math.floor(r.stepMs.length / 2));
  const first = median(r.stepMs.slice(0, k));
  const last = median(r.stepMs.slice(-k));
  console.log(
    `| ${label} | ${backend} | ${newTokens} | ${r.tokensPerS.toFixed(1)} | ${first.toFixed(1)} | ` +
      `${last.toFixed(1)} | ${r.prefillMs.toFixed(0)} |`,
  );
}

if (import.meta.main) {
  const [which, n] = Deno.args;
  console.log(
    "| model | backend | new tokens | tokens/s | ms/token (first 8) | ms/token (last 8) | prefill ms |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  if (which === undefined) {
    for (const name of ["tiny-gpt2", "tiny-llama", "tiny-qwen2"]) {
      const model = await loadModel(
        new URL(`../tests/fixtures/hf/${name}`, import.meta.url).pathname,
      );
      for (const backend of ["cpu", "webgpu"] as const) await measure(model, name, 24, backend);
    }
  } else {
    if (!(which in SHAPES)) throw new Error(`unknown shape ${which} (${Object.keys(SHAPES)})`);
    await measure(randomModel(which), which, Number(n ?? 32), "webgpu");
  }
}
