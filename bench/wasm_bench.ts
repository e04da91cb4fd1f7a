/**
 * The wasm backend (backends/wasm/) against jax-js 0.1.25's Wasm backend, in
 * one process with the same weights and batches: a VeRA training step
 * (reference GPT, LM loss, AdamW, VeRA r=256 on q_proj,v_proj) at three
 * sizes, square f32 matmuls, and wgrad's scaling from 1 to 2 threads.
 *
 *   deno run -A --config bench/deno.json bench/wasm_bench.ts [rounds] [section...]
 *
 * Sections: `step` (bench-step config), `step-large` (two larger configs),
 * `matmul`, default all. Each row is the median over `rounds` timed blocks
 * (default 7), taken in turns. A step block is k steps ending in one loss
 * read; matmul blocks are a few products each. Compilation and warm-up are
 * excluded; before timing, the first-step losses of wgrad wasm and jax-js
 * must agree (1e-4) and the matmul products (1e-3 of the largest value).
 *
 * @module
 */
import * as jaxjs from "@jax-js/jax";
import { DEFAULT_PIPELINE, runPipeline } from "../compiler/compile.ts";
import { median, randomBatches, stepGraphs } from "../cli/bench.ts";
import { initParams } from "../nn/init.ts";
import { hyperparameterFeeds } from "../train/optim.ts";
import { initOptimizerState } from "../train/optim.ts";
import { createWasmExecutable } from "../backends/wasm/mod.ts";
import { makeGraph, makeNode } from "../compiler/ir.ts";
import { type PeerConfig, type PeerStep, peerWeights, wgradConfig } from "./peers/shared.ts";
import { jaxDevices, jaxVeraStep } from "./peers/jaxjs_gpt.ts";
import * as ops from "../ops/mod.ts";

const { numpy: np, jit, defaultDevice } = jaxjs;
const args = Deno.args.filter((a) => !/^\d+$/.test(a));
const ROUNDS = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 7);
const want = (s: string) => args.length === 0 || args.includes(s);
const PASSES = DEFAULT_PIPELINE.slice(0, DEFAULT_PIPELINE.indexOf("fuse"));

/** wgrad's VeRA step on the wasm backend, with the peers' weights. */
async function wasmStep(config: PeerConfig, threads: number): Promise<PeerStep> {
  const batches = randomBatches(config, { count: 4 });
  const weights = peerWeights(config);
  const { model, step } = stepGraphs(wgradConfig(config));
  const params = Object.fromEntries(Object.entries(weights.params).map(([k, t]) => [k, t.data]));
  const values = { ...initParams(model, { seed: 0 }), ...params, ...initOptimizerState(step) };
  const exe = await createWasmExecutable(runPipeline(step, PASSES).graph, { threads });
  exe.setParams(Object.fromEntries(step.params.map((p) => [p.name!, values[p.name!]])));
  let steps = 0;
  return {
    name: `wgrad wasm ×${threads}`,
    async run(k) {
      let loss = NaN;
      for (let i = 0; i < k; i++) {
        const b = batches[steps++ % batches.length];
        const hyper = hyperparameterFeeds(step, { step: steps, lr: 1e-2 });
        const read = i === k - 1 ? ["loss"] : [];
        const run = await exe.run({ tokens: b.tokens, targets: b.targets, ...hyper }, { read });
        if (i === k - 1) loss = (await run.read("loss"))[0];
      }
      return loss;
    },
    dispose: () => exe.destroy(),
  };
}

/** Interleaved medians (ms per unit) of `runners`, `units` units per block. */
async function race(runners: { name: string; block: () => Promise<unknown> }[], units: number) {
  const times = runners.map(() => [] as number[]);
  // Warm-up: V8 tiers wasm functions up to optimised code only after a few dozen calls.
  for (let i = 0; i < 4; i++) for (const r of runners) await r.block();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, r] of runners.entries()) {
      const t0 = performance.now();
      await r.block();
      times[i].push((performance.now() - t0) / units);
    }
  }
  return runners.map((r, i) => ({ name: r.name, ms: median(times[i]) }));
}

