/**
 * Layers built from ops, with PyTorch's parameter names and layouts: a linear
 * weight is `[out, in]` and `y = x Wᵀ + b`.
 *
 * @module
 */
import { iota, param, type ParamInit, scope, type Tensor, where } from "../compiler/trace.ts";

/** Options of {@link linear}. */
export interface LinearOptions {
  /** Whether the layer has a bias (default true). */
  readonly bias?: boolean;
  /** Weight init (default PyTorch's: uniform ±1/√in). */
  readonly init?: ParamInit;
}

/**
 * `y = x Wᵀ + b` with `weight [out, in]` and `bias [out]` under module `name`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { trace } from "../compiler/trace.ts";
 * import { linear } from "./layers.ts";
 * const g = trace((x) => linear(x, "proj", 4), [{ name: "x", shape: [2, 3] }]);
 * deepStrictEqual(g.params.map((p) => `${p.name} [${p.shape}]`), ["proj.bias [4]", "proj.weight [4,3]"]);
 * ```
 */
export function linear(
  x: Tensor,
  name: string,
  outFeatures: number,
  options: LinearOptions = {},
): Tensor {
  const inFeatures = x.shape[x.rank - 1];
  const bound = 1 / Math.sqrt(Math.max(1, inFeatures));
  return scope(name, () => {
    const w = param("weight", [outFeatures, inFeatures], {
      init: options.init ?? { kind: "uniform", bound },
    });
    const y = x.matmul(w.T);
    if (options.bias === false) return y;
    return y.add(param("bias", [outFeatures], { init: { kind: "uniform", bound } }));
  });
}

/**
 * Layer normalisation over the last axis with `weight` (ones) and `bias` (zeros).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { trace } from "../compiler/trace.ts";
 * import { layerNorm } from "./layers.ts";
 * const g = trace((x) => layerNorm(x, "ln"), [{ name: "x", shape: [2, 3] }]);
 * strictEqual(g.params.length, 2);
 * ```
 */
export function layerNorm(x: Tensor, name: string, eps = 1e-5): Tensor {
  const d = x.shape[x.rank - 1];
  return scope(name, () =>
    x.normalize(eps)
      .mul(param("weight", [d], { init: { kind: "ones" } }))
      .add(param("bias", [d], { init: { kind: "zeros" } })));
}

/** Options of {@link causalSelfAttention}. */
export interface AttentionOptions {
  /** Number of heads; must divide the model width. */
  readonly heads: number;
  /** Init of the four projections' weights. */
  readonly init?: ParamInit;
}

/**
 * Causal multi-head self-attention on `x [B, T, D]` with `q_proj`, `k_proj`,
 * `v_proj` and `o_proj` (each `[D, D]` with bias) under module `name`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { trace } from "../compiler/trace.ts";
 * import { causalSelfAttention } from "./layers.ts";
 * const g = trace((x) => causalSelfAttention(x, "attn", { heads: 2 }), [{ name: "x", shape: [1, 3, 4] }]);
 * deepStrictEqual(g.outputs.out.shape, [1, 3, 4]);
 * ```
 */
export function causalSelfAttention(x: Tensor, name: string, options: AttentionOptions): Tensor {
  const [b, t, d] = x.shape;
  const h = options.heads;
  if (!Number.isInteger(h) || h < 1 || d % h !== 0) {
    throw new Error(`attention "${name}": ${h} heads do not divide width ${d}`);
  }
  const dh = d / h;
  return scope(name, () => {
    const split = (y: Tensor) => y.reshape([b, t, h, dh]).permute([0, 2, 1, 3]);
    const q = split(linear(x, "q_proj", d, { init: options.init }));
    const k = split(linear(x, "k_proj", d, { init: options.init }));
    const v = split(linear(x, "v_proj", d, { init: options.init }));
    const scores = q.matmul(k.T).mul(1 / Math.sqrt(dh));
    // Row i may look at columns j ≤ i; a large finite negative keeps fully-masked math NaN-free.
    const causal = iota([t, t], 0).ge(iota([t, t], 1));
    const probs = where(causal, scores, -1e9).softmax(-1);
    const merged = probs.matmul(v).permute([0, 2, 1, 3]).reshape([b, t, d]);
    return linear(merged, "o_proj", d, { init: options.init });
  });
}

/**
 * The transformer MLP: `fc2(gelu(fc1(x)))` with `fc1 [hidden, D]`, `fc2 [D, hidden]`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { trace } from "../compiler/trace.ts";
 * import { mlp } from "./layers.ts";
 * const g = trace((x) => mlp(x, "mlp", 8), [{ name: "x", shape: [2, 4] }]);
 * deepStrictEqual(g.params.find((p) => p.name === "mlp.fc1.weight")?.shape, [8, 4]);
 * ```
 */
export function mlp(x: Tensor, name: string, hidden: number, init?: ParamInit): Tensor {
  const d = x.shape[x.rank - 1];
  return scope(name, () => linear(linear(x, "fc1", hidden, { init }).gelu(), "fc2", d, { init }));
}
