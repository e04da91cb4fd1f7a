/**
 * The benchmark's model and training step in TensorFlow.js (4.22, WebGPU
 * backend): the reference GPT (docs/ARCHITECTURE.md §9) with an LM head, VeRA as in PEFT on the
 * targeted layers
 *
 *   `y = x Wᵀ + b + λb ⊙ ((λd ⊙ (x A_sᵀ)) B_sᵀ)`   (W, b, A, B frozen)
 *
 * mean next-token cross-entropy, and AdamW written op for op as PyTorch's
 * (and wgrad's `adamw()`), since tfjs has no AdamW. Gradients come from
 * `tf.variableGrads` over the λ vectors only; tfjs runs eagerly, one
 * dispatch per op, and queues GPU work until something is read back.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import {
  ADAMW,
  type HostTensor,
  isTarget,
  type PeerBatches,
  type PeerConfig,
  type PeerStep,
  type PeerWeights,
} from "./shared.ts";

let freshCount = 0;

/**
 * Registers and selects a new tfjs WebGPU backend on a new device, so its
 * pipeline cache starts empty (for first-step timings); returns its name.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { freshTfjsBackend } from "./tfjs_gpt.ts";
 * const name = await freshTfjsBackend();
 * strictEqual(tf.getBackend(), name);
 * tf.removeBackend(name);
 * ```
 */
