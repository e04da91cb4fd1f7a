/**
 * VeRA (Kopiczko et al., ICLR 2024) as a compiler plugin, with Hugging Face
 * PEFT's semantics. A rewrite rule replaces every targeted `x Wᵀ` with
 *
 *   `x Wᵀ + lambdaB ⊙ ((lambdaD ⊙ (drop(x) A_sᵀ)) B_sᵀ)`
 *
 * where `A [r, maxIn]` and `B [maxOut, r]` are one shared pair of frozen
 * Kaiming-uniform projections — `random` nodes regenerated from a seed, never
 * stored — and `A_s = A[:, :in]`, `B_s = B[:out, :]` are leading slices. Only
 * `lambdaD [r]` (init `dInitial`) and `lambdaB [out]` (init 0) train.
 *
 * @module
 */
import { type Graph, makeNode, type Node } from "../compiler/ir.ts";
import { kaimingUniformBound } from "../prng/threefry.ts";
import { mul } from "../ops/build.ts";
import { findTargets, type Target, type TargetConfig } from "./targets.ts";
import { adaptLinears, checkFanInFanOut } from "./_adapt.ts";
import * as ops from "../ops/mod.ts";

/** VeRA's configuration (PEFT's `VeraConfig`, camel-cased). */
export interface VeraConfig extends TargetConfig {
  /** Rank of the shared projections (default 256). */
  readonly r?: number;
  /** Seed of the projections (PEFT's `projection_prng_key`, default 0). */
  readonly projectionPrngKey?: number;
  /** Initial value of every `lambdaD` (default 0.1). */
  readonly dInitial?: number;
  /** Dropout on the adapter branch's input, training only (default 0). */
  readonly dropout?: number;
  /** Only `"none"` is supported, as in PEFT's VeRA. */
  readonly bias?: "none";
  /** Modules that stay trainable besides the adapter (e.g. `["classifier"]`), like PEFT's `modules_to_save`. */
  readonly modulesToSave?: readonly string[];
  /**
   * PEFT's `fan_in_fan_out`: the base stores targeted weights `[in, out]` (GPT-2's Conv1D), so a
   * merge into the stored weight adds ΔWᵀ (default false).
   */
  readonly fanInFanOut?: boolean;
}

/** A config with every default filled in. */
export type ResolvedVeraConfig =
  & Required<Omit<VeraConfig, "layersToTransform" | "layersPattern" | "excludeModules">>
  & TargetConfig;

/** What `vera` produced: the config used, the targets and the projection sizes. */
export interface VeraAdapter {
  /** Always `"vera"`. */
  readonly kind: "vera";
  /** The resolved config. */
  readonly config: ResolvedVeraConfig;
  /** The adapted layers. */
  readonly targets: readonly Target[];
  /** Columns of A: the largest input width among targets. */
  readonly maxIn: number;
  /** Rows of B: the largest output width among targets. */
  readonly maxOut: number;
  /**
   * Where A and B come from: `"seed"` regenerates them (`random` nodes);
   * `"stored"` reads frozen params `vera_A` and `vera_B` (an imported PEFT
   * adapter, whose projections came from PyTorch's generator).
   */
  readonly projections: "seed" | "stored";
}

/** Names of the stored projections when `projections` is `"stored"`. */
export const VERA_A_NAME = "vera_A";
/** Name of the stored `vera_B`. */
export const VERA_B_NAME = "vera_B";

/** Stream ids of the two projections under the seed. */
export const VERA_STREAM_A = 0;
/** Stream id of `vera_B`. */
export const VERA_STREAM_B = 1;

/** Param name of a target's `lambdaD` (PEFT's state-dict key without the `base_model.model.` prefix). */
export function lambdaDName(module: string): string {
  return `${module}.vera_lambda_d`;
}
/** Param name of a target's `lambdaB`. */
export function lambdaBName(module: string): string {
  return `${module}.vera_lambda_b`;
}

