/**
 * VeRA's projections, shared buffer vs fused: one AdamW training step of a
 * VeRA-adapted GPT compiled with `randomProjections: "shared"` (A and B
 * generated once per step into buffers every target's matmuls read) and with
 * `"fused"` (each matmul generates the elements it needs in its operand
 * loads; no buffers).
 *
 *   deno run -A bench/vera_projection_bench.ts [rounds]   # the table in BENCHMARKS.md (medians)
 *   deno bench -A bench/vera_projection_bench.ts          # the same work under Deno.bench
 *
 * One timed iteration queues {@link STEPS} steps without waiting and reads
 * the loss of the last one (the ~10 ms `mapAsync` floor of Deno 2.9 is paid
 * once per iteration, not per step). Compilation and a warm-up step are
 * excluded; before timing, the two modes' losses are checked to be equal
 * bit for bit.
 *
 * @module
 */
import { compile, type CompileOptions } from "../backends/compile.ts";
import type { Executable } from "../backends/executable.ts";
import { vera, type VeraConfig } from "../adapters/vera.ts";
import { type GptConfig, gptGraph, type GptShape } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { adamw, initOptimizerState, trainStep } from "../train/optim.ts";

/** Steps queued per timed iteration. */
const STEPS = 5;

/** The two workloads: a small projection (attention targets) and a large one (MLP targets, r 1024). */
const CASES: readonly { name: string; vera: VeraConfig }[] = [
  { name: "r 256, q_proj+v_proj", vera: { r: 256, targetModules: ["q_proj", "v_proj"] } },
  { name: "r 1024, fc1+fc2", vera: { r: 1024, targetModules: ["fc1", "fc2"] } },
];
const MODEL: GptConfig = {
  vocabSize: 64,
  maxSeqLen: 64,
  dModel: 64,
  heads: 4,
  layers: 2,
  head: "lm",
};
const SHAPE: GptShape = { batch: 8, seqLen: 64 };

type Mode = NonNullable<CompileOptions["randomProjections"]>;
const MODES: readonly Mode[] = ["shared", "fused"];

interface StepRunner {
  /** Queues {@link STEPS} steps and resolves with the last one's loss, once the GPU is done. */
  run(): Promise<number>;
  /** Kernels per step and the bytes of GPU memory held. */
  readonly stats: { kernels: number; gpuBytes: number };
  dispose(): void;
}

async function stepRunner(veraConfig: VeraConfig, mode: Mode): Promise<StepRunner> {
  const { graph } = vera(gptGraph(MODEL, SHAPE), veraConfig);
  const step = trainStep(graph, { optimizer: adamw() });
  const exe: Executable = await compile(step, { backend: "webgpu", randomProjections: mode });
  exe.setParams({ ...initParams(graph, { seed: 1 }), ...initOptimizerState(step) });
  const count = SHAPE.batch * SHAPE.seqLen;
  const tokens = Int32Array.from({ length: count }, (_, i) => (i * 7 + 3) % MODEL.vocabSize);
  const targets = Int32Array.from({ length: count }, (_, i) => (i * 5 + 1) % MODEL.vocabSize);
  let t = 0;
  const run = async () => {
    for (let i = 1; i < STEPS; i++) {
      await exe.run({ tokens, targets, lr: [1e-2], step: [++t] });
    }
    const last = await exe.run({ tokens, targets, lr: [1e-2], step: [++t] }, { read: ["loss"] });
    return (await last.read("loss"))[0];
  };
  return {
    run,
    stats: { kernels: exe.stats.kernelsPerRun, gpuBytes: exe.stats.gpuBytes },
    dispose: () => exe.destroy(),
  };
}

/** Both modes of one case, warmed up and checked to compute the same loss bits. */
async function prepare(veraConfig: VeraConfig): Promise<Record<Mode, StepRunner>> {
  const runners = {} as Record<Mode, StepRunner>;
  const losses: number[] = [];
  for (const mode of MODES) {
    runners[mode] = await stepRunner(veraConfig, mode);
    losses.push(await runners[mode].run()); // warm-up: llvmpipe compiles shaders lazily
  }
  if (!Object.is(Math.fround(losses[0]), Math.fround(losses[1]))) {
    throw new Error(`the modes disagree: loss ${losses[0]} (shared) vs ${losses[1]} (fused)`);
  }
  return runners;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function table(rounds: number): Promise<void> {
  const adapter = await navigator.gpu.requestAdapter();
  console.log(`adapter: ${adapter?.info.description || adapter?.info.device || "unknown"}`);
  console.log(`GPT ${JSON.stringify(MODEL)}, batch ${SHAPE.batch}, seq ${SHAPE.seqLen}, AdamW`);
  console.log(`${rounds} interleaved rounds of ${STEPS} steps + 1 loss readback; medians\n`);
  console.log("| case | mode | ms / step | kernels / step | GPU MiB |");
  console.log("| --- | --- | ---: | ---: | ---: |");
  for (const c of CASES) {
    const runners = await prepare(c.vera);
    const times: Record<Mode, number[]> = { shared: [], fused: [] };
    for (let round = 0; round < rounds; round++) {
      for (const mode of MODES) {
        const t0 = performance.now();
        await runners[mode].run();
        times[mode].push((performance.now() - t0) / STEPS);
      }
    }
    for (const mode of MODES) {
      const s = runners[mode].stats;
      console.log(
        `| ${c.name} | ${mode} | ${median(times[mode]).toFixed(1)} | ${s.kernels} | ${
          (s.gpuBytes / 2 ** 20).toFixed(2)
        } |`,
      );
      runners[mode].dispose();
    }
    const ratio = median(times.fused) / median(times.shared);
    console.log(`|  | fused / shared | ${ratio.toFixed(2)}× |  |  |`);
  }
}

if (import.meta.main) {
  await table(Number(Deno.args[0] ?? 5));
} else {
  for (const c of CASES) {
    const runners = await prepare(c.vera);
    for (const mode of MODES) {
      Deno.bench({
        name: `${mode} (${STEPS} steps)`,
        group: c.name,
        baseline: mode === "shared",
        n: 5,
        warmup: 1,
        fn: async () => {
          await runners[mode].run();
        },
      });
    }
  }
}
