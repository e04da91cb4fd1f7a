/**
 * Reading PEFT's `adapter_config.json` strictly: every field this project
 * uses is type-checked and named in errors, and every option that would
 * change the weights in a way not implemented here (DoRA, trained biases,
 * layer replication, ...) is refused by name instead of being ignored.
 *
 * @module
 */
import type { VeraConfig } from "./vera.ts";
import type { LoraConfig } from "./lora.ts";

/** A PEFT config read into this project's adapter config. */
export type PeftDescribed =
  | { readonly kind: "vera"; readonly config: VeraConfig }
  | { readonly kind: "lora"; readonly config: LoraConfig };

/** Options with no effect on merged weights or inference that PEFT writes (any value accepted). */
const IGNORED = new Set([
  "peft_type",
  "task_type",
  "base_model_name_or_path",
  "revision",
  "inference_mode",
  "auto_mapping",
  "peft_version",
  "init_weights",
  "loftq_config",
  "eva_config",
  "corda_config",
  "lora_ga_config",
  "ensure_weight_tying",
  "megatron_core",
  "qalora_group_size",
  "save_projection",
  // Class names of a classifier (wgrad writes them; PEFT ignores them).
  "id2label",
  "label2id",
]);

/** LoRA options that change the model when set; refused unless at their "off" value. */
const LORA_UNSUPPORTED: Record<string, string> = {
  use_dora: "DoRA's magnitude vectors",
  lora_bias: "trained LoRA biases",
  use_qalora: "QA-LoRA",
  target_parameters: "targeting parameters instead of modules",
  layer_replication: "layer replication",
  trainable_token_indices: "trainable token embeddings",
  alora_invocation_tokens: "activated LoRA",
  megatron_config: "Megatron layers",
  arrow_config: "Arrow routing",
  kasa_config: "KaSA",
  monteclora_config: "MonteCLoRA",
  velora_config: "VeLoRA",
  use_bdlora: "BD-LoRA",
};

/**
 * LoRA initialisations that rewrite the base weights when the adapter is
 * created (PiSSA, OLoRA, CorDA, LoftQ, LoRA-GA): an adapter saved with one of
 * them, unconverted, is a delta against that rewritten base, so merging it
 * into the original base would write wrong weights. (PEFT's converted save,
 * `path_initial_model_for_weight_conversion`, writes `init_lora_weights: true`.)
 */
function rewritesBase(init: unknown): boolean {
  if (typeof init !== "string") return false;
  const v = init.toLowerCase();
  return v.startsWith("pissa") || ["olora", "corda", "loftq", "lora_ga"].includes(v);
}

/** `init_lora_weights` values that only initialise A and B (the base is untouched). */
const PLAIN_INITS = new Set([true, false, "gaussian", "eva", "orthogonal", "mica"]);

/** VeRA fields read by {@link describePeftConfig} (or with no effect on merged weights). */
const KNOWN_VERA = new Set([
  "r",
  "projection_prng_key",
  "d_initial",
  "vera_dropout",
  "target_modules",
  "layers_to_transform",
  "layers_pattern",
  "modules_to_save",
  "fan_in_fan_out",
  "bias",
]);

