/**
 * One VeRA training step (reference GPT (docs/ARCHITECTURE.md §9), LM loss, AdamW, VeRA r=256 on
 * q_proj,v_proj) in wgrad, TensorFlow.js (WebGPU) and jax-js (WebGPU and
 * Wasm), on the same adapter, in the same process, with the same weights and
 * batches; and wgrad VeRA (r=256) against wgrad LoRA (r=8, same targets).
 *
 *   deno bench -A bench/step_bench.ts        # Deno.bench groups, tfjs (or VeRA) as baseline
 *   deno run -A bench/step_bench.ts [rounds] [k] [layers d_model heads seq batch vocab]
 *                                            # interleaved medians, as tables
 *
 * Fairness: every framework runs k steps and then reads the loss back once
 * (the ~10 ms readback floor of Deno's `mapAsync` is paid once per k steps by
 * all); compilation and warm-up happen before timing; in the tables the
 * frameworks take turns round by round. First-step times are taken with the
 * driver's on-disk shader cache off and a new device for each framework, so
 * each compiles every shader it needs. Before timing, the losses of the first
 * steps are compared (bench/peers/check.ts does the same on its own).
 *
 * @module
 */
import { type PreparedStep, prepareStep, randomBatches } from "../cli/bench.ts";
import { requestGpu } from "../backends/webgpu/device.ts";
import { type PeerConfig, type PeerStep, peerWeights, wgradConfig } from "./peers/shared.ts";
import { freshTfjsBackend, tfjsVeraStep } from "./peers/tfjs_gpt.ts";
import { jaxDevices, jaxVeraStep } from "./peers/jaxjs_gpt.ts";

// Before any GPU use: Mesa and NVIDIA would otherwise serve shaders from disk.
Deno.env.set("MESA_SHADER_CACHE_DISABLE", "true");
Deno.env.set("__GL_SHADER_DISK_CACHE", "0");

const args = import.meta.main ? Deno.args.map(Number) : [];
const ROUNDS = args[0] || 5;
/** Steps per timed iteration, ending in one loss readback. */
const K = args[1] || 4;
const [layers, dModel, heads, seq, batch, vocab] = [2, 64, 4, 32, 8, 96].map((d, i) =>
  args[i + 2] || d
);
const CONFIG: PeerConfig = {
  layers,
  dModel,
  heads,
  seq,
  batch,
  vocab,
  r: 256,
  targets: ["q_proj", "v_proj"],
};
const LORA = { ...wgradConfig(CONFIG), method: "lora" as const, r: 8 };

interface Timed {
  readonly name: string;
  readonly firstStepMs: number;
  readonly firstLoss: number;
  readonly step: PeerStep;
}

function wrap(name: string, prepared: PreparedStep): PeerStep {
  return { name, run: (k) => prepared.run(k), dispose: () => prepared.dispose() };
}

async function timeFirst(name: string, make: () => Promise<PeerStep>): Promise<Timed> {
  const t0 = performance.now();
  const step = await make();
  const firstLoss = await step.run(1);
  return { name, firstStepMs: performance.now() - t0, firstLoss, step };
}

const weights = peerWeights(CONFIG);
const batches = randomBatches(CONFIG, { count: 4 });
const params = Object.fromEntries(Object.entries(weights.params).map(([k, t]) => [k, t.data]));

const wgradVera = await prepareStep(wgradConfig(CONFIG), {
  params,
  batches,
  device: await requestGpu({ fresh: true }),
});
const wgradLora = await prepareStep(LORA, { batches, device: await requestGpu({ fresh: true }) });
/** Buffers each executable had created once its first step was done. */
const createdAtFirst = new Map([wgradVera, wgradLora].map((p) => [p, p.exe.stats.buffersCreated]));
const tfjs = await timeFirst("tfjs webgpu", async () => {
  await freshTfjsBackend();
  return tfjsVeraStep(CONFIG, weights, batches);
});
const jaxReady = await jaxDevices();
const jax = [];
for (const device of ["webgpu", "wasm"] as const) {
  if (!jaxReady.includes(device)) continue;
  jax.push(
    await timeFirst(
      `jax-js ${device}`,
      () => Promise.resolve(jaxVeraStep(CONFIG, weights, batches, { device })),
    ),
  );
}
const runners: Timed[] = [
  {
    name: "wgrad webgpu",
    firstStepMs: wgradVera.firstStepMs,
    firstLoss: wgradVera.firstLoss,
    step: wrap("wgrad", wgradVera),
  },
  tfjs,
  ...jax,
  {
    name: "wgrad LoRA r=8",
    firstStepMs: wgradLora.firstStepMs,
    firstLoss: wgradLora.firstLoss,
    step: wrap("wgrad LoRA", wgradLora),
  },
];
for (const r of runners.slice(1, -1)) {
  if (!(Math.abs(r.firstLoss - wgradVera.firstLoss) < 1e-4)) {
    throw new Error(`${r.name}: step-0 loss ${r.firstLoss}, wgrad ${wgradVera.firstLoss}`);
  }
}
// One untimed block each: warm-up (llvmpipe compiles lazily; jax-js may specialise).
for (const r of runners) await r.step.run(K);

