/**
 * The peers' correctness check: wgrad, TensorFlow.js and jax-js load the
 * same weights and the same batches, and must report the same loss at step 0
 * (|Δ| < 1e-4) and after a few AdamW updates (|Δ| < 1e-3: Adam's first steps
 * amplify rounding differences in near-zero gradients). The weights are
 * wgrad's init with the frozen matrices ×10 and `lambdaB` non-zero: with the
 * init as it is the logits are nearly 0 and the VeRA branch moves the loss by
 * only ~4e-5; this way it moves it by ~1e-2, a hundred times the tolerance.
 *
 *   deno run -A bench/peers/check.ts [layers d_model heads seq batch vocab r]
 *
 * @module
 */
import { prepareStep, randomBatches } from "../../cli/bench.ts";
import { type PeerConfig, type PeerStep, peerWeights, wgradConfig } from "./shared.ts";
import { tfjsVeraStep, useTfjsWebGpu } from "./tfjs_gpt.ts";
import { type JaxDevice, jaxDevices, jaxVeraStep } from "./jaxjs_gpt.ts";

/**
 * Largest |loss − wgrad's loss| allowed at step 0.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { STEP0_TOLERANCE } from "./check.ts";
 * ok(Math.abs(5.9620976 - 5.9620972) < STEP0_TOLERANCE);
 * ok(!(Math.abs(5.9620976 - 5.9619) < STEP0_TOLERANCE));
 * ```
 */
export const STEP0_TOLERANCE = 1e-4;
/**
 * Largest difference allowed after the first updates.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { LATER_TOLERANCE } from "./check.ts";
 * strictEqual(LATER_TOLERANCE, 0.001);
 * ```
 */
export const LATER_TOLERANCE = 1e-3;

/**
 * Losses of one framework, step by step.
 *
 * @example
 * ```ts
 * import type { PeerLosses } from "./check.ts";
 * const row: PeerLosses = { name: "tfjs webgpu", losses: [2.75, 2.77], maxStep0: 0, maxLater: 1e-6 };
 * ```
 */
export interface PeerLosses {
  /** Framework and device. */
  readonly name: string;
  /** The loss each step computed (before its update). */
  readonly losses: readonly number[];
  /** |Δ| against wgrad at step 0 (0 for wgrad itself). */
  readonly maxStep0: number;
  /** Largest |Δ| against wgrad over the later steps. */
  readonly maxLater: number;
}

/**
 * Options of {@link checkPeerLosses}.
 *
 * @example
 * ```ts
 * import type { CheckOptions } from "./check.ts";
 * const options: CheckOptions = { steps: 3, jax: ["webgpu"] };
 * ```
 */
export interface CheckOptions {
  /** Steps to compare (default 3). */
  readonly steps?: number;
  /** Whether to include tfjs (default true). */
  readonly tfjs?: boolean;
  /** jax-js devices to include (default webgpu and wasm). */
  readonly jax?: readonly JaxDevice[];
}

/**
 * Runs wgrad and the peers on the same weights and batches and throws when a
 * loss differs from wgrad's by more than the tolerances; returns every loss.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, ok } from "node:assert/strict";
 * import { checkPeerLosses, STEP0_TOLERANCE } from "./check.ts";
 * const rows = await checkPeerLosses(
 *   { layers: 1, dModel: 16, heads: 2, seq: 8, batch: 2, vocab: 16, r: 8, targets: ["q_proj", "v_proj"] },
 *   { jax: ["webgpu"] },
 * );
 * deepStrictEqual(rows.map((r) => r.name), ["wgrad webgpu", "tfjs webgpu", "jax-js webgpu"]);
 * ok(rows.every((r) => r.losses.length === 3 && r.maxStep0 < STEP0_TOLERANCE));
 * ```
 */
export async function checkPeerLosses(
  config: PeerConfig,
  options: CheckOptions = {},
): Promise<PeerLosses[]> {
  const steps = options.steps ?? 3;
  const weights = peerWeights(config, { lambdaB: "random", weightScale: 10 });
  const batches = randomBatches(config, { count: 2, seed: config.seed ?? 0 });
  const params = Object.fromEntries(Object.entries(weights.params).map(([k, t]) => [k, t.data]));
  const wgrad = await prepareStep(wgradConfig(config), { params, batches });
  const reference = [wgrad.firstLoss];
  for (let i = 1; i < steps; i++) reference.push(await wgrad.run(1));
  wgrad.dispose();
  const peers: (() => Promise<PeerStep>)[] = [];
  if (options.tfjs ?? true) {
    peers.push(async () => {
      await useTfjsWebGpu();
      return tfjsVeraStep(config, weights, batches);
    });
  }
  const jax = options.jax ?? ["webgpu", "wasm"];
  if (jax.length > 0) await jaxDevices();
  for (const device of jax) {
    peers.push(() => Promise.resolve(jaxVeraStep(config, weights, batches, { device })));
  }
  const rows: PeerLosses[] = [{
    name: "wgrad webgpu",
    losses: reference,
    maxStep0: 0,
    maxLater: 0,
  }];
  const failures: string[] = [];
  for (const make of peers) {
    const peer = await make();
    const losses: number[] = [];
    try {
      for (let i = 0; i < steps; i++) losses.push(await peer.run(1));
    } finally {
      peer.dispose();
    }
    const deltas = losses.map((l, i) => Math.abs(l - reference[i]));
    const row = {
      name: peer.name,
      losses,
      maxStep0: deltas[0],
      maxLater: Math.max(0, ...deltas.slice(1)),
    };
    rows.push(row);
    if (!(row.maxStep0 < STEP0_TOLERANCE) || !(row.maxLater < LATER_TOLERANCE)) {
      failures.push(
        `${peer.name}: losses ${losses.join(", ")} vs wgrad ${reference.join(", ")}`,
      );
    }
  }
  if (failures.length > 0) {
    throw new Error(`peer losses differ from wgrad's:\n${failures.join("\n")}`);
  }
  return rows;
}

if (import.meta.main) {
  const [layers, dModel, heads, seq, batch, vocab, r] = [2, 64, 4, 32, 8, 96, 256].map((d, i) =>
    Deno.args[i] === undefined ? d : Number(Deno.args[i])
  );
  const config = { layers, dModel, heads, seq, batch, vocab, r, targets: ["q_proj", "v_proj"] };
  console.log(`peer check: ${JSON.stringify(config)}`);
  for (const row of await checkPeerLosses(config)) {
    console.log(
      `${row.name.padEnd(14)} losses ${row.losses.map((l) => l.toFixed(7)).join(" ")}  ` +
        `|Δ| step 0 ${row.maxStep0.toExponential(1)}, later ${row.maxLater.toExponential(1)}`,
    );
  }
  // jax-js's Wasm worker pool has no shutdown and keeps the process alive.
  Deno.exit(0);
}
