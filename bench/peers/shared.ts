/**
 * What the peer implementations share with wgrad: the configuration, the
 * exact weights wgrad starts from (its `initParams` values and its VeRA
 * projections, regenerated from the same seed), the token batches and the
 * AdamW hyper-parameters, so every framework trains the same model on the
 * same data from the same point.
 *
 * @module
 */
import { type StepBenchConfig, stepGraphs, type TokenBatch } from "../../cli/bench.ts";
import { initParams } from "../../nn/init.ts";
import { kaimingUniformBound, uniformSymmetric } from "../../prng/threefry.ts";
import { VERA_STREAM_A, VERA_STREAM_B } from "../../adapters/vera.ts";

/**
 * The model of the peer comparison: the reference GPT (docs/ARCHITECTURE.md §9) with an LM head and
 * VeRA (PEFT semantics) on `targets`.
 *
 * @example
 * ```ts
 * import type { PeerConfig } from "./shared.ts";
 * const config: PeerConfig = { layers: 2, dModel: 64, heads: 4, seq: 32, batch: 8, vocab: 96, r: 256, targets: ["q_proj", "v_proj"] };
 * ```
 */
export type PeerConfig = Omit<StepBenchConfig, "method" | "backend" | "r"> & {
  /** VeRA rank (required: the peers implement VeRA only). */
  readonly r: number;
};

/**
 * One tensor: its shape and row-major f32 values.
 *
 * @example
 * ```ts
 * import type { HostTensor } from "./shared.ts";
 * const t: HostTensor = { shape: [2], data: new Float32Array([1, 2]) };
 * ```
 */
export interface HostTensor {
  /** Dimensions. */
  readonly shape: readonly number[];
  /** Values, row-major. */
  readonly data: Float32Array;
}

/**
 * Every tensor of the VeRA model, by wgrad's (PyTorch) names, plus the shared
 * projections `vera_A [r, maxIn]` and `vera_B [maxOut, r]`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { peerWeights } from "./shared.ts";
 * const w = peerWeights({ layers: 1, dModel: 8, heads: 2, seq: 4, batch: 1, vocab: 8, r: 4, targets: ["q_proj"] });
 * deepStrictEqual(w.trainable, ["layers.0.attn.q_proj.vera_lambda_b", "layers.0.attn.q_proj.vera_lambda_d"]);
 * ```
 */
export interface PeerWeights {
  /** Model params (frozen and trainable) by name. */
  readonly params: Readonly<Record<string, HostTensor>>;
  /** Names of the trainable params (the VeRA vectors), sorted. */
  readonly trainable: readonly string[];
  /** The shared frozen projections. */
  readonly veraA: HostTensor;
  /** `vera_B [maxOut, r]`. */
  readonly veraB: HostTensor;
}

/**
 * The config of wgrad's `bench step` for a peer config.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { wgradConfig } from "./shared.ts";
 * const config = wgradConfig({ layers: 1, dModel: 8, heads: 2, seq: 4, batch: 1, vocab: 8, r: 4, targets: ["q_proj"] });
 * strictEqual(config.method, "vera");
 * strictEqual(config.backend, "webgpu");
 * ```
 */
export function wgradConfig(config: PeerConfig): StepBenchConfig {
  return { ...config, method: "vera" as const, backend: "webgpu" as const };
}

/**
 * Options of {@link peerWeights}.
 *
 * @example
 * ```ts
 * import type { PeerWeightOptions } from "./shared.ts";
 * const forChecks: PeerWeightOptions = { lambdaB: "random", weightScale: 10 };
 * ```
 */
export interface PeerWeightOptions {
  /** `zeros` (VeRA's init, default) or uniform in [-0.5, 0.5) so the adapter branch counts. */
  readonly lambdaB?: "zeros" | "random";
  /**
   * Multiplies every frozen matrix (embeddings, projections, lm_head): with
   * the init's std 0.02 the logits are nearly 0 and the loss ≈ ln V whatever
   * the adapter does, so loss checks scale the weights up.
   */
  readonly weightScale?: number;
}

