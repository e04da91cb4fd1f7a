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

/** The targeting part of an adapter config. */
export interface TargetConfig {
  /** Module names (`["q_proj", "v_proj"]`) or one regex string matched against the whole path. */
  readonly targetModules: readonly string[] | string;
  /** Only these layer indices (default: all). */
  readonly layersToTransform?: readonly number[];
  /** The name before the layer index (default: any single path component). */
  readonly layersPattern?: string | readonly string[];
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

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The layer index in a module path (`layers.3.attn` → 3), or undefined. */
export function layerIndex(
  module: string,
  layersPattern?: string | readonly string[],
): number | undefined {
  const names = layersPattern === undefined
    ? "[^.]+"
    : (typeof layersPattern === "string" ? [layersPattern] : [...layersPattern]).map(escapeRegex)
      .join("|");
  const m = new RegExp(`(?:^|\\.)(?:${names})\\.(\\d+)(?:\\.|$)`).exec(module);
  return m ? Number(m[1]) : undefined;
}

/** Whether a module path is targeted by `targetModules` alone (PEFT's rule). */
export function matchesModule(module: string, targetModules: readonly string[] | string): boolean {
  if (typeof targetModules === "string") {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targetModules})$`);
    } catch (e) {
      throw new Error(
        `targetModules: invalid regex ${JSON.stringify(targetModules)}: ${(e as Error).message}`,
      );
    }
    return re.test(module);
  }
  return targetModules.some((t) => module === t || module.endsWith(`.${t}`));
}

/** Module paths of every linear-style weight (`<module>.weight` of rank 2) in a graph. */
export function linearModules(graph: Graph): Node[] {
  return graph.params.filter((p) => p.name!.endsWith(".weight") && p.shape.length === 2);
}

/**
 * Resolves the targets of a config against a graph's params. Throws when
 * nothing matches (listing the module paths that exist) or when a layer
 * index is out of range.
 *
 * @example
 * ```ts
 * import { gptGraph } from "../nn/gpt.ts";
 * import { findTargets } from "./targets.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 2, head: "lm" }, { batch: 1, seqLen: 4 });
 * console.log(findTargets(g, { targetModules: ["q_proj"], layersToTransform: [1] }).map((t) => t.module));
 * // ["layers.1.attn.q_proj"]
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
  const layers = modules.map((m) => layerIndex(m, config.layersPattern));
  if (config.layersToTransform !== undefined) {
    const present = new Set(layers.filter((l) => l !== undefined));
    for (const l of config.layersToTransform) {
      if (!Number.isInteger(l) || !present.has(l)) {
        throw new Error(
          `layersToTransform: layer ${l} does not exist (layers: ${
            [...present].sort((a, b) => a! - b!).join(", ")
          })`,
        );
      }
    }
  }
  const targets: Target[] = [];
  weights.forEach((w, i) => {
    if (!matchesModule(modules[i], targetModules)) return;
    if (config.layersToTransform !== undefined) {
      if (layers[i] === undefined || !config.layersToTransform.includes(layers[i]!)) return;
    }
    targets.push({
      module: modules[i],
      weight: w.name!,
      outFeatures: w.shape[0],
      inFeatures: w.shape[1],
      ...(layers[i] === undefined ? {} : { layer: layers[i] }),
    });
  });
  if (targets.length === 0) {
    throw new Error(
      `no module matched targetModules ${JSON.stringify(targetModules)}` +
        (config.layersToTransform ? ` in layers [${config.layersToTransform}]` : "") +
        `; linear modules are: ${modules.join(", ") || "none"}`,
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
 * import { findTargets, weightsGraph } from "./targets.ts";
 * const g = weightsGraph({ "attn.q_proj.weight": [4, 4] });
 * console.log(findTargets(g, { targetModules: ["q_proj"] })[0].module); // "attn.q_proj"
 * ```
 */
export function weightsGraph(weights: Readonly<Record<string, readonly number[]>>): Graph {
  const params = Object.entries(weights).map(([name, shape]) =>
    makeNode("param", [], {
      shape: [...shape],
      dtype: "f32",
      role: "frozen",
      init: { kind: "zeros" },
    }, name)
  );
  return makeGraph({ inputs: [], outputs: Object.fromEntries(params.map((p) => [p.name!, p])) });
}
