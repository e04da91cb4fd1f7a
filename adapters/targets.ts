/**
 * Which layers an adapter targets, with PEFT's matching rules: a
 * `targetModules` list entry matches a module path that equals it or ends
 * with `.entry`; a string is a regex that must match the whole path;
 * `layersToTransform` keeps only modules whose layer index (the number after
 * `layersPattern`, e.g. `layers.3.`) is listed.
 *
 * @module
 */
import { type Graph, makeGraph, makeNode, type Node } from "../compiler/ir.ts";
import * as ops from "../ops/mod.ts";

/** The targeting part of an adapter config (PEFT's fields, camel-cased). */
export interface TargetConfig {
  /**
   * Module names (`["q_proj", "v_proj"]`: a path equal to one, or ending in `.name`) or one
   * regex string matched against the whole path.
   */
  readonly targetModules: readonly string[] | string;
  /** Only these layer indices (default: all); ignored when `targetModules` is a regex string. */
  readonly layersToTransform?: readonly number[] | number;
  /** The name before the layer index (default: the first `<name>.<index>.` after a dot). */
  readonly layersPattern?: string | readonly string[];
  /** Modules never targeted: names (exact or `.name` suffix) or one full-match regex. */
  readonly excludeModules?: readonly string[] | string;
  /** Modules trained and saved whole (e.g. a new head); never targeted. */
  readonly modulesToSave?: readonly string[];
}

/** One targeted linear layer. */
export interface Target {
  /** Module path, e.g. `layers.0.attn.q_proj`. */
  readonly module: string;
  /** The weight param's path (`<module>.weight`). */
  readonly weight: string;
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** Layer index when the path has one. */
  readonly layer?: number;
}

/**
 * A regex written for Python's `re` as a JavaScript RegExp. Named groups are
 * spelled the JavaScript way; the sticky flag makes a match start at index 0
 * for every alternative, as `re.match` does.
 */