async function stepSection(config: PeerConfig, k: number) {
  const label = [
    config.layers,
    config.dModel,
    config.heads,
    config.seq,
    config.batch,
    config.vocab,
  ];
  console.log(`\nVeRA step, layers d_model heads seq batch vocab = ${label.join(" ")}, r=256`);
  const peers: PeerStep[] = [await wasmStep(config, 2), await wasmStep(config, 1)];
  peers.push(jaxVeraStep(config, peerWeights(config), randomBatches(config, { count: 4 }), {
    device: "wasm",
  }));
  const losses = [];
  for (const p of peers) losses.push(await p.run(1));
  for (const [i, l] of losses.entries()) {
    if (!(Math.abs(l - losses[0]) < 1e-4)) {
      throw new Error(`${peers[i].name}: loss ${l} vs ${losses[0]}`);
    }
  }
  const rows = await race(peers.map((p) => ({ name: p.name, block: () => p.run(k) })), k);
  const jax = rows[rows.length - 1].ms;
  for (const r of rows) {
    console.log(
      `  ${r.name.padEnd(16)} ${r.ms.toFixed(2).padStart(8)} ms/step  ${
        (jax / r.ms).toFixed(2)
      }× jax-js wasm`,
    );
  }
  peers.forEach((p) => p.dispose());
}

async function matmulSection() {
  console.log("\nf32 matmul n×n (GFLOP/s = 2n³ / median time)");
  for (const n of [256, 512, 1024]) {
    const reps = Math.max(1, Math.round(2 ** 27 / n ** 3) * 2);
    const a = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i) * 0.5);
    const b = Float32Array.from({ length: n * n }, (_, i) => Math.cos(i) * 0.5);
    const x = makeNode(ops.input, [], { shape: [n, n], dtype: "f32" }, "a");
    const y = makeNode(ops.input, [], { shape: [n, n], dtype: "f32" }, "b");
    const graph = makeGraph({ inputs: [x, y], outputs: { out: makeNode(ops.matmul, [x, y], {}) } });
    const exes = [
      await createWasmExecutable(graph, { threads: 2 }),
      await createWasmExecutable(graph, { threads: 1 }),
    ];
    defaultDevice("wasm");
    const ja = np.array(a, { shape: [n, n], dtype: np.float32, device: "wasm" });
    const jb = np.array(b, { shape: [n, n], dtype: np.float32, device: "wasm" });
    const mm = jit((p: jaxjs.Array, q: jaxjs.Array) => np.matmul(p, q));
    // Each product is awaited (jax-js dispatches lazily; an unawaited, disposed one may never run).
    const jaxBlock = async () => {
      for (let i = 0; i < reps; i++) {
        const c = mm(ja.ref, jb.ref);
        await c.blockUntilReady();
        c.dispose();
      }
    };
    const ours = await (await exes[0].run({ a, b }, { read: ["out"] })).read("out");
    const theirs = await mm(ja.ref, jb.ref).data();
    let scale = 0, diff = 0;
    for (let i = 0; i < ours.length; i++) {
      scale = Math.max(scale, Math.abs(theirs[i]));
      diff = Math.max(diff, Math.abs(ours[i] - theirs[i]));
    }
    if (!(diff <= 1e-3 * scale)) throw new Error(`matmul ${n}: results differ by ${diff}`);
    const wasmBlock = (i: number) => async () => {
      for (let r = 0; r < reps; r++) await exes[i].run({ a, b });
    };
    const rows = await race([
      { name: "wgrad wasm ×2", block: wasmBlock(0) },
      { name: "wgrad wasm ×1", block: wasmBlock(1) },
      { name: "jax-js wasm", block: jaxBlock },
    ], reps);
    console.log(
      `  n=${n}: ` +
        rows.map((r) => `${r.name} ${(2 * n ** 3 / r.ms / 1e6).toFixed(2)}`).join(", "),
    );
    exes.forEach((e) => e.destroy());
    ja.dispose();
    jb.dispose();
  }
}

if (import.meta.main) {
  const devices = await jaxDevices();
  if (!devices.includes("wasm")) throw new Error("jax-js has no wasm device here");
  console.log(
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} threads, load ${
      Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
    }`,
  );
  const base = {
    layers: 2,
    dModel: 64,
    heads: 4,
    seq: 32,
    batch: 8,
    vocab: 96,
    r: 256,
    targets: ["q_proj", "v_proj"],
  };
  if (want("step")) await stepSection(base, 8);
  if (want("step-large")) {
    await stepSection({ ...base, layers: 4, dModel: 128, seq: 64, vocab: 256 }, 4);
    await stepSection(
      { ...base, layers: 4, dModel: 256, heads: 8, seq: 128, batch: 4, vocab: 512 },
      2,
    );
  }
  if (want("matmul")) await matmulSection();
  console.log(`load after: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
}
