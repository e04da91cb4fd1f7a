/** The `generate` command: continue a prompt with a model (HF directory or wgrad base file). */
import { merge } from "../adapters/merge.ts";
import { type LoadedModel, loadModel } from "../nn/families.ts";
import { generate } from "../nn/generate.ts";
import { backendFlag } from "./_train_common.ts";
import {
  CONFIG_FLAG,
  type FlagSpec,
  intFlag,
  numberFlag,
  parseFlags,
  required,
  UsageError,
} from "./_args.ts";
import { loadAdapter } from "./_load_adapter.ts";

/** The flags of `generate`. */
export const GENERATE_FLAGS: Record<string, FlagSpec> = {
  base: { type: "string", help: "Hugging Face model directory or wgrad base .safetensors" },
  adapter: { type: "string", help: "PEFT adapter directory or compact file, merged in first" },
  prompt: { type: "string", help: "text to continue" },
  "max-new-tokens": { type: "string", default: "32", help: "most tokens to add" },
  temperature: { type: "string", default: "0", help: "0 = greedy; otherwise sampling temperature" },
  "top-k": { type: "string", help: "sample among the k most likely tokens" },
  "top-p": { type: "string", help: "sample among the most likely tokens up to probability p" },
  seed: { type: "string", default: "0", help: "sampling seed" },
  backend: { type: "string", default: "auto", help: "auto | webgpu | wasm | cpu" },
  json: { type: "boolean", help: "print one JSON document on stdout (tokens stream to stderr)" },
  config: CONFIG_FLAG,
};

/** The model with an adapter (PEFT directory or compact file) folded into its weights. */
async function withAdapter(model: LoadedModel, path: string): Promise<LoadedModel> {
  const shapes: Record<string, number[]> = {};
  const graph = model.family.graph(model.config, { batch: 1, seqLen: 1, task: "lm" });
  for (const p of graph.params) shapes[p.name!] = [...p.shape];
  const { adapter, tensors } = await loadAdapter(path, shapes, { baseLayout: "graph" }).catch(
    (e: Error) => {
      throw new Error(`adapter ${path}: ${e.message}`);
    },
  );
  const merged = await merge(adapter, { ...model.weights, ...tensors });
  const weights = { ...model.weights };
  for (const name of Object.keys(model.weights)) if (merged[name]) weights[name] = merged[name];
  return { ...model, weights };
}

/**
 * `generate`: streams the continuation to stdout as it comes (or, with `--json`, to stderr and
 * one JSON document to stdout).
 */
export async function generateCommand(args: readonly string[]): Promise<void> {
  const { values, positionals } = parseFlags("generate", args, GENERATE_FLAGS);
  if (positionals.length > 0) {
    throw new UsageError(`generate: unexpected argument "${positionals[0]}"`);
  }
  const base = required(values, "base", "generate");
  if (typeof values.prompt !== "string") throw new UsageError("generate: --prompt is required");
  const backend = backendFlag(String(values.backend));
  const temperature = numberFlag(values, "temperature")!;
  if (temperature < 0) throw new UsageError(`--temperature must be ≥ 0, got "${temperature}"`);
  const topP = numberFlag(values, "top-p");
  if (topP !== undefined && !(topP > 0 && topP <= 1)) {
    throw new UsageError(`--top-p must be in (0, 1], got "${values["top-p"]}"`);
  }
  const options = {
    prompt: values.prompt,
    maxNewTokens: intFlag(values, "max-new-tokens")!,
    temperature,
    topK: intFlag(values, "top-k"),
    topP,
    seed: intFlag(values, "seed", 0)!,
    backend,
  };
  let model = await loadModel(base);
  if (typeof values.adapter === "string") model = await withAdapter(model, values.adapter);
  const json = values.json === true;
  const encoder = new TextEncoder();
  const out = json ? Deno.stderr : Deno.stdout;
  const result = await generate(model, {
    ...options,
    onToken: (text) => out.writeSync(encoder.encode(text)),
  });
  out.writeSync(encoder.encode("\n"));
  const perToken = result.stepMs.length > 0
    ? result.stepMs.reduce((a, b) => a + b, 0) / result.stepMs.length
    : 0;
  if (json) {
    console.log(JSON.stringify({
      model: { path: base, family: model.family.name, adapter: values.adapter ?? null },
      prompt: options.prompt,
      prompt_ids: result.promptIds,
      text: result.text,
      ids: result.ids,
      backend,
      tokens_per_s: result.tokensPerS,
      prefill_ms: result.prefillMs,
      ms_per_token: perToken,
    }));
  } else {
    console.error(
      `${result.ids.length} tokens, ${result.tokensPerS.toFixed(1)} tokens/s ` +
        `(${backend}, prefill ${result.prefillMs.toFixed(0)} ms, ${perToken.toFixed(1)} ms/token)`,
    );
  }
}
