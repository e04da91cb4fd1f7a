/**
 * The benchmark's model and training step in jax-js (`@jax-js/jax`, JAX's
 * API in JavaScript, with its own kernel compiler for WebGPU and Wasm): the
 * reference GPT (docs/ARCHITECTURE.md §9) with an LM head, VeRA as in PEFT on the targeted layers
 *
 *   `y = x Wᵀ + b + λb ⊙ ((λd ⊙ (x A_sᵀ)) B_sᵀ)`   (W, b, A, B frozen)
 *
 * mean next-token cross-entropy and AdamW (PyTorch's, as wgrad's `adamw()`),
 * all in one `jit(valueAndGrad(...) + update)` function, so jax-js traces the
 * whole step once and fuses what it can, as `jax.jit` would.
 *
 * jax-js counts references: every function consumes its array arguments, and
 * `.ref` adds a reference for a second use. The model reads each weight with
 * `.ref` and disposes its argument trees at the end.
 *
 * @module
 */
import * as jaxjs from "@jax-js/jax";
import {
  ADAMW,
  isTarget,
  type PeerBatches,
  type PeerConfig,
  type PeerStep,
  type PeerWeights,
} from "./shared.ts";

const { defaultDevice, init, jit, nn, numpy: np, tree, valueAndGrad } = jaxjs;
type JaxArray = jaxjs.Array;

/**
 * jax-js devices the benchmark compares.
 *
 * @example
 * ```ts
 * import type { JaxDevice } from "./jaxjs_gpt.ts";
 * const devices: JaxDevice[] = ["webgpu", "wasm"];
 * ```
 */
export type JaxDevice = "webgpu" | "wasm";

type Params = Record<string, JaxArray>;

/**
 * Starts jax-js's backends and returns the devices it found (`cpu`, `wasm`,
 * and `webgpu` where `navigator.gpu` has an adapter).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { jaxDevices } from "./jaxjs_gpt.ts";
 * const expected = await navigator.gpu.requestAdapter() ? ["cpu", "wasm", "webgpu"] : ["cpu", "wasm"];
 * deepStrictEqual(await jaxDevices(), expected);
 * ```
 */
export async function jaxDevices(): Promise<string[]> {
  return await init();
}

/** The first `size` entries of `x` along `axis` (PEFT's `A[:, :in]`, `B[:out, :]`). */
function leading(x: JaxArray, size: number, axis: number): JaxArray {
  const [head, rest] = np.split(x, [size], axis);
  rest.dispose();
  return head;
}