/** Fills VeRA's defaults and checks every field; errors say what is wrong. */
export function resolveVeraConfig(config: VeraConfig): ResolvedVeraConfig {
  const r = config.r ?? 256;
  if (!Number.isInteger(r) || r < 1) throw new Error(`vera: r must be an integer ≥ 1, got ${r}`);
  const seed = config.projectionPrngKey ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new Error(`vera: projectionPrngKey must be an integer in [0, 2^32), got ${seed}`);
  }
  const dInitial = config.dInitial ?? 0.1;
  if (typeof dInitial !== "number" || !Number.isFinite(dInitial)) {
    throw new Error(`vera: dInitial must be a finite number, got ${dInitial}`);
  }
  const dropout = config.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) {
    throw new Error(`vera: dropout must be in [0, 1), got ${dropout}`);
  }
  if (config.excludeModules !== undefined) {
    throw new Error(
      "vera: excludeModules is not a field of PEFT's VeRA config; narrow targetModules",
    );
  }
  if ((config.bias ?? "none") !== "none") {
    throw new Error(`vera: bias must be "none", got ${config.bias}`);
  }
  return {
    ...config,
    r,
    projectionPrngKey: seed,
    dInitial,
    dropout,
    bias: "none",
    modulesToSave: config.modulesToSave ?? [],
    fanInFanOut: checkFanInFanOut(config.fanInFanOut, "vera"),
  };
}

/** The shared projections as `random` nodes: `A [r, maxIn]` and `B [maxOut, r]`. */
export function veraProjections(
  adapter: Pick<VeraAdapter, "config" | "maxIn" | "maxOut" | "projections">,
): { a: Node; b: Node } {
  const { r, projectionPrngKey: seed } = adapter.config;
  if (adapter.projections === "stored") {
    const frozen = (name: string, shape: number[]) =>
      makeNode(
        ops.param,
        [],
        { shape, dtype: "f32", role: "frozen", init: { kind: "zeros" } },
        name,
      );
    return {
      a: frozen(VERA_A_NAME, [r, adapter.maxIn]),
      b: frozen(VERA_B_NAME, [adapter.maxOut, r]),
    };
  }
  const a = makeNode(ops.random, [], {
    shape: [r, adapter.maxIn],
    seed,
    stream: VERA_STREAM_A,
    bound: kaimingUniformBound(adapter.maxIn),
    distribution: "uniformSymmetric",
  });
  const b = makeNode(ops.random, [], {
    shape: [adapter.maxOut, r],
    seed,
    stream: VERA_STREAM_B,
    bound: kaimingUniformBound(r),
    distribution: "uniformSymmetric",
  });
  return { a, b };
}

/** Leading slices `A[:, :in]` and `B[:out, :]` for one target. */
export function slicedProjections(
  adapter: VeraAdapter,
  target: Target,
): { aSlice: Node; bSlice: Node } {
  const { a, b } = veraProjections(adapter);
  const r = adapter.config.r;
  return {
    aSlice: makeNode(ops.slice, [a], { starts: [0, 0], ends: [r, target.inFeatures] }),
    bSlice: makeNode(ops.slice, [b], { starts: [0, 0], ends: [target.outFeatures, r] }),
  };
}

export { dropoutSeedInput, freezeRule } from "./_adapt.ts";

/** Options of {@link vera} that choose how, not what, it computes. */
export interface VeraOptions {
  /** Seeded projections (default) or stored params `vera_A`/`vera_B` (imported PEFT adapters). */
  readonly projections?: "seed" | "stored";
  /**
   * How each adapted layer is evaluated — the same function either way:
   * `"branch"`: `x Wᵀ + λb ⊙ ((λd ⊙ x A_sᵀ) B_sᵀ)` (work ∝ tokens·r·(in+out));
   * `"merged"`: `x (W + ΔW)ᵀ` with `ΔW = (λb ⊙ B_s)(λd ⊙ A_s)` built each step
   * (work ∝ r·in·out, plus tokens·in·out for ΔW's gradient) — far cheaper
   * when r exceeds the layer's width; `"auto"` (default) picks the cheaper.
   * Dropout on the adapter input always needs the branch form.
   */
  readonly form?: "auto" | "branch" | "merged";
}

/** Whether `x (W + ΔW)ᵀ` costs less than the branch for this target (multiply-adds, forward + backward). */
function mergedIsCheaper(adapter: VeraAdapter, target: Target, x: Node): boolean {
  const tokens = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const { inFeatures: i, outFeatures: o } = target;
  const r = adapter.config.r;
  const branch = 3 * tokens * r * (i + o);
  const merged = 3 * r * i * o + tokens * i * o;
  return merged < branch;
}

