/**
 * Reading Hugging Face PEFT adapter directories (VeRA and LoRA) and applying
 * them to a graph. Imported VeRA adapters use their stored projections
 * (frozen params `vera_A`, `vera_B`), since PEFT's come from PyTorch's
 * generator. Writing them: `peft.ts`.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { type LoadedTensor, readSafetensors } from "../io/safetensors.ts";
import { readTextBounded } from "../io/read_file.ts";
import { vera } from "./vera.ts";
import { lora } from "./lora.ts";
import { isAdapterParam } from "./_adapt.ts";
import type { Adapter } from "./merge.ts";
import type { TargetConfig } from "./targets.ts";
import { describePeftConfig, type PeftDescribed } from "./peft_config.ts";
import type { AdapterSource } from "./resolve.ts";
import { PEFT_PREFIX, savedModuleParams } from "./peft.ts";

/** An adapter read from a PEFT directory, before it is applied to a graph. */
export interface PeftAdapterFiles {
  /** `"vera"` or `"lora"`. */
  readonly kind: "vera" | "lora";
  /** The raw `adapter_config.json`. */
  readonly config: Record<string, unknown>;
  /** Tensors keyed by module path (the `base_model.model.` prefix removed; `vera_A`, `vera_B`). */
  readonly tensors: Record<string, Float32Array>;
  /** Shapes of the same tensors. */
  readonly shapes: Record<string, number[]>;
}

// An adapter_config.json is a few kilobytes; anything past this is not one.
const CONFIG_LIMIT = 16 * 1024 * 1024;

function fail(dir: string, message: string): never {
  throw new Error(`PEFT adapter ${dir}: ${message}`);
}

/**
 * Reads and checks a PEFT adapter directory (VeRA or LoRA).
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { readPeft } from "./peft_import.ts";
 * await rejects(readPeft("/nonexistent"), /adapter_config\.json/);
 * ```
 */
export async function readPeft(dir: string): Promise<PeftAdapterFiles> {
  let configText: string;
  try {
    configText = await readTextBounded(`${dir}/adapter_config.json`, CONFIG_LIMIT, "file");
  } catch (e) {
    fail(dir, `cannot read adapter_config.json (${(e as Error).message})`);
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(configText);
  } catch (e) {
    fail(dir, `adapter_config.json is not valid JSON (${(e as Error).message})`);
  }
  // Checked field by field here, so a bad config is refused before any tensor is read.
  const described = describePeftConfig(config, `PEFT adapter ${dir}: adapter_config.json`);
  const file = await readSafetensors(`${dir}/adapter_model.safetensors`).catch((e: Error) =>
    fail(dir, e.message)
  );
  const tensors: Record<string, Float32Array> = {};
  const shapes: Record<string, number[]> = {};
  for (const [key, t] of file.tensors as Map<string, LoadedTensor>) {
    if (!(t.data instanceof Float32Array)) {
      fail(dir, `tensor ${key} is ${t.dtype}, expected F32 (or F16/BF16)`);
    }
    const name = key.startsWith(PEFT_PREFIX)
      ? key.slice(PEFT_PREFIX.length)
      : key.startsWith("base_model.")
      ? key.slice("base_model.".length)
      : fail(dir, `unexpected tensor name ${key}`);
    tensors[name] = t.data;
    shapes[name] = [...t.shape];
  }
  return { kind: described.kind, config, tensors, shapes };
}

/**
 * The targeting fields of a PEFT config, camel-cased (`target_modules`,
 * `layers_to_transform`, `layers_pattern`, `modules_to_save`, ...).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { peftTargetConfig } from "./peft_import.ts";
 * const files = { kind: "lora" as const, config: { peft_type: "LORA", r: 1, target_modules: ["q_proj"] }, tensors: {}, shapes: {} };
 * assert.deepEqual(peftTargetConfig(files).targetModules, ["q_proj"]);
 * ```
 */
