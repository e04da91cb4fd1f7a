/**
 * The adapter side of `finetune`: the model each `--method` trains (VeRA, LoRA, full or head
 * only, with the targeting flags) and the PEFT directory the trained adapter is written as.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { rewrite } from "../compiler/rewrite.ts";
import { freezeRule, vera } from "../adapters/vera.ts";
import { lora } from "../adapters/lora.ts";
import { peftFiles } from "../adapters/peft.ts";
import type { Adapter } from "../adapters/merge.ts";
import { writeDirAtomic } from "../io/atomic.ts";
import type { LoadedModel } from "../nn/families.ts";
import { parseHubRef } from "../io/hub.ts";
import { intFlag, numberFlag, UsageError } from "./_args.ts";
import { labelMaps } from "./_task.ts";

/** The values of `--method`. */
export const METHODS = ["vera", "lora", "full", "head"] as const;
/** A fine-tuning method: which params train. */
export type Method = typeof METHODS[number];
/**
 * The peak learning rate of each method without `--lr`. VeRA and LoRA rates picked by validation
 * accuracy on spam (bench/methods_table.ts sweeps, BENCHMARKS.md).
 */
export const DEFAULT_LR: Record<Method, number> = {
  vera: 3e-2,
  lora: 1e-2,
  full: 1e-3,
  head: 3e-3,
};

/** A `--rank-pattern`/`--alpha-pattern` value: a JSON object of positive numbers by module key. */
function patternFlag(values: Record<string, unknown>, name: string): Record<string, number> {
  const v = values[name];
  if (v === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(v));
  } catch {
    throw new UsageError(`--${name} must be a JSON object such as '{"q_proj": 4}', got ${v}`);
  }
  const ok = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) &&
    Object.values(parsed).every((n) => typeof n === "number" && Number.isFinite(n) && n > 0);
  if (!ok) {
    throw new UsageError(`--${name} must map module names to positive numbers, got ${v}`);
  }
  return parsed as Record<string, number>;
}

/** A comma-separated flag's items, or undefined when the flag is not given. */
function listFlag(values: Record<string, unknown>, name: string): string[] | undefined {
  return values[name] === undefined
    ? undefined
    : String(values[name]).split(",").map((t) => t.trim()).filter((t) => t);
}

/** PEFT's layer and module selection from `--target-layers`, `--exclude-modules`, `--layers-pattern`. */
function targetingOf(values: Record<string, unknown>) {
  const layers = listFlag(values, "target-layers")?.map((l) => {
    if (!/^\d+$/.test(l)) throw new UsageError(`--target-layers must be layer indices, got "${l}"`);
    return Number(l);
  });
  const excluded = listFlag(values, "exclude-modules");
  return {
    ...(layers ? { layersToTransform: layers } : {}),
    ...(excluded ? { excludeModules: excluded } : {}),
    ...(values["layers-pattern"] === undefined
      ? {}
      : { layersPattern: String(values["layers-pattern"]) }),
  };
}

/**
 * The model of a method: the task's graph with the adapter applied or params frozen. The
 * training graph has the adapter's dropout; the evaluation graph (`training` false) has none.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { applyMethod } from "./_finetune_adapter.ts";
 * const model = gptGraph(
 *   { vocabSize: 260, maxSeqLen: 8, dModel: 8, heads: 2, layers: 2, head: "lm" },
 *   { batch: 1, seqLen: 8 },
 * );
 * const values = { r: "2", "target-layers": "1", "layers-pattern": "layers", "adapter-dropout": "0" };
 * const defaults = { targets: ["q_proj", "v_proj"], modulesToSave: [] };
 * const { adapter } = applyMethod(model, "lora", values, 0, defaults);
 * strictEqual(adapter!.targets.length, 2); // q_proj and v_proj of layer 1 only
 * ```
 */