/** `x (W + ΔW)ᵀ` with `ΔW = (λb[:, None] ⊙ B_s)(λd[:, None] ⊙ A_s)`: the merged evaluation. */
export function veraMergedLinear(adapter: VeraAdapter, target: Target, x: Node, w: Node): Node {
  const { r } = adapter.config;
  const { aSlice, bSlice } = slicedProjections(adapter, target);
  const { lambdaD, lambdaB } = veraParams(adapter, target);
  const out = target.outFeatures;
  const scaledB = mul(bSlice, makeNode(ops.reshape, [lambdaB], { shape: [out, 1] }));
  const scaledA = mul(aSlice, makeNode(ops.reshape, [lambdaD], { shape: [r, 1] }));
  const delta = makeNode(ops.matmul, [scaledB, scaledA], {});
  return makeNode(ops.matmul, [
    x,
    makeNode(ops.permute, [makeNode(ops.add, [w, delta], {})], { perm: [1, 0] }),
  ], {});
}

/**
 * Rewrites a graph with VeRA: base weights frozen, one adapter branch per
 * targeted linear layer, `lambdaD`/`lambdaB` added as trainable params.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { vera } from "./vera.ts";
 * const base = gptGraph({ vocabSize: 16, maxSeqLen: 8, dModel: 8, heads: 2, layers: 2, head: "lm" }, { batch: 1, seqLen: 8 });
 * const { graph, adapter } = vera(base, { r: 4, targetModules: ["q_proj", "v_proj"] });
 * strictEqual(adapter.targets.length, 4);
 * strictEqual(graph.params.filter((p) => p.attrs.role === "trainable").length, 8);
 * ```
 */
export function vera(
  graph: Graph,
  config: VeraConfig,
  options: VeraOptions = {},
): { graph: Graph; adapter: VeraAdapter } {
  const resolved = resolveVeraConfig(config);
  if (graph.params.some((p) => p.name!.endsWith(".vera_lambda_d"))) {
    throw new Error("vera: the graph already has VeRA adapters");
  }
  const targets = findTargets(graph, resolved);
  const adapter: VeraAdapter = {
    kind: "vera",
    config: resolved,
    targets,
    maxIn: Math.max(...targets.map((t) => t.inFeatures)),
    maxOut: Math.max(...targets.map((t) => t.outFeatures)),
    projections: options.projections ?? "seed",
  };
  const adapted = adaptLinears(graph, {
    kind: "vera",
    targets,
    modulesToSave: resolved.modulesToSave,
    dropout: resolved.dropout,
    branch: (target, x, seed) => veraBranch(adapter, target, x, seed),
    replace: (target, x, w) => {
      const form = options.form ?? "auto";
      const merged = form === "merged" || (form === "auto" && mergedIsCheaper(adapter, target, x));
      if (!merged || resolved.dropout > 0) return undefined;
      return veraMergedLinear(adapter, target, x, w);
    },
    adapter,
  });
  return { graph: adapted, adapter };
}

/** `lambdaB ⊙ ((lambdaD ⊙ (drop(x) A_sᵀ)) B_sᵀ)` for one target, with its two new params. */
export function veraBranch(
  adapter: VeraAdapter,
  target: Target,
  x: Node,
  dropoutSeed?: Node,
): Node {
  const { dropout } = adapter.config;
  const { aSlice, bSlice } = slicedProjections(adapter, target);
  const { lambdaD, lambdaB } = veraParams(adapter, target);
  const input = dropout > 0 && dropoutSeed !== undefined
    ? makeNode(ops.dropout, [x, dropoutSeed], {
      p: dropout,
      stream: 1000 + adapter.targets.indexOf(target),
    })
    : x;
  const down = makeNode(ops.matmul, [input, makeNode(ops.permute, [aSlice], { perm: [1, 0] })], {});
  const up = makeNode(ops.matmul, [
    mul(down, lambdaD),
    makeNode(ops.permute, [bSlice], { perm: [1, 0] }),
  ], {});
  return mul(up, lambdaB);
}

/** A target's trainable `lambdaD [r]` (init `dInitial`) and `lambdaB [out]` (init 0). */
export function veraParams(adapter: VeraAdapter, target: Target): { lambdaD: Node; lambdaB: Node } {
  const { r, dInitial } = adapter.config;
  const lambdaD = makeNode(ops.param, [], {
    shape: [r],
    dtype: "f32",
    role: "trainable",
    init: { kind: "constant", value: dInitial },
  }, lambdaDName(target.module));
  const lambdaB = makeNode(ops.param, [], {
    shape: [target.outFeatures],
    dtype: "f32",
    role: "trainable",
    init: { kind: "zeros" },
  }, lambdaBName(target.module));
  return { lambdaD, lambdaB };
}

/** Number of trainable adapter parameters: `Σ_targets (out + r)`. */
export function veraTrainableCount(adapter: VeraAdapter): number {
  return adapter.targets.reduce((n, t) => n + t.outFeatures + adapter.config.r, 0);
}