export function peftTargetConfig(
  files: PeftAdapterFiles,
  dir = "<memory>",
): TargetConfig & { modulesToSave: readonly string[] } {
  const { config } = adapterConfigFromPeft(files, dir);
  return { ...config, modulesToSave: config.modulesToSave ?? [] };
}

/**
 * The adapter config a PEFT `adapter_config.json` describes, camel-cased and
 * checked field by field (see `describePeftConfig`): options that would
 * change the weights and are not implemented here are refused by name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adapterConfigFromPeft } from "./peft_import.ts";
 * const files = { kind: "lora" as const, config: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj"] }, tensors: {}, shapes: {} };
 * const described = adapterConfigFromPeft(files);
 * assert.equal(described.kind === "lora" && described.config.alpha, 8);
 * ```
 */
export function adapterConfigFromPeft(
  files: PeftAdapterFiles,
  dir = "<memory>",
): PeftDescribed {
  return describePeftConfig(files.config, `PEFT adapter ${dir}: adapter_config.json`);
}

/**
 * The PEFT files as an {@link AdapterSource}, for `resolveAdapter`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { peftSource } from "./peft_import.ts";
 * const files = { kind: "lora" as const, config: { peft_type: "LORA", r: 1, target_modules: ["q"] }, tensors: {}, shapes: {} };
 * assert.equal(peftSource(files, "dir").projections, "stored");
 * ```
 */
export function peftSource(files: PeftAdapterFiles, dir = "<memory>"): AdapterSource {
  const described = adapterConfigFromPeft(files, dir);
  return {
    kind: described.kind,
    config: described.config,
    tensors: files.tensors,
    shapes: files.shapes,
    projections: "stored",
    where: `PEFT adapter ${dir}`,
  };
}

/**
 * Applies a PEFT adapter to a base graph: rewrites it (VeRA with the stored
 * projections as frozen params `vera_A`/`vera_B`) and returns the params the
 * adapter brings, keyed by graph param name. Shapes are checked against the
 * graph; missing or unexpected tensors are errors.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { initParams } from "../nn/init.ts";
 * import { vera } from "./vera.ts";
 * import { exportPeft } from "./peft.ts";
 * import { importPeft, readPeft } from "./peft_import.ts";
 * const base = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"] });
 * const dir = await Deno.makeTempDir();
 * await exportPeft(`${dir}/a`, adapter, initParams(graph));
 * const imported = importPeft(base, await readPeft(`${dir}/a`));
 * strictEqual(imported.adapter.kind === "vera" && imported.adapter.projections, "stored");
 * ```
 */
export function importPeft(
  base: Graph,
  files: PeftAdapterFiles,
  dir = "<memory>",
): { graph: Graph; adapter: Adapter; params: Record<string, Float32Array> } {
  // An imported adapter is for inference and merging: no dropout input.
  const described = adapterConfigFromPeft(files, dir);
  const result = described.kind === "vera"
    ? vera(base, { ...described.config, dropout: 0 }, { projections: "stored" })
    : lora(base, { ...described.config, dropout: 0 });
  const expected = new Map<string, number[]>();
  for (const p of result.graph.params) {
    const adapterParam = isAdapterParam(p.name!) ||
      p.name === "vera_A" ||
      p.name === "vera_B";
    if (adapterParam) expected.set(p.name!, [...p.shape]);
  }
  for (const p of savedModuleParams(result.adapter, result.graph)) expected.set(p.name, p.shape);
  const params: Record<string, Float32Array> = {};
  for (const [name, shape] of expected) {
    const have = files.shapes[name];
    if (have === undefined) fail(dir, `missing tensor ${name} [${shape}]`);
    if (have.join() !== shape.join()) {
      fail(dir, `tensor ${name} has shape [${have}], the model needs [${shape}]`);
    }
    params[name] = files.tensors[name];
  }
  const extra = Object.keys(files.tensors).filter((k) => !expected.has(k));
  if (extra.length > 0) fail(dir, `unexpected tensors: ${extra.join(", ")}`);
  return { ...result, params };
}