export function pythonRegex(source: string, what: string, flags = ""): RegExp {
  const js = source.replace(/\(\?P<([A-Za-z_]\w*)>/g, "(?<$1>").replace(
    /\(\?P=([A-Za-z_]\w*)\)/g,
    "\\k<$1>",
  );
  try {
    return new RegExp(js, flags);
  } catch (e) {
    throw new Error(`${what}: invalid regex ${JSON.stringify(source)}: ${(e as Error).message}`);
  }
}

/** `re.fullmatch(pattern, text)`. */
function fullMatch(pattern: string, text: string, what: string): boolean {
  return pythonRegex(`^(?:${pattern})$`, what).test(text);
}

/** `re.match(pattern, text)`: anchored at the start, not at the end. */
function matchAtStart(pattern: string, text: string, what: string): RegExpExecArray | null {
  const re = pythonRegex(pattern, what, "y");
  re.lastIndex = 0;
  return re.exec(text);
}

/**
 * The layer index PEFT reads from a module path: the number after the first
 * `<name>.` that follows a dot (`model.layers.3.attn` → 3), or after one of
 * `layersPattern` (`layers.3.attn` with pattern `layers` → 3).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerIndex } from "./targets.ts";
 * assert.equal(layerIndex("model.layers.3.self_attn.q_proj"), 3);
 * assert.equal(layerIndex("layers.3.attn.q_proj"), undefined); // no dot before "layers"
 * assert.equal(layerIndex("layers.3.attn.q_proj", "layers"), 3);
 * ```
 */
export function layerIndex(
  module: string,
  layersPattern?: string | readonly string[],
): number | undefined {
  const patterns = typeof layersPattern === "string" ? [layersPattern] : layersPattern ?? [];
  let m: RegExpExecArray | null = null;
  if (patterns.length === 0) {
    // Lazy: the first numbered segment is the layer (not an expert index further in).
    m = matchAtStart(String.raw`.*?\.[^.]*\.(?<idx>\d+)\.`, module, "layersPattern");
  } else {
    for (const pattern of patterns) {
      m = matchAtStart(String.raw`(?:^|.*?\.)${pattern}\.(?<idx>\d+)\.`, module, "layersPattern");
      if (m !== null) break;
    }
  }
  return m?.groups?.idx === undefined ? undefined : Number(m.groups.idx);
}

/** Whether `module` is listed: equal to an entry or ending in `.entry`. */
function listed(module: string, names: readonly string[]): boolean {
  return names.includes(module) || names.some((t) => module.endsWith(`.${t}`));
}

/**
 * Whether a module path is targeted by `targetModules` alone (PEFT's rule:
 * list entries match the whole path or a `.name` suffix; a string is a
 * full-match regex).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchesModule } from "./targets.ts";
 * assert.equal(matchesModule("layers.0.attn.q_proj", ["q_proj"]), true);
 * assert.equal(matchesModule("layers.0.attn.xq_proj", ["q_proj"]), false);
 * assert.equal(matchesModule("layers.0.attn.q_proj", ".*q_proj"), true);
 * ```
 */
export function matchesModule(module: string, targetModules: readonly string[] | string): boolean {
  if (typeof targetModules === "string") return fullMatch(targetModules, module, "targetModules");
  return listed(module, targetModules);
}

/**
 * PEFT's `check_target_module_exists`: whether an adapter targets the module
 * at `module` (its path in the base model). `excludeModules` and
 * `modulesToSave` win; a regex string ignores `layersToTransform`; so does a
 * list entry equal to the whole path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTargetModule } from "./targets.ts";
 * const config = { targetModules: ["q_proj"], layersToTransform: [1] };
 * assert.equal(isTargetModule("model.layers.1.self_attn.q_proj", config), true);
 * assert.equal(isTargetModule("model.layers.0.self_attn.q_proj", config), false);
 * ```
 */
export function isTargetModule(module: string, config: TargetConfig): boolean {
  const exclude = config.excludeModules;
  if (exclude !== undefined && exclude.length > 0) {
    const excluded = typeof exclude === "string"
      ? fullMatch(exclude, module, "excludeModules")
      : listed(module, exclude);
    if (excluded) return false;
  }
  for (const m of config.modulesToSave ?? []) {
    if (matchAtStart(String.raw`(^|.*\.)${m}($|\..*)`, module, "modulesToSave")) return false;
  }
  const { targetModules } = config;
  if (typeof targetModules === "string") return fullMatch(targetModules, module, "targetModules");
  if (targetModules.includes(module)) return true;
  if (!targetModules.some((t) => module.endsWith(`.${t}`))) return false;
  const layers = config.layersToTransform;
  const usingLayers = layers !== undefined &&
    (typeof layers === "number" || layers.length > 0);
  if (!usingLayers) return true;
  const index = layerIndex(module, config.layersPattern);
  if (index === undefined) return false;
  return typeof layers === "number" ? index === layers : layers.includes(index);
}

/** Module paths of every linear-style weight (`<module>.weight` of rank 2) in a graph. */
export function linearModules(graph: Graph): Node[] {
  return graph.params.filter((p) => p.name!.endsWith(".weight") && p.shape.length === 2);
}

/**
 * Resolves the targets of a config against a graph's params with PEFT's rule
 * ({@link isTargetModule}). Throws when nothing matches, listing the module
 * paths that exist.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { findTargets } from "./targets.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 2, head: "lm" }, { batch: 1, seqLen: 4 });
 * const targets = findTargets(g, { targetModules: ["q_proj"], layersToTransform: [1], layersPattern: "layers" });
 * assert.deepEqual(targets.map((t) => t.module), ["layers.1.attn.q_proj"]);
 * ```
 */
export function findTargets(graph: Graph, config: TargetConfig): Target[] {
  const { targetModules } = config;
  const emptyList = Array.isArray(targetModules) && targetModules.length === 0;
  if (targetModules === undefined || emptyList) {
    throw new Error("targetModules must name at least one module");
  }
  const weights = linearModules(graph);
  const modules = weights.map((w) => w.name!.slice(0, -".weight".length));
  const targets: Target[] = [];
  weights.forEach((w, i) => {
    if (!isTargetModule(modules[i], config)) return;
    const layer = layerIndex(modules[i], config.layersPattern);
    targets.push({
      module: modules[i],
      weight: w.name!,
      outFeatures: w.shape[0],
      inFeatures: w.shape[1],
      ...(layer === undefined ? {} : { layer }),
    });
  });
  if (targets.length === 0) {
    const layers = config.layersToTransform;
    const hint = layers === undefined || typeof targetModules === "string"
      ? ""
      : ` in layers [${layers}]` + (config.layersPattern === undefined
        ? " (PEFT reads a layer index only after a named segment that follows a dot, as in " +
          'model.layers.3.; set layersPattern, e.g. "layers", for other paths)'
        : ` with layersPattern ${JSON.stringify(config.layersPattern)}`);
    throw new Error(
      `no module matched targetModules ${JSON.stringify(targetModules)}${hint}; ` +
        `linear modules are: ${modules.join(", ") || "none"}`,
    );
  }
  return targets;
}

/**
 * A graph holding only frozen params of the given shapes: enough to resolve
 * targets against a model file without tracing the model.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { findTargets, weightsGraph } from "./targets.ts";
 * const g = weightsGraph({ "attn.q_proj.weight": [4, 4] });
 * strictEqual(findTargets(g, { targetModules: ["q_proj"] })[0].module, "attn.q_proj");
 * ```
 */
export function weightsGraph(weights: Readonly<Record<string, readonly number[]>>): Graph {
  const params = Object.entries(weights).map(([name, shape]) =>
    makeNode(ops.param, [], {
      shape: [...shape],
      dtype: "f32",
      role: "frozen",
      init: { kind: "zeros" },
    }, name)
  );
  return makeGraph({ inputs: [], outputs: Object.fromEntries(params.map((p) => [p.name!, p])) });
}
