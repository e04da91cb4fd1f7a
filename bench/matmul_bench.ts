/**
 * Square f32 matmul: wgrad's kernel against TensorFlow.js's WebGPU backend,
 * on the same adapter in the same process.
 *
 *   deno bench -A bench/matmul_bench.ts     # Deno.bench, tfjs as the baseline
 *   deno run -A bench/matmul_bench.ts       # prints a GFLOP/s table (medians)
 *   deno run -A bench/matmul_bench.ts sweep 512   # wgrad alone, several tile configurations
 *
 * Fairness: each timed iteration queues `REPS[n]` matmuls of the same inputs
 * and then waits for the GPU the same way on both sides — a 4-byte readback
 * of the last result (`readBuffer` here, `await data()` of a 1-element slice
 * in tfjs), which costs about 12 ms on Deno 2.9 whatever the work. Shader
 * compilation and warm-up happen before timing, and both results are checked
 * against each other first.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import { type MatmulTiles, matmulTilesFor } from "../compiler/kernels/matmul.ts";
import { matmulKernel } from "../backends/webgpu/wgsl/matmul_kernel.ts";
import {
  encodeKernels,
  type GpuContext,
  readBuffer,
  readFloat32,
  requestGpu,
  uploadFloat32,
} from "../backends/webgpu/device.ts";

const SIZES = [256, 512, 1024];
/** Matmuls per timed iteration, so the ~10 ms readback floor does not swamp small sizes. */
const REPS: Record<number, number> = { 256: 32, 512: 8, 1024: 2 };

interface Runner {
  /** Queues `REPS[n]` matmuls and resolves when the GPU has finished them. */
  run(): Promise<void>;
  /** The product, read back in full. */
  result(): Promise<Float32Array>;
  dispose(): void;
}

function randomMatrix(n: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: n * n }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  });
}

async function wgradRunner(
  gpu: GpuContext,
  n: number,
  tiles?: Partial<MatmulTiles>,
): Promise<Runner> {
  const kernel = matmulKernel({ M: n, N: n, K: n, tiles: tiles ?? matmulTilesFor(gpu) });
  await gpu.pipelines.get(kernel);
  const a = await uploadFloat32(gpu, randomMatrix(n, 1));
  const b = await uploadFloat32(gpu, randomMatrix(n, 2));
  const c = gpu.buffers.acquire(n * n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const dispatches = Array.from({ length: REPS[n] }, () => ({ kernel, buffers: [a, b, c] }));
  const run = async () => {
    gpu.device.queue.submit([encodeKernels(gpu, dispatches).finish()]);
    await readBuffer(gpu, c, { byteLength: 4 });
  };
  await run(); // first dispatch: llvmpipe compiles the shader lazily
  return {
    run,
    result: () => readFloat32(gpu, c),
    dispose: () => [a, b, c].forEach((x) => gpu.buffers.release(x)),
  };
}

async function tfjsRunner(n: number): Promise<Runner> {
  const a = tf.tensor2d(randomMatrix(n, 1), [n, n]);
  const b = tf.tensor2d(randomMatrix(n, 2), [n, n]);
  const run = async () => {
    const outs = Array.from({ length: REPS[n] }, () => tf.matMul(a, b));
    const probe = tf.slice(outs[outs.length - 1], [0, 0], [1, 1]);
    await probe.data();
    tf.dispose([...outs, probe]);
  };
  await run();
  const result = async () => {
    const c = tf.matMul(a, b);
    const data = await c.data() as Float32Array;
    c.dispose();
    return data;
  };
  return { run, result, dispose: () => tf.dispose([a, b]) };
}

/** Tile configurations compared by `deno run -A bench/matmul_bench.ts sweep [n]`. */
const SWEEP: Partial<MatmulTiles>[] = [
  { staging: "registers", tileM: 32, tileN: 32, tileK: 4, threadM: 4, threadN: 4 },
  { staging: "registers", tileM: 64, tileN: 64, tileK: 4, threadM: 8, threadN: 8 },
  { staging: "registers", tileM: 64, tileN: 64, tileK: 8, threadM: 8, threadN: 8 },
  { staging: "registers", tileM: 64, tileN: 128, tileK: 4, threadM: 8, threadN: 16 },
  { staging: "registers", tileM: 128, tileN: 128, tileK: 4, threadM: 16, threadN: 16 },
  { staging: "registers", tileM: 128, tileN: 128, tileK: 8, threadM: 16, threadN: 16 },
  { staging: "registers", tileM: 128, tileN: 128, tileK: 4, threadM: 32, threadN: 16 },
  { staging: "workgroup", tileM: 32, tileN: 32, tileK: 8, threadM: 4, threadN: 4 },
  { staging: "workgroup", tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 },
  { staging: "workgroup", tileM: 64, tileN: 64, tileK: 8, threadM: 8, threadN: 8 },
];

/** Times wgrad alone with each SWEEP configuration, interleaved; prints best / median GFLOP/s. */
async function sweep(gpu: GpuContext, n: number, rounds: number): Promise<void> {
  const runners = [];
  for (const tiles of SWEEP) runners.push(await wgradRunner(gpu, n, tiles));
  const times: number[][] = SWEEP.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, runner] of runners.entries()) {
      const t0 = performance.now();
      await runner.run();
      times[i].push((performance.now() - t0) / 1000 / REPS[n]);
    }
  }
  console.log(`adapter: ${gpu.description}; n=${n}; ${rounds} rounds`);
  console.log("| staging | tile M×N×K | per invocation | GFLOP/s best / median |");
  console.log("| --- | --- | --- | ---: |");
  SWEEP.forEach((t, i) => {
    const sorted = times[i].sort((x, y) => x - y);
    const g = (s: number) => ((2 * n ** 3) / s / 1e9).toFixed(1);
    const shape = `${t.tileM}×${t.tileN}×${t.tileK} | ${t.threadM}×${t.threadN}`;
    console.log(`| ${t.staging} | ${shape} | ${g(sorted[0])} / ${g(sorted[sorted.length >> 1])} |`);
  });
  runners.forEach((r) => r.dispose());
}