export async function freshTfjsBackend(): Promise<string> {
  const name = `webgpu-fresh-${++freshCount}`;
  tf.registerBackend(name, async () => {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new Error("tfjs: no WebGPU adapter");
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: adapter.limits.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
        maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      },
    });
    return new WebGPUBackend(device, adapter.info);
  }, 0);
  // Kernels are registered per backend name: give the new one webgpu's.
  for (const kernel of tf.getKernelsForBackend("webgpu")) {
    tf.registerKernel({ ...kernel, backendName: name });
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs could not initialise backend ${name}`);
  await tf.ready();
  return name;
}

/**
 * Selects tfjs's standard `webgpu` backend (created on first use).
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { useTfjsWebGpu } from "./tfjs_gpt.ts";
 * const adapter = await useTfjsWebGpu(); // e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
 * ok(adapter.length > 0);
 * strictEqual(tf.getBackend(), "webgpu");
 * ```
 */
export async function useTfjsWebGpu(): Promise<string> {
  if (!(await tf.setBackend("webgpu"))) {
    throw new Error("tfjs could not initialise its WebGPU backend");
  }
  await tf.ready();
  const device = (tf.backend() as { device?: { adapterInfo?: GPUAdapterInfo } }).device;
  return device?.adapterInfo?.description ?? "unknown adapter";
}

/**
 * Builds the VeRA training step in tfjs on the current backend with the
 * given weights (uploaded now) and batches.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { randomBatches } from "../../cli/bench.ts";
 * import { peerWeights, type PeerConfig } from "./shared.ts";
 * import { tfjsVeraStep, useTfjsWebGpu } from "./tfjs_gpt.ts";
 * await useTfjsWebGpu();
 * const config: PeerConfig = { layers: 1, dModel: 16, heads: 2, seq: 8, batch: 2, vocab: 16, r: 8, targets: ["q_proj", "v_proj"] };
 * const step = tfjsVeraStep(config, peerWeights(config), randomBatches(config, { count: 2 }));
 * const loss = await step.run(1); // the loss at step 0 (before the update)
 * ok(Math.abs(loss - Math.log(config.vocab)) < 0.05); // the init's logits are nearly 0: ≈ ln V
 * step.dispose();
 * ```
 */
export function tfjsVeraStep(
  config: PeerConfig,
  weights: PeerWeights,
  batches: PeerBatches,
): PeerStep {
  const { batch: b, seq: s, dModel: d, heads: h, vocab: v, layers } = config;
  const n = b * s;
  const dh = d / h;
  const upload = (t: HostTensor) => tf.tensor(t.data, [...t.shape], "float32");
  const trainable = new Set(weights.trainable);
  const frozen: Record<string, tf.Tensor> = {};
  const vars: Record<string, tf.Variable> = {};
  const moments: { m: tf.Variable; v: tf.Variable }[] = [];
  for (const [name, t] of Object.entries(weights.params)) {
    if (!trainable.has(name)) frozen[name] = upload(t);
  }
  for (const name of weights.trainable) {
    vars[name] = tf.variable(upload(weights.params[name]), true);
    moments.push({
      m: tf.variable(tf.zerosLike(vars[name])),
      v: tf.variable(tf.zerosLike(vars[name])),
    });
  }
  const varList = weights.trainable.map((name) => vars[name]);
  const veraA = upload(weights.veraA);
  const veraB = upload(weights.veraB);
  const param = (name: string) => vars[name] ?? frozen[name];
  const pos = tf.tile(tf.slice(frozen["pos.weight"], [0, 0], [s, d]), [b, 1]);
  const causal = tf.tensor2d(
    Float32Array.from({ length: s * s }, (_, i) => (i % s <= Math.floor(i / s) ? 0 : -1e9)),
    [s, s],
  );
  const data = batches.map((batch) => ({
    tokens: tf.tensor1d(batch.tokens, "int32"),
    targets: tf.cast(tf.oneHot(tf.tensor1d(batch.targets, "int32"), v), "float32"),
  }));

  const linear = (x: tf.Tensor2D, module: string, bias = true): tf.Tensor2D => {
    const w = param(`${module}.weight`) as tf.Tensor2D;
    let y: tf.Tensor2D = tf.matMul(x, w, false, true);
    if (bias) y = tf.add(y, param(`${module}.bias`)) as tf.Tensor2D;
    if (!isTarget(module, config.targets)) return y;
    const [out, inn] = w.shape;
    const aSlice = inn === weights.veraA.shape[1] ? veraA : tf.slice(veraA, [0, 0], [-1, inn]);
    const bSlice = out === weights.veraB.shape[0] ? veraB : tf.slice(veraB, [0, 0], [out, -1]);
    const down = tf.mul(
      tf.matMul(x, aSlice as tf.Tensor2D, false, true),
      vars[`${module}.vera_lambda_d`],
    );
    const up = tf.matMul(down as tf.Tensor2D, bSlice as tf.Tensor2D, false, true);
    return tf.add(y, tf.mul(up, vars[`${module}.vera_lambda_b`]));
  };
  const layerNorm = (x: tf.Tensor2D, module: string): tf.Tensor2D => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5)));
    return tf.add(tf.mul(normed, param(`${module}.weight`)), param(`${module}.bias`));
  };
  const heads = (x: tf.Tensor2D) => tf.transpose(tf.reshape(x, [b, s, h, dh]), [0, 2, 1, 3]);
  const attention = (x: tf.Tensor2D, module: string): tf.Tensor2D => {
    const q = heads(linear(x, `${module}.q_proj`));
    const k = heads(linear(x, `${module}.k_proj`));
    const val = heads(linear(x, `${module}.v_proj`));
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)), causal);
    const merged = tf.transpose(tf.matMul(tf.softmax(scores), val), [0, 2, 1, 3]);
    return linear(tf.reshape(merged, [n, d]), `${module}.o_proj`);
  };
  const gelu = (x: tf.Tensor) => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  };
  const loss = (tokens: tf.Tensor1D, oneHot: tf.Tensor): tf.Scalar => {
    let x = tf.add(tf.gather(frozen["embed.weight"], tokens), pos) as tf.Tensor2D;
    for (let i = 0; i < layers; i++) {
      const p = `layers.${i}`;
      x = tf.add(x, attention(layerNorm(x, `${p}.ln1`), `${p}.attn`));
      const hidden = gelu(linear(layerNorm(x, `${p}.ln2`), `${p}.mlp.fc1`)) as tf.Tensor2D;
      x = tf.add(x, linear(hidden, `${p}.mlp.fc2`));
    }
    const logits = linear(layerNorm(x, "ln_f"), "lm_head", false);
    return tf.div(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), oneHot))), n) as tf.Scalar;
  };

  let t = 0;
  const step = (): tf.Scalar => {
    const batch = data[t % data.length];
    t++;
    const { lr, beta1, beta2, eps, weightDecay } = ADAMW;
    const bias1 = 1 - beta1 ** t, bias2 = 1 - beta2 ** t;
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => loss(batch.tokens, batch.targets), varList);
      varList.forEach((p, i) => {
        const g = grads[p.name], { m, v: sq } = moments[i];
        const m1 = tf.add(m, tf.mul(tf.sub(g, m), 1 - beta1));
        const v1 = tf.add(tf.mul(sq, beta2), tf.mul(tf.mul(g, g), 1 - beta2));
        const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(bias2)), eps);
        const decayed = tf.mul(p, 1 - lr * weightDecay);
        p.assign(tf.sub(decayed, tf.mul(lr / bias1, tf.div(m1, denom))));
        m.assign(m1);
        sq.assign(v1);
      });
      return value;
    });
  };
  return {
    name: `tfjs ${tf.getBackend()}`,
    async run(k) {
      let last: tf.Scalar | undefined;
      for (let i = 0; i < k; i++) {
        last?.dispose();
        last = step();
      }
      const value = (await last!.data())[0];
      last!.dispose();
      return value;
    },
    dispose() {
      tf.dispose([...Object.values(frozen), ...varList, veraA, veraB, pos, causal]);
      tf.dispose(moments.flatMap((m) => [m.m, m.v]));
      tf.dispose(data.flatMap((x) => [x.tokens, x.targets]));
    },
  };
}