/** True for the values PEFT uses to mean "off": null, false, {}, []. */
function isOff(v: unknown): boolean {
  if (v === null || v === undefined || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === "object" && Object.keys(v as object).length === 0;
}

class ConfigReader {
  constructor(readonly config: Record<string, unknown>, readonly where: string) {}

  fail(field: string, message: string): never {
    throw new Error(`${this.where}: "${field}" ${message}`);
  }

  has(field: string): boolean {
    return Object.hasOwn(this.config, field) && this.config[field] !== null;
  }

  get(field: string): unknown {
    return Object.hasOwn(this.config, field) ? this.config[field] : undefined;
  }

  integer(field: string, min: number, fallback?: number): number {
    const v = this.get(field) ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < min) {
      this.fail(field, `must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    }
    return v as number;
  }

  finite(field: string, fallback: number): number {
    const v = this.get(field) ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.fail(field, `must be a finite number, got ${JSON.stringify(v) ?? String(v)}`);
    }
    return v;
  }

  probability(field: string): number {
    const v = this.finite(field, 0);
    if (!(v >= 0 && v < 1)) this.fail(field, `must be in [0, 1), got ${v}`);
    return v;
  }

  boolean(field: string): boolean {
    const v = this.get(field) ?? false;
    if (typeof v !== "boolean") this.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  names(field: string, allowString: boolean): string[] | string | undefined {
    const v = this.get(field);
    if (v === undefined || v === null) return undefined;
    if (allowString && typeof v === "string") return v;
    if (Array.isArray(v) && v.every((x) => typeof x === "string" && x !== "")) return v;
    this.fail(
      field,
      `must be a list of module names${allowString ? " or a regex string" : ""}, got ${
        JSON.stringify(v)
      }`,
    );
  }

  layers(): number[] | number | undefined {
    const v = this.get("layers_to_transform");
    if (v === undefined || v === null) return undefined;
    if (Number.isSafeInteger(v) && (v as number) >= 0) return v as number;
    if (Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0)) return v;
    this.fail(
      "layers_to_transform",
      `must be a layer index or a list of them, got ${JSON.stringify(v)}`,
    );
  }

  pattern(field: string, valid: (v: unknown) => boolean, expected: string) {
    const v = this.get(field);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) {
      this.fail(field, `must be an object of module patterns, got ${JSON.stringify(v)}`);
    }
    for (const [key, value] of Object.entries(v as Record<string, unknown>)) {
      if (!valid(value)) {
        this.fail(field, `entry "${key}" must be ${expected}, got ${JSON.stringify(value)}`);
      }
    }
    return v as Record<string, number>;
  }
}

/** Checks the file holds an object, and `peft_type` and `bias` are ones this project applies. */
function readerOf(config: unknown, where: string): { c: ConfigReader; type: "VERA" | "LORA" } {
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new Error(`${where}: must be a JSON object, got ${JSON.stringify(config)}`);
  }
  // Typed explicitly so that `c.fail` (which never returns) narrows `type`.
  const c: ConfigReader = new ConfigReader(config as Record<string, unknown>, where);
  const type = c.get("peft_type");
  if (type !== "VERA" && type !== "LORA") {
    c.fail("peft_type", `${JSON.stringify(type)} is not supported (VERA or LORA)`);
  }
  const bias = c.get("bias") ?? "none";
  if (bias !== "none") {
    c.fail(
      "bias",
      `${JSON.stringify(bias)} is not supported (only "none": trained biases are not applied)`,
    );
  }
  return { c, type };
}

/** The fields VeRA and LoRA share: which modules and layers are adapted, and which saved. */
function readTargets(c: ConfigReader, type: "VERA" | "LORA") {
  const named = c.names("target_modules", true);
  if (named === undefined || named.length === 0) {
    c.fail("target_modules", "must name at least one module");
  }
  const targetModules = named as string[] | string;
  const layersPattern = c.names("layers_pattern", true);
  // The combinations PEFT's config classes refuse are refused here too.
  if (layersPattern !== undefined && layersPattern.length > 0 && c.layers() === undefined) {
    c.fail("layers_pattern", "is set without layers_to_transform (PEFT refuses this too)");
  }
  if (type === "LORA" && typeof targetModules === "string") {
    for (const field of ["layers_to_transform", "layers_pattern"]) {
      if (c.has(field)) {
        c.fail(
          field,
          "cannot be used when target_modules is a regex string (PEFT refuses this too)",
        );
      }
    }
  }
  return {
    targetModules,
    ...(c.layers() !== undefined ? { layersToTransform: c.layers() } : {}),
    ...(layersPattern !== undefined ? { layersPattern } : {}),
    modulesToSave: (c.names("modules_to_save", false) as string[] | undefined) ?? [],
    fanInFanOut: c.boolean("fan_in_fan_out"),
  };
}

type PeftTargets = ReturnType<typeof readTargets>;

/** Refuses every field that is set (not off) and that `known` does not accept. */
function refuseUnknownFields(c: ConfigReader, known: (field: string) => boolean, message: string) {
  for (const field of Object.keys(c.config)) {
    if (!IGNORED.has(field) && !known(field) && !isOff(c.config[field])) c.fail(field, message);
  }
}

function describeVera(c: ConfigReader, targets: PeftTargets): PeftDescribed {
  refuseUnknownFields(
    c,
    (field) => KNOWN_VERA.has(field),
    "is not a VeRA option this version supports; refusing rather than ignoring it",
  );
  return {
    kind: "vera",
    config: {
      ...targets,
      r: c.integer("r", 1),
      projectionPrngKey: c.integer("projection_prng_key", 0, 0),
      dInitial: c.finite("d_initial", 0.1),
      dropout: c.probability("vera_dropout"),
    },
  };
}

/** Refuses LoRA initialisations and options that change the weights in ways not applied here. */
function checkLoraOptions(c: ConfigReader) {
  const init = c.get("init_lora_weights") ?? true;
  if (rewritesBase(init)) {
    c.fail(
      "init_lora_weights",
      `is ${
        JSON.stringify(init)
      }: that initialisation rewrites the base weights, so this adapter ` +
        "is a delta against a modified base; save it converted (init_lora_weights true) to merge it",
    );
  }
  if (!PLAIN_INITS.has(init as string | boolean)) {
    c.fail("init_lora_weights", `${JSON.stringify(init)} is not a known initialisation`);
  }
  for (const [field, what] of Object.entries(LORA_UNSUPPORTED)) {
    if (!isOff(c.get(field))) {
      c.fail(field, `is set (${JSON.stringify(c.get(field))}): ${what} is not supported`);
    }
  }
  refuseUnknownFields(
    c,
    (field) => KNOWN_LORA.has(field) || field in LORA_UNSUPPORTED,
    "is an option this version does not know; refusing rather than ignoring it",
  );
}

function describeLora(c: ConfigReader, targets: PeftTargets): PeftDescribed {
  checkLoraOptions(c);
  const excludeModules = c.names("exclude_modules", true);
  return {
    kind: "lora",
    config: {
      ...targets,
      ...(excludeModules !== undefined ? { excludeModules } : {}),
      r: c.integer("r", 1),
      alpha: c.finite("lora_alpha", 8),
      dropout: c.probability("lora_dropout"),
      useRslora: c.boolean("use_rslora"),
      rankPattern: c.pattern(
        "rank_pattern",
        (v) => Number.isSafeInteger(v) && (v as number) >= 1,
        "an integer ≥ 1",
      ),
      alphaPattern: c.pattern(
        "alpha_pattern",
        (v) => typeof v === "number" && Number.isFinite(v),
        "a finite number",
      ),
    },
  };
}

/**
 * The adapter config an `adapter_config.json` object describes; `where` names the file in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describePeftConfig } from "./peft_config.ts";
 * const lora = describePeftConfig({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj"], use_rslora: true }, "a.json");
 * assert.equal(lora.kind === "lora" && lora.config.useRslora, true);
 * assert.throws(() => describePeftConfig({ peft_type: "LORA", r: 4, target_modules: ["q"], use_dora: true }, "a.json"), /"use_dora" .*DoRA/);
 * ```
 */
export function describePeftConfig(config: unknown, where: string): PeftDescribed {
  const { c, type } = readerOf(config, where);
  const targets = readTargets(c, type);
  return type === "VERA" ? describeVera(c, targets) : describeLora(c, targets);
}

/** LoRA fields read by {@link describePeftConfig}. */
const KNOWN_LORA = new Set([
  "init_lora_weights",
  "r",
  "lora_alpha",
  "lora_dropout",
  "use_rslora",
  "rank_pattern",
  "alpha_pattern",
  "target_modules",
  "exclude_modules",
  "layers_to_transform",
  "layers_pattern",
  "modules_to_save",
  "fan_in_fan_out",
  "bias",
]);