const gpu = await requestGpu();
if (import.meta.main && Deno.args[0] === "sweep") {
  await sweep(gpu, Number(Deno.args[1] ?? 512), Number(Deno.args[2] ?? 5));
  Deno.exit(0);
}
if (!(await tf.setBackend("webgpu"))) {
  throw new Error("tfjs could not initialise its WebGPU backend");
}
await tf.ready();

const runners = new Map<string, Runner>();
for (const n of SIZES) {
  const wgrad = await wgradRunner(gpu, n);
  const tfjs = await tfjsRunner(n);
  const [got, want] = [await wgrad.result(), await tfjs.result()];
  const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const error = got.reduce((m, x, i) => Math.max(m, Math.abs(x - want[i])), 0);
  if (!(error <= 1e-4 * scale)) {
    throw new Error(`${n}: wgrad and tfjs disagree (max error ${error})`);
  }
  runners.set(`wgrad ${n}`, wgrad);
  runners.set(`tfjs ${n}`, tfjs);
}

for (const n of SIZES) {
  for (const who of ["tfjs", "wgrad"]) {
    Deno.bench({
      name: `${who} ${n}x${n}x${n} f32 (${REPS[n]} per iteration)`,
      group: `matmul ${n}`,
      baseline: who === "tfjs",
      // Each iteration is tens to hundreds of milliseconds on llvmpipe.
      n: 10,
      warmup: 2,
      fn: () => runners.get(`${who} ${n}`)!.run(),
    });
  }
}

/** Median seconds per matmul over `rounds` interleaved iterations of each runner. */
async function medians(rounds: number): Promise<Map<string, number>> {
  const times = new Map<string, number[]>([...runners.keys()].map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const n of SIZES) {
      for (const who of ["wgrad", "tfjs"]) {
        const t0 = performance.now();
        await runners.get(`${who} ${n}`)!.run();
        times.get(`${who} ${n}`)!.push((performance.now() - t0) / 1000 / REPS[n]);
      }
    }
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1];
  return new Map([...times].map(([k, xs]) => [k, median(xs)]));
}

if (import.meta.main) {
  const rounds = Number(Deno.args[0] ?? 9);
  const m = await medians(rounds);
  const gflops = (n: number, s: number) => (2 * n ** 3) / s / 1e9;
  // tfjs keeps its device private; Deno's GPUDevice.adapterInfo names the adapter it got.
  const tfjsDevice = (tf.backend() as { device?: { adapterInfo?: GPUAdapterInfo } }).device;
  console.log(`wgrad adapter: ${gpu.description}; tiles ${JSON.stringify(matmulTilesFor(gpu))}`);
  console.log(
    `tfjs adapter: ${tfjsDevice?.adapterInfo?.description ?? "unknown"}; ${rounds} rounds`,
  );
  console.log("| size | wgrad GFLOP/s | tfjs GFLOP/s | wgrad / tfjs |");
  console.log("| ---: | ---: | ---: | ---: |");
  for (const n of SIZES) {
    const w = gflops(n, m.get(`wgrad ${n}`)!);
    const t = gflops(n, m.get(`tfjs ${n}`)!);
    console.log(`| ${n} | ${w.toFixed(2)} | ${t.toFixed(2)} | ${(w / t).toFixed(2)}× |`);
  }
  for (const r of runners.values()) r.dispose();
}