const byName = new Map(runners.map((r) => [r.name, r]));
const bench = (name: string, group: string, baseline: boolean) =>
  Deno.bench({
    name: `${name} (${K} steps, one readback)`,
    group,
    baseline,
    n: 5,
    warmup: 1,
    fn: async () => {
      await byName.get(name)!.step.run(K);
    },
  });
for (const r of runners.slice(0, -1)) bench(r.name, "VeRA step", r.name === "tfjs webgpu");
bench("wgrad webgpu", "VeRA r=256 vs LoRA r=8 (wgrad)", true);
bench("wgrad LoRA r=8", "VeRA r=256 vs LoRA r=8 (wgrad)", false);
for (const who of ["tfjs", "wgrad"]) {
  Deno.bench({
    name: `${who} first step (new device, compile + upload + 1 step)`,
    group: "first step",
    baseline: who === "tfjs",
    // tfjs's takes over a minute on llvmpipe: one iteration each.
    n: 1,
    warmup: 0,
    fn: async () => {
      if (who === "tfjs") {
        await freshTfjsBackend();
        const step = tfjsVeraStep(CONFIG, weights, batches);
        await step.run(1);
        step.dispose();
      } else {
        const device = await requestGpu({ fresh: true });
        const prepared = await prepareStep(wgradConfig(CONFIG), { params, batches, device });
        prepared.dispose();
        device.device.destroy();
      }
    },
  });
}

/** Interleaved rounds: each runner times k steps in turn; the median ms per step of each. */
async function medians(rounds: number): Promise<Map<string, number>> {
  const times = new Map(runners.map((r) => [r.name, [] as number[]]));
  for (let i = 0; i < rounds; i++) {
    for (const r of runners) {
      const t0 = performance.now();
      await r.step.run(K);
      times.get(r.name)!.push((performance.now() - t0) / K);
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
  return new Map([...times].map(([name, xs]) => [name, median(xs)]));
}

if (import.meta.main) {
  const gpu = await requestGpu();
  const ms = await medians(ROUNDS);
  const base = ms.get("tfjs webgpu")!;
  const fmt = (x: number) => x.toFixed(1);
  console.log(`adapter: ${gpu.description}; ${JSON.stringify(CONFIG)}`);
  console.log(
    `${ROUNDS} interleaved rounds of ${K} steps + one readback each; load ${
      Deno.loadavg()[0].toFixed(2)
    }`,
  );
  console.log("\n| framework | VeRA step ms | tokens/s | vs tfjs | first step ms |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const r of runners.slice(0, -1)) {
    const m = ms.get(r.name)!;
    console.log(
      `| ${r.name} | ${fmt(m)} | ${Math.round((batch * seq * 1000) / m)} | ${
        (base / m).toFixed(2)
      }× faster | ${fmt(r.firstStepMs)} |`,
    );
  }
  const vera = ms.get("wgrad webgpu")!, lora = ms.get("wgrad LoRA r=8")!;
  const vBytes = wgradVera.exe.stats.gpuBytes, lBytes = wgradLora.exe.stats.gpuBytes;
  console.log("\n| wgrad | step ms | GPU bytes | kernels/step | trainable | first step ms |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (
    const [name, p, m] of [["VeRA r=256", wgradVera, vera], ["LoRA r=8", wgradLora, lora]] as const
  ) {
    const s = p.exe.stats;
    console.log(
      `| ${name} | ${fmt(m)} | ${s.gpuBytes} | ${s.kernelsPerRun} | ${p.trainableParams} | ${
        fmt(p.firstStepMs)
      } |`,
    );
  }
  console.log(
    `VeRA / LoRA: step ${(vera / lora).toFixed(3)}×, GPU memory ${(vBytes / lBytes).toFixed(3)}×`,
  );
  console.log(`first step wgrad / tfjs: ${(wgradVera.firstStepMs / tfjs.firstStepMs).toFixed(3)}`);
  const readback = await wgradVera.readbackMs(9);
  for (const [name, p] of [["VeRA", wgradVera], ["LoRA", wgradLora]] as const) {
    const after = p.exe.stats.buffersCreated - createdAtFirst.get(p)!;
    console.log(
      `${name}: buffers created after the first step (all timed steps and readbacks): ${after}`,
    );
  }
  console.log(
    `readback ${readback.toFixed(2)} ms = ${
      (100 * readback / (readback + 25 * vera)).toFixed(2)
    }% of 25 VeRA steps (the trainer reads the loss back every 25 steps by default)`,
  );
  for (const r of runners) r.step.dispose();
  // jax-js's Wasm worker pool has no shutdown and keeps the process alive.
  Deno.exit(0);
}