export function applyMethod(
  model: Graph,
  method: Method,
  values: Record<string, unknown>,
  seed: number,
  defaults: { targets: readonly string[]; modulesToSave: string[] },
  training = true,
): { graph: Graph; adapter?: Adapter } {
  const targetModules = values.targets === undefined
    ? [...defaults.targets]
    : String(values.targets).split(",").map((t) => t.trim()).filter((t) => t);
  const { modulesToSave } = defaults;
  const targeting = targetingOf(values);
  const dropout = training
    ? numberFlag(values, "adapter-dropout", { min: 0, max: 1, maxExclusive: true })!
    : 0;
  try {
    if (method === "vera") {
      const r = intFlag(values, "r") ?? 256;
      const dInitial = numberFlag(values, "d-initial");
      return vera(model, {
        r,
        targetModules,
        dInitial,
        projectionPrngKey: seed,
        modulesToSave,
        dropout,
        ...targeting,
      });
    }
    if (method === "lora") {
      const r = intFlag(values, "r") ?? 8;
      return lora(model, {
        r,
        alpha: numberFlag(values, "alpha") ?? r,
        targetModules,
        modulesToSave,
        dropout,
        useRslora: !!values.rslora,
        rankPattern: patternFlag(values, "rank-pattern"),
        alphaPattern: patternFlag(values, "alpha-pattern"),
        ...targeting,
      });
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`finetune: ${(e as Error).message}`);
  }
  return { graph: method === "full" ? model : rewrite(model, [freezeRule(modulesToSave)]) };
}

/**
 * The PEFT adapter directory's files for this base: the task type, GPT-2's
 * `fan_in_fan_out` (its Conv1D weights are stored [in, out]), and the class
 * names of a classifier (`id2label`/`label2id`, which PEFT ignores).
 */
function adapterFiles(
  adapter: Adapter,
  params: Record<string, Float32Array>,
  graph: Graph,
  model: LoadedModel,
  basePath: string,
  labels: string[] | undefined,
): Record<string, Uint8Array | string> {
  // A Hub model is named as PEFT names it (ORG/NAME), so from_pretrained can fetch it.
  const baseModel = parseHubRef(basePath)?.repo ?? basePath;
  const files = peftFiles(adapter, params, { graph, baseModel });
  const config = JSON.parse(files["adapter_config.json"] as string);
  const targets = adapter.targets.map((t) => t.weight);
  config.fan_in_fan_out = targets.some((w) => model.family.storedLayout(w).transposed);
  config.task_type = model.source.kind === "hf-dir"
    ? (labels ? "SEQ_CLS" : "CAUSAL_LM")
    : config.task_type;
  if (labels) Object.assign(config, labelMaps(labels));
  const sorted = Object.fromEntries(Object.keys(config).sort().map((k) => [k, config[k]]));
  return { ...files, "adapter_config.json": JSON.stringify(sorted, null, 2) + "\n" };
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    total += e.isFile ? (await Deno.stat(`${dir}/${e.name}`)).size : 0;
  }
  return total;
}

/**
 * Writes the trained adapter as a PEFT directory (atomically) and returns its size in bytes.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { loadModel } from "../nn/families.ts";
 * import { saveBaseModel } from "../train/checkpoint.ts";
 * import { applyMethod, writeAdapter } from "./_finetune_adapter.ts";
 * const dir = await Deno.makeTempDir();
 * const config = { vocabSize: 260, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1, head: "lm" } as const;
 * const model = gptGraph(config, { batch: 1, seqLen: 8 });
 * await saveBaseModel(`${dir}/base.safetensors`, config, model, initParams(model, { seed: 0 }));
 * const base = await loadModel(`${dir}/base.safetensors`);
 * const defaults = { targets: ["q_proj"], modulesToSave: [] };
 * const { graph, adapter } = applyMethod(model, "vera", { r: "2", "adapter-dropout": "0" }, 0, defaults);
 * const params = initParams(graph, { seed: 0 });
 * const bytes = await writeAdapter(`${dir}/adapter`, adapter!, params, graph, base, "base.safetensors", undefined);
 * ok(bytes > 0);
 * strictEqual(JSON.parse(await Deno.readTextFile(`${dir}/adapter/adapter_config.json`)).peft_type, "VERA");
 * ```
 */
export async function writeAdapter(
  dir: string,
  adapter: Adapter,
  params: Record<string, Float32Array>,
  graph: Graph,
  model: LoadedModel,
  basePath: string,
  labels: string[] | undefined,
): Promise<number> {
  await writeDirAtomic(dir, adapterFiles(adapter, params, graph, model, basePath, labels));
  return await bytesUnder(dir);
}
