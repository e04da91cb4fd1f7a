/**
 * LoRA, the baseline, with Hugging Face PEFT's semantics: per targeted layer
 * `y += (alpha / r) · (drop(x) Aᵀ) Bᵀ` with `lora_A.weight [r, in]`
 * (Kaiming-uniform, a = √5, so bound 1/√in) and `lora_B.weight [out, r]`
 * (zeros, so the adapted model starts equal to the base).
 *
 * @module
 */
import { type Graph, makeNode, type Node } from "../compiler/ir.ts";
import { fill, mul } from "../ops/build.ts";
import { findTargets, pythonRegex, type Target, type TargetConfig } from "./targets.ts";
import { adaptLinears, checkFanInFanOut } from "./_adapt.ts";
import * as ops from "../ops/mod.ts";

/** LoRA's configuration (PEFT's `LoraConfig`, camel-cased; the fields this project supports). */
export interface LoraConfig extends TargetConfig {
  /** Rank (default 8). */
  readonly r?: number;
  /** Scaling numerator: the update is scaled by alpha / r (default 8). */
  readonly alpha?: number;
  /** Dropout on the adapter input, training only (default 0). */
  readonly dropout?: number;
  /** Modules that stay trainable besides the adapter (e.g. `["classifier"]`). */
  readonly modulesToSave?: readonly string[];
  /** Rank-stabilised scaling `alpha / √r` instead of `alpha / r` (PEFT's `use_rslora`, default false). */
  readonly useRslora?: boolean;
  /** Per-module ranks (PEFT's `rank_pattern`): key regex matched against the end of the path. */
  readonly rankPattern?: Readonly<Record<string, number>>;
  /** Per-module alphas (PEFT's `alpha_pattern`), keys as for `rankPattern`. */
  readonly alphaPattern?: Readonly<Record<string, number>>;
  /** The base stores targeted weights `[in, out]` (PEFT's `fan_in_fan_out`, default false). */
  readonly fanInFanOut?: boolean;
}

/** A LoRA config with defaults filled in. */
export type ResolvedLoraConfig =
  & Required<Omit<LoraConfig, "layersToTransform" | "layersPattern" | "excludeModules">>
  & TargetConfig;

/**
 * PEFT's `get_pattern_key`: the first key of a rank or alpha pattern that matches the end of the
 * module path (`(.*\.)?(key)$`), or undefined.
 */
function patternKey(pattern: Readonly<Record<string, number>>, module: string): string | undefined {
  return Object.keys(pattern).find((key) =>
    pythonRegex(`^(.*\\.)?(${key})$`, "rankPattern/alphaPattern").test(module)
  );
}

/**
 * The rank of one target: from `rankPattern` when a key matches its path, else `r`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loraRank, resolveLoraConfig } from "./lora.ts";
 * const config = resolveLoraConfig({ targetModules: ["q_proj"], r: 4, rankPattern: { "layers.1.q_proj": 2 } });
 * assert.equal(loraRank(config, "layers.1.q_proj"), 2);
 * assert.equal(loraRank(config, "layers.0.q_proj"), 4);
 * ```
 */
export function loraRank(config: ResolvedLoraConfig, module: string): number {
  const key = patternKey(config.rankPattern, module);
  return key === undefined ? config.r : config.rankPattern[key];
}

/**
 * The scale of one target's update: `alpha / r`, or `alpha / √r` with `useRslora`, where alpha
 * and r come from the patterns when a key matches (PEFT's LoRA layer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loraScale, resolveLoraConfig } from "./lora.ts";
 * assert.equal(loraScale(resolveLoraConfig({ targetModules: ["q"], r: 4, alpha: 8 }), "q"), 2);
 * assert.equal(loraScale(resolveLoraConfig({ targetModules: ["q"], r: 4, alpha: 8, useRslora: true }), "q"), 4);
 * ```
 */
