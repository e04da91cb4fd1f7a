/**
 * The model-family registry: a family is a traced graph function plus how its
 * tensors are named and stored, so adding one touches no compiler code.
 * wgrad's own GPT (`wgrad-gpt`), Hugging Face's GPT-2 (`gpt2`) and the Llama
 * family (`llama`, which also reads `qwen2` and `mistral` checkpoints) are
 * registered here.
 *
 * @module
 */
import type { ModelFamily } from "./family_types.ts";
import { gpt2Family } from "./gpt2.ts";
import { llamaFamily } from "./llama.ts";
import { wgradGptFamily } from "./wgrad_gpt.ts";

const REGISTRY = new Map<string, ModelFamily>();
/** config.json `model_type` → registry name, for types another family reads. */
const ALIASES = new Map<string, string>();

/**
 * Adds a family (and the `model_type` values it also reads) to the registry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { familyNames, getFamily, registerFamily } from "./family_registry.ts";
 * registerFamily({ ...getFamily("wgrad-gpt"), name: "my-gpt" });
 * assert.ok(familyNames().includes("my-gpt"));
 * ```
 */
export function registerFamily(family: ModelFamily, aliases: readonly string[] = []): void {
  REGISTRY.set(family.name, family);
  for (const a of aliases) ALIASES.set(a, family.name);
}

/**
 * The registered family names and aliases, sorted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { familyNames } from "./family_registry.ts";
 * assert.ok(familyNames().includes("wgrad-gpt"));
 * ```
 */
export function familyNames(): string[] {
  return [...REGISTRY.keys(), ...ALIASES.keys()].sort();
}

/**
 * The family registered as `name` (or reading `model_type` `name`); an error lists the known ones.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getFamily } from "./family_registry.ts";
 * assert.throws(() => getFamily("bert"), /unsupported model_type "bert"/);
 * ```
 */
export function getFamily(name: string): ModelFamily {
  const family = REGISTRY.get(ALIASES.get(name) ?? name);
  if (!family) {
    throw new Error(`unsupported model_type "${name}" (supported: ${familyNames().join(", ")})`);
  }
  return family;
}

registerFamily(wgradGptFamily);
registerFamily(gpt2Family);
registerFamily(llamaFamily, ["qwen2", "mistral"]);
