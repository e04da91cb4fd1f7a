/**
 * What VeRA and LoRA share: the rule that finds `x · Wᵀ` for a targeted
 * weight and adds an adapter branch, the rule that freezes the base, and the
 * per-step dropout seed input. Each adapter only says how its branch looks.
 */
import { type Graph, makeGraph, makeNode, type Node } from "../compiler/ir.ts";
import { rewrite, type Rule } from "../compiler/rewrite.ts";
import { matchesModule, type Target } from "./targets.ts";
import * as ops from "../ops/mod.ts";

/**
 * True for VeRA's and LoRA's own params (`<module>.vera_lambda_b`,
 * `<module>.lora_A.weight`, ...): never frozen by the freeze rule, and gone
 * from a merged model.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { isAdapterParam } from "./_adapt.ts";
 * strictEqual(isAdapterParam("layers.0.attn.q_proj.vera_lambda_d"), true);
 * ```
 */
export function isAdapterParam(name: string): boolean {
  return /\.(vera_lambda_[bd]|lora_[AB]\.weight)$/.test(name);
}

/** `fanInFanOut` as a boolean (default false), or an error naming the adapter kind. */
export function checkFanInFanOut(value: unknown, kind: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") {
    throw new Error(`${kind}: fanInFanOut must be true or false, got ${value}`);
  }
  return value;
}

function isTrainableBase(node: Node, keep: readonly string[]): boolean {
  if (node.attrs.role !== "trainable" || isAdapterParam(node.name!)) return false;
  const module = node.name!.slice(0, node.name!.lastIndexOf("."));
  return keep.length === 0 || !matchesModule(module, keep);
}

/** Rule: freeze every trainable base param except those under `modulesToSave`. */
export function freezeRule(modulesToSave: readonly string[]): Rule {
  return {
    name: "freeze-base",
    pattern: { op: "param", where: (n) => isTrainableBase(n, modulesToSave) },
    rewrite: ({ node }) => makeNode(ops.param, [], { ...node.attrs, role: "frozen" }, node.name),
  };
}

/** The input holding the per-step dropout seed, reusing the graph's own when it has one. */
export function dropoutSeedInput(graph: Graph): { node: Node; inputs: Node[] } {
  const existing = graph.inputs.find((n) => n.name === "dropoutSeed");
  if (existing !== undefined) return { node: existing, inputs: [...graph.inputs] };
  const node = makeNode(ops.input, [], { shape: [], dtype: "u32" }, "dropoutSeed");
  return { node, inputs: [...graph.inputs, node] };
}

/** How one adapter kind rewrites its targets. */
export interface AdaptSpec {
  /** `vera` or `lora`: names the rule, the errors and the graph's meta entry. */
  readonly kind: "vera" | "lora";
  /** The layers to adapt. */
  readonly targets: readonly Target[];
  /** Modules kept trainable besides the adapter. */
  readonly modulesToSave: readonly string[];
  /** Dropout on the branch input (> 0 adds the `dropoutSeed` input). */
  readonly dropout: number;
  /** The branch added to `x · Wᵀ` for one target. */
  readonly branch: (target: Target, x: Node, dropoutSeed?: Node) => Node;
  /**
   * Optionally replaces the whole `x · Wᵀ` instead (e.g. `x · (W + ΔW)ᵀ`, the
   * same function evaluated in another order); `undefined` keeps the branch.
   */
  readonly replace?: (target: Target, x: Node, weight: Node) => Node | undefined;
  /** Stored under `meta[kind]` of the adapted graph. */
  readonly adapter: unknown;
}

/** Freezes the base and adds `spec.branch` to every targeted `x · Wᵀ`; each target must be found. */
export function adaptLinears(graph: Graph, spec: AdaptSpec): Graph {
  const byWeight = new Map(spec.targets.map((t) => [t.weight, t]));
  const seed = spec.dropout > 0 ? dropoutSeedInput(graph) : undefined;
  const rewritten = new Set<string>();
  const adaptRule: Rule = {
    name: `${spec.kind}-linear`,
    pattern: {
      op: "matmul",
      inputs: [
        { capture: "x" },
        {
          op: "permute",
          attrs: { perm: [1, 0] },
          inputs: [{ op: "param", capture: "w", where: (n) => byWeight.has(n.name!) }],
        },
      ],
    },
    rewrite: ({ node, captures }) => {
      const target = byWeight.get(captures.w.name!)!;
      rewritten.add(target.weight);
      const replaced = spec.replace?.(target, captures.x, captures.w);
      if (replaced !== undefined) return replaced;
      return makeNode(ops.add, [node, spec.branch(target, captures.x, seed?.node)], {});
    },
  };
  const out = rewrite(graph, [freezeRule(spec.modulesToSave), adaptRule]);
  for (const t of spec.targets) {
    if (!rewritten.has(t.weight)) {
      throw new Error(
        `${spec.kind}: target ${t.module} is not a matmul with a param weight (x · ${t.weight}ᵀ)`,
      );
    }
  }
  return makeGraph({
    inputs: seed?.inputs ?? graph.inputs,
    outputs: out.outputs,
    meta: { ...graph.meta, [spec.kind]: spec.adapter },
  });
}