export function loraScale(config: ResolvedLoraConfig, module: string): number {
  const key = patternKey(config.alphaPattern, module);
  const alpha = key === undefined ? config.alpha : config.alphaPattern[key];
  const r = loraRank(config, module);
  return config.useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

function checkPattern(
  pattern: unknown,
  what: string,
  valid: (v: unknown) => boolean,
  expected: string,
): Readonly<Record<string, number>> {
  if (pattern === undefined) return {};
  if (pattern === null || typeof pattern !== "object" || Array.isArray(pattern)) {
    throw new Error(
      `lora: ${what} must be an object of module patterns, got ${JSON.stringify(pattern)}`,
    );
  }
  for (const [key, v] of Object.entries(pattern)) {
    if (!valid(v)) throw new Error(`lora: ${what}["${key}"] must be ${expected}, got ${v}`);
    pythonRegex(`(${key})`, `lora: ${what}`);
  }
  return pattern as Record<string, number>;
}

/** What `lora` produced. */
export interface LoraAdapter {
  /** Always `"lora"`. */
  readonly kind: "lora";
  /** The resolved config. */
  readonly config: ResolvedLoraConfig;
  /** The adapted layers. */
  readonly targets: readonly Target[];
}

/** Param name of a target's `lora_A` weight. */
export function loraAName(module: string): string {
  return `${module}.lora_A.weight`;
}
/** Param name of a target's `lora_B` weight. */
export function loraBName(module: string): string {
  return `${module}.lora_B.weight`;
}

/** Fills LoRA's defaults and checks every field. */
export function resolveLoraConfig(config: LoraConfig): ResolvedLoraConfig {
  const r = config.r ?? 8;
  if (!Number.isInteger(r) || r < 1) throw new Error(`lora: r must be an integer ≥ 1, got ${r}`);
  const alpha = config.alpha ?? 8;
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) {
    throw new Error(`lora: alpha must be finite, got ${alpha}`);
  }
  const dropout = config.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) {
    throw new Error(`lora: dropout must be in [0, 1), got ${dropout}`);
  }
  if (config.useRslora !== undefined && typeof config.useRslora !== "boolean") {
    throw new Error(`lora: useRslora must be true or false, got ${config.useRslora}`);
  }
  const rankPattern = checkPattern(
    config.rankPattern,
    "rankPattern",
    (v) => Number.isInteger(v) && (v as number) >= 1,
    "an integer ≥ 1",
  );
  const alphaPattern = checkPattern(
    config.alphaPattern,
    "alphaPattern",
    (v) => typeof v === "number" && Number.isFinite(v),
    "a finite number",
  );
  return {
    ...config,
    r,
    alpha,
    dropout,
    modulesToSave: config.modulesToSave ?? [],
    useRslora: config.useRslora ?? false,
    rankPattern,
    alphaPattern,
    fanInFanOut: checkFanInFanOut(config.fanInFanOut, "lora"),
  };
}

/**
 * Rewrites a graph with LoRA on the targeted linear layers; base weights frozen.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { lora } from "./lora.ts";
 * const base = gptGraph({ vocabSize: 16, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1, head: "lm" }, { batch: 1, seqLen: 8 });
 * const { adapter } = lora(base, { r: 2, targetModules: ["q_proj"] });
 * strictEqual(adapter.targets[0].module, "layers.0.attn.q_proj");
 * ```
 */
export function lora(graph: Graph, config: LoraConfig): { graph: Graph; adapter: LoraAdapter } {
  const resolved = resolveLoraConfig(config);
  if (graph.params.some((p) => p.name!.endsWith(".lora_A.weight"))) {
    throw new Error("lora: the graph already has LoRA adapters");
  }
  const targets = findTargets(graph, resolved);
  const adapter: LoraAdapter = { kind: "lora", config: resolved, targets };
  const adapted = adaptLinears(graph, {
    kind: "lora",
    targets,
    modulesToSave: resolved.modulesToSave,
    dropout: resolved.dropout,
    branch: (target, x, seed) => loraBranch(adapter, target, x, seed),
    adapter,
  });
  return { graph: adapted, adapter };
}

/** `(alpha/r) · (drop(x) Aᵀ) Bᵀ` for one target, with its two new params. */
export function loraBranch(
  adapter: LoraAdapter,
  target: Target,
  x: Node,
  dropoutSeed?: Node,
): Node {
  const { dropout } = adapter.config;
  const r = loraRank(adapter.config, target.module);
  const a = makeNode(ops.param, [], {
    shape: [r, target.inFeatures],
    dtype: "f32",
    role: "trainable",
    init: { kind: "uniform", bound: 1 / Math.sqrt(target.inFeatures) },
  }, loraAName(target.module));
  const b = makeNode(ops.param, [], {
    shape: [target.outFeatures, r],
    dtype: "f32",
    role: "trainable",
    init: { kind: "zeros" },
  }, loraBName(target.module));
  const input = dropout > 0 && dropoutSeed !== undefined
    ? makeNode(ops.dropout, [x, dropoutSeed], {
      p: dropout,
      stream: 2000 + adapter.targets.indexOf(target),
    })
    : x;
  const down = makeNode(ops.matmul, [input, makeNode(ops.permute, [a], { perm: [1, 0] })], {});
  const up = makeNode(ops.matmul, [down, makeNode(ops.permute, [b], { perm: [1, 0] })], {});
  return mul(up, fill(loraScale(adapter.config, target.module), []));
}

/** Number of trainable LoRA parameters: `Σ_targets r · (in + out)`. */
export function loraTrainableCount(adapter: LoraAdapter): number {
  return adapter.targets.reduce(
    (n, t) => n + loraRank(adapter.config, t.module) * (t.inFeatures + t.outFeatures),
    0,
  );
}