/**
 * The weights wgrad starts from, with `lambdaB` optionally replaced by
 * non-zero values (`lambdaB = 0` makes the adapter branch vanish at step 0,
 * so a loss comparison would not see it).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, ok } from "node:assert/strict";
 * import { peerWeights } from "./shared.ts";
 * const w = peerWeights({ layers: 1, dModel: 8, heads: 2, seq: 4, batch: 1, vocab: 8, r: 4, targets: ["q_proj"] }, { lambdaB: "random" });
 * deepStrictEqual(w.veraA.shape, [4, 8]); // [r, maxIn]
 * deepStrictEqual(w.veraB.shape, [8, 4]); // [maxOut, r]
 * ok(w.params["layers.0.attn.q_proj.vera_lambda_b"].data.some((x) => x !== 0)); // not VeRA's zeros
 * ```
 */
export function peerWeights(
  config: PeerConfig,
  options: PeerWeightOptions = {},
): PeerWeights {
  const seed = config.seed ?? 0;
  const { model } = stepGraphs(wgradConfig(config));
  const values = initParams(model, { seed });
  const params: Record<string, HostTensor> = {};
  const trainable = new Set(
    model.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name!),
  );
  let state = 12345 + seed;
  for (const p of model.params) {
    let data = values[p.name!];
    if (options.lambdaB === "random" && p.name!.endsWith(".vera_lambda_b")) {
      data = data.map(() => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return state / 2 ** 32 - 0.5;
      });
    }
    if (options.weightScale !== undefined && p.shape.length === 2 && !trainable.has(p.name!)) {
      data = data.map((x) => x * options.weightScale!);
    }
    params[p.name!] = { shape: p.shape, data };
  }
  const adapter = model.meta.vera as { maxIn: number; maxOut: number };
  const { r } = config;
  const veraA = uniformSymmetric(
    seed,
    VERA_STREAM_A,
    r * adapter.maxIn,
    kaimingUniformBound(adapter.maxIn),
  );
  const veraB = uniformSymmetric(seed, VERA_STREAM_B, adapter.maxOut * r, kaimingUniformBound(r));
  return {
    params,
    trainable: [...trainable].sort(),
    veraA: { shape: [r, adapter.maxIn], data: veraA },
    veraB: { shape: [adapter.maxOut, r], data: veraB },
  };
}

/**
 * Whether a module path is adapted (PEFT's suffix rule).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { isTarget } from "./shared.ts";
 * strictEqual(isTarget("layers.0.attn.q_proj", ["q_proj"]), true);
 * strictEqual(isTarget("layers.0.attn.q_proj", ["proj"]), false); // a whole path component
 * ```
 */
export function isTarget(module: string, targets: readonly string[]): boolean {
  return targets.some((t) => module === t || module.endsWith(`.${t}`));
}

/**
 * AdamW as wgrad's `adamw()` defaults and `bench step`'s VeRA learning rate.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ADAMW } from "./shared.ts";
 * strictEqual(ADAMW.lr, 0.01);
 * strictEqual(ADAMW.weightDecay, 0.01);
 * ```
 */
export const ADAMW: Readonly<{
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}> = Object.freeze({
  lr: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
});

/**
 * A training step of one framework, behind the interface the benchmark times.
 *
 * @example
 * ```ts
 * import type { PeerStep } from "./shared.ts";
 * async function time(step: PeerStep, k: number) {
 *   const t0 = performance.now();
 *   await step.run(k);
 *   return (performance.now() - t0) / k;
 * }
 * ```
 */
export interface PeerStep {
  /** Framework and device, e.g. `tfjs webgpu`. */
  readonly name: string;
  /** Runs `k` steps (batch `i mod n` at step i), reading back only the last loss, which it returns. */
  run(k: number): Promise<number>;
  /** Frees the framework's tensors. */
  dispose(): void;
}

/**
 * The batches every peer cycles through (step t uses batch `(t − 1) mod n`).
 *
 * @example
 * ```ts
 * import type { PeerBatches } from "./shared.ts";
 * const none: PeerBatches = [];
 * ```
 */
export type PeerBatches = readonly TokenBatch[];