/** The loss of the VeRA GPT; consumes `lambdas`, `frozen`, `tokens` and `oneHot`. */
function gptLoss(
  config: PeerConfig,
  lambdas: Params,
  frozen: Params,
  tokens: JaxArray,
  oneHot: JaxArray,
): JaxArray {
  const { batch: b, seq: s, dModel: d, heads: h, layers } = config;
  const n = b * s;
  const dh = d / h;
  const w = (name: string) => {
    const t = frozen[name] ?? lambdas[name];
    if (t === undefined) throw new Error(`jax-js peer: no tensor "${name}"`);
    return t.ref;
  };
  const linear = (x: JaxArray, module: string, bias = true): JaxArray => {
    const weight = w(`${module}.weight`);
    const [out, inn] = weight.shape;
    let y = np.matmul(x.ref, weight.transpose());
    if (bias) y = y.add(w(`${module}.bias`));
    if (!isTarget(module, config.targets)) {
      x.dispose();
      return y;
    }
    const a = w("vera_A"), bb = w("vera_B");
    const aSlice = inn === a.shape[1] ? a : leading(a, inn, 1);
    const bSlice = out === bb.shape[0] ? bb : leading(bb, out, 0);
    const down = np.matmul(x, aSlice.transpose()).mul(w(`${module}.vera_lambda_d`));
    const up = np.matmul(down, bSlice.transpose());
    return y.add(up.mul(w(`${module}.vera_lambda_b`)));
  };
  const layerNorm = (x: JaxArray, module: string): JaxArray => {
    const centred = x.ref.sub(x.mean(-1, { keepdims: true }));
    const variance = centred.ref.mul(centred.ref).mean(-1, { keepdims: true });
    const normed = centred.div(np.sqrt(variance.add(1e-5)));
    return normed.mul(w(`${module}.weight`)).add(w(`${module}.bias`));
  };
  const heads = (x: JaxArray) => x.reshape([b, s, h, dh]).transpose([0, 2, 1, 3]);
  const attention = (x: JaxArray, module: string): JaxArray => {
    const q = heads(linear(x.ref, `${module}.q_proj`));
    const k = heads(linear(x.ref, `${module}.k_proj`));
    const v = heads(linear(x, `${module}.v_proj`));
    const scores = np.matmul(q, k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(dh));
    const probs = nn.softmax(scores.add(w("causal")), -1);
    const merged = np.matmul(probs, v).transpose([0, 2, 1, 3]).reshape([n, d]);
    return linear(merged, `${module}.o_proj`);
  };
  const gelu = (x: JaxArray) => {
    const inner = x.ref.add(x.ref.mul(x.ref).mul(x.ref).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
    return x.mul(0.5).mul(np.tanh(inner).add(1));
  };
  let x = np.take(w("embed.weight"), tokens, 0).add(w("posTiled"));
  for (let i = 0; i < layers; i++) {
    const p = `layers.${i}`;
    x = x.ref.add(attention(layerNorm(x, `${p}.ln1`), `${p}.attn`));
    const hidden = gelu(linear(layerNorm(x.ref, `${p}.ln2`), `${p}.mlp.fc1`));
    x = x.add(linear(hidden, `${p}.mlp.fc2`));
  }
  const logits = linear(layerNorm(x, "ln_f"), "lm_head", false);
  const loss = nn.logSoftmax(logits, -1).mul(oneHot).sum().mul(-1 / n);
  tree.dispose(lambdas);
  tree.dispose(frozen);
  return loss;
}

/**
 * Builds the VeRA training step in jax-js on `device` with the given weights
 * and batches. The first `run` traces and compiles the step.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { randomBatches } from "../../cli/bench.ts";
 * import { peerWeights, type PeerConfig } from "./shared.ts";
 * import { jaxDevices, jaxVeraStep } from "./jaxjs_gpt.ts";
 * await jaxDevices();
 * const config: PeerConfig = { layers: 1, dModel: 16, heads: 2, seq: 8, batch: 2, vocab: 16, r: 8, targets: ["q_proj", "v_proj"] };
 * const step = jaxVeraStep(config, peerWeights(config), randomBatches(config, { count: 2 }), { device: "wasm" });
 * const loss = await step.run(1); // the loss at step 0 (before the update)
 * ok(Math.abs(loss - Math.log(config.vocab)) < 0.05); // the init's logits are nearly 0: ≈ ln V
 * step.dispose();
 * ```
 */
export function jaxVeraStep(
  config: PeerConfig,
  weights: PeerWeights,
  batches: PeerBatches,
  options: { readonly device: JaxDevice },
): PeerStep {
  defaultDevice(options.device);
  const { batch: b, seq: s, dModel: d, vocab: v } = config;
  const trainableNames = new Set(weights.trainable);
  const upload = (data: Float32Array, shape: readonly number[]) =>
    np.array(Float32Array.from(data), {
      shape: [...shape],
      dtype: np.float32,
      device: options.device,
    });
  const frozen: Params = {};
  let lambdas: Params = {};
  let m: Params = {}, sq: Params = {};
  for (const [name, t] of Object.entries(weights.params)) {
    if (trainableNames.has(name)) {
      lambdas[name] = upload(t.data, t.shape);
      m[name] = np.zeros([...t.shape], { dtype: np.float32, device: options.device });
      sq[name] = np.zeros([...t.shape], { dtype: np.float32, device: options.device });
    } else if (name !== "pos.weight") {
      frozen[name] = upload(t.data, t.shape);
    }
  }
  frozen.vera_A = upload(weights.veraA.data, weights.veraA.shape);
  frozen.vera_B = upload(weights.veraB.data, weights.veraB.shape);
  const pos = weights.params["pos.weight"].data.subarray(0, s * d);
  const tiled = new Float32Array(b * s * d);
  for (let i = 0; i < b; i++) tiled.set(pos, i * s * d);
  frozen.posTiled = upload(tiled, [b * s, d]);
  const causal = Float32Array.from(
    { length: s * s },
    (_, i) => (i % s <= Math.floor(i / s) ? 0 : -1e9),
  );
  frozen.causal = upload(causal, [s, s]);
  const data = batches.map((batch) => {
    const hot = new Float32Array(b * s * v);
    batch.targets.forEach((target, i) => (hot[i * v + target] = 1));
    return {
      tokens: np.array(Int32Array.from(batch.tokens), {
        shape: [b * s],
        dtype: np.int32,
        device: options.device,
      }),
      oneHot: upload(hot, [b * s, v]),
    };
  });

  const { beta1, beta2, eps, lr, weightDecay } = ADAMW;
  const loss = (lam: Params, fro: Params, tokens: JaxArray, hot: JaxArray) =>
    gptLoss(config, lam, fro, tokens, hot);
  const update = jit((
    lam: Params,
    m0: Params,
    v0: Params,
    fro: Params,
    tokens: JaxArray,
    hot: JaxArray,
    stepSize: JaxArray,
    bias2Sqrt: JaxArray,
  ) => {
    const [value, grads] = valueAndGrad(loss)(tree.ref(lam), fro, tokens, hot);
    const next: Params = {}, m1: Params = {}, v1: Params = {};
    for (const name of Object.keys(lam)) {
      const g = grads[name];
      m1[name] = m0[name].ref.add(g.ref.sub(m0[name]).mul(1 - beta1));
      v1[name] = v0[name].mul(beta2).add(g.ref.mul(g).mul(1 - beta2));
      const denom = np.sqrt(v1[name].ref).div(bias2Sqrt.ref).add(eps);
      const decayed = lam[name].mul(1 - lr * weightDecay);
      next[name] = decayed.sub(stepSize.ref.mul(m1[name].ref.div(denom)));
    }
    stepSize.dispose();
    bias2Sqrt.dispose();
    return { loss: value, lam: next, m: m1, v: v1 };
  });

  let t = 0;
  const scalar = (x: number) =>
    np.array([x], { shape: [], dtype: np.float32, device: options.device });
  return {
    name: `jax-js ${options.device}`,
    async run(k) {
      let last: JaxArray | undefined;
      for (let i = 0; i < k; i++) {
        const batch = data[t % data.length];
        t++;
        const stepSize = scalar(lr / (1 - beta1 ** t));
        const bias2Sqrt = scalar(Math.sqrt(1 - beta2 ** t));
        last?.dispose();
        const out = update(
          lambdas,
          m,
          sq,
          tree.ref(frozen),
          batch.tokens.ref,
          batch.oneHot.ref,
          stepSize,
          bias2Sqrt,
        );
        ({ lam: lambdas, m, v: sq } = out);
        last = out.loss;
      }
      return (await last!.data())[0];
    },
    dispose() {
      tree.dispose([lambdas, m, sq, frozen]);
      for (const x of data) tree.dispose([x.tokens, x.oneHot]);
      update.dispose();
    },
  };
}
