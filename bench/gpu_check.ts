/**
 * Every GPU measurement of the project in one script, for a machine with a
 * real GPU (offline machines need Deno and the module cache packed beside the
 * checkout, then `--cached-only`):
 *
 *   deno run -A bench/gpu_check.ts                             # full sizes
 *   deno run -A --cached-only bench/gpu_check.ts               # offline, cache packed
 *   deno run -A bench/gpu_check.ts --quick                     # tiny sizes, any adapter
 *
 * 1. f32 matmul TFLOP/s at 4096³ and at the training shapes of the large
 *    model (GPU timestamps when the adapter has `timestamp-query`, else wall
 *    clock over many dispatches per readback);
 * 2. fused elementwise (`gelu(x·y + z)`) and layerNorm GB/s;
 * 3. host cost of encoding one dispatch;
 * 4. `bench step` for VeRA (r 256) and LoRA (r 8) at 12 layers, d_model 768,
 *    12 heads, seq 256, batch 8;
 * 5. the same fine-tuning steps in PyTorch + PEFT (fp32, TF32 off) through
 *    `python3 bench/peers/torch_peft_step.py` when python3 has torch and peft,
 *    first checking that PEFT's VeRA loss at step 0 equals wgrad's on the same
 *    weights (small model).
 *
 * Prints a short table last; with `$OUT` set (or `--out DIR`), writes
 * gpu_check.json (every number) and gpu_check.log (everything printed) there.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { measureStep, randomBatches, type StepBenchConfig, type StepReport } from "../cli/bench.ts";
import { trace } from "../compiler/trace.ts";
import { param } from "../compiler/trace.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { type HostTensor, type PeerConfig, peerWeights, wgradConfig } from "./peers/shared.ts";
import { prepareStep } from "../cli/bench.ts";
import { hostEncodeMicros, type KernelTiming, timeGraph, timingContext } from "./_gpu_timing.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean" },
    out: { type: "string" },
    "skip-torch": { type: "boolean" },
    python: { type: "string", default: "python3" },
  },
  strict: true,
});
const QUICK = flags.quick ?? false;
const OUT = flags.out ?? Deno.env.get("OUT");
const log: string[] = [];
const say = (line: string) => {
  log.push(line);
  console.log(line);
};
const results: Record<string, unknown> = { quick: QUICK, started: new Date().toISOString() };
const table: [string, string][] = [];

/** `bench step`'s default model (the step-0 loss check against PEFT uses it). */
const BIG_DEFAULTS = { layers: 2, dModel: 64, heads: 4, seq: 32, batch: 8, vocab: 96 };
// The large model of the GPU run; --quick shrinks everything to llvmpipe sizes.
const BIG = QUICK
  ? { layers: 1, dModel: 32, heads: 2, seq: 16, batch: 2, vocab: 32, r: 16 }
  : { layers: 12, dModel: 768, heads: 12, seq: 256, batch: 8, vocab: 96, r: 256 };
const TARGETS = ["q_proj", "v_proj"];

const gpu = await timingContext();
const info = gpu.adapterInfo;
say(
  `adapter: ${gpu.description} (vendor ${info.vendor}, architecture ${info.architecture}); ` +
    `timestamps: ${gpu.timestamps}; fallback: ${gpu.isFallbackAdapter}`,
);
results.adapter = {
  description: gpu.description,
  vendor: info.vendor,
  architecture: info.architecture,
  timestamps: gpu.timestamps,
  maxBufferSize: gpu.limits.maxBufferSize,
  maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize,
};
table.push(["adapter", `${gpu.description}${gpu.timestamps ? " (timestamp-query)" : ""}`]);

// 1. Matmul.
const rows = BIG.batch * BIG.seq, d = BIG.dModel, hidden = 4 * BIG.dModel;
const headDim = d / BIG.heads, batchHeads = BIG.batch * BIG.heads;
const square = QUICK ? 256 : 4096;
interface MatmulCase {
  name: string;
  flops: number;
  graph: () => ReturnType<typeof trace>;
}
const linearCase = (name: string, m: number, n: number, k: number): MatmulCase => ({
  name: `${name} x·Wᵀ ${m}×${n}×${k}`,
  flops: 2 * m * n * k,
  graph: () => trace((x) => x.matmul(param("w", [n, k]).T), [{ name: "x", shape: [m, k] }]),
});
const matmuls: MatmulCase[] = [
  {
    name: `square ${square}³`,
    flops: 2 * square ** 3,
    graph: () =>
      trace((a, b) => a.matmul(b), [{ name: "a", shape: [square, square] }, {
        name: "b",
        shape: [square, square],
      }]),
  },
  linearCase("q/k/v/o_proj", rows, d, d),
  linearCase("fc1", rows, hidden, d),
  linearCase("fc2", rows, d, hidden),
  linearCase("VeRA down", rows, BIG.r, d),
  linearCase("VeRA up", rows, d, BIG.r),
  {
    name: `weight grad xᵀ·dy ${d}×${d}×${rows}`,
    flops: 2 * d * d * rows,
    graph: () =>
      trace((x, dy) => x.T.matmul(dy), [{ name: "x", shape: [rows, d] }, {
        name: "dy",
        shape: [rows, d],
      }]),
  },
  {
    name: `attention q·kᵀ ${batchHeads}×${BIG.seq}×${BIG.seq}×${headDim}`,
    flops: 2 * batchHeads * BIG.seq * BIG.seq * headDim,
    graph: () =>
      trace((q, k) => q.matmul(k.T), [
        { name: "q", shape: [batchHeads, BIG.seq, headDim] },
        { name: "k", shape: [batchHeads, BIG.seq, headDim] },
      ]),
  },
];
const describe = (t: KernelTiming) =>
  `${t.ms.toFixed(4)} ms (${t.method}, ${t.reps} per submission, ${t.kernels} kernel${
    t.kernels === 1 ? "" : "s"
  }; wall ${t.wallMs.toFixed(4)} ms)`;
/** TFLOP/s above 1, GFLOP/s below (llvmpipe's numbers). */
const flopRate = (tflops: number) =>
  tflops >= 1 ? `${tflops.toFixed(2)} TFLOP/s` : `${(tflops * 1000).toFixed(2)} GFLOP/s`;
const matmulResults = [];
say("\nmatmul (f32):");
for (const c of matmuls) {
  const t = await timeGraph(gpu, c.graph());
  const tflops = c.flops / (t.ms / 1000) / 1e12;
  say(`  ${c.name.padEnd(44)} ${flopRate(tflops)}  ${describe(t)}`);
  matmulResults.push({ name: c.name, tflops, ...t });
  if (c === matmuls[0] || c.name.startsWith("fc1")) {
    table.push([`matmul ${c.name}`, flopRate(tflops)]);
  }
}
results.matmul = matmulResults;

// 2. Bandwidth of fused elementwise and layerNorm kernels.
const n = QUICK ? 1 << 18 : 1 << 24;
const lnRows = QUICK ? 2048 : 16384, lnWidth = QUICK ? 64 : 768;
const bandwidth = [
  {
    name: `gelu(x·y + z), ${n} elements`,
    label: "fused elementwise gelu(x·y + z)",
    bytes: 4 * n * 4,
    graph: trace(
      (x, y, z) => x.mul(y).add(z).gelu(),
      ["x", "y", "z"].map((name) => ({ name, shape: [n] })),
    ),
  },
  {
    name: `layerNorm ${lnRows}×${lnWidth} (·w + b)`,
    label: `layerNorm ${lnRows}×${lnWidth}`,
    bytes: 2 * lnRows * lnWidth * 4,
    graph: trace(
      (x) => x.normalize(1e-5).mul(param("w", [lnWidth])).add(param("b", [lnWidth])),
      [{ name: "x", shape: [lnRows, lnWidth] }],
    ),
  },
];
say("\nmemory-bound kernels:");
const bandwidthResults = [];
for (const c of bandwidth) {
  const t = await timeGraph(gpu, c.graph);
  const gbs = c.bytes / (t.ms / 1000) / 1e9;
  say(`  ${c.name.padEnd(44)} ${gbs.toFixed(1)} GB/s  ${describe(t)}`);
  bandwidthResults.push({ name: c.name, gb_per_s: gbs, ...t });
  table.push([
    c.label,
    `${gbs.toFixed(1)} GB/s (${t.kernels} kernel${t.kernels === 1 ? "" : "s"})`,
  ]);
}
results.bandwidth = bandwidthResults;

// 3. Host cost per dispatch.
const encodeUs = await hostEncodeMicros(gpu, QUICK ? 500 : 5000);
say(`\nhost: ${encodeUs.toFixed(2)} µs to encode and submit one dispatch`);
results.host_encode_us_per_dispatch = encodeUs;
table.push(["host encode per dispatch", `${encodeUs.toFixed(2)} µs`]);

// 4. Training steps.
say("\nbench step:");
const stepReports: Record<string, StepReport> = {};
for (const method of ["vera", "lora"] as const) {
  const config: StepBenchConfig = {
    ...BIG,
    method,
    r: method === "vera" ? BIG.r : 8,
    targets: TARGETS,
  };
  const report = await measureStep(config, { steps: QUICK ? 3 : 20, prepare: { device: gpu } });
  stepReports[method] = report;
  say(`  ${JSON.stringify(report)}`);
  table.push([
    `wgrad ${method} step`,
    `${report.step_ms.toFixed(2)} ms, ${Math.round(report.tokens_per_s)} tok/s, ${
      (report.gpu_bytes / 2 ** 20).toFixed(1)
    } MiB, first ${(report.first_step_ms / 1000).toFixed(2)} s`,
  ]);
}
results.step = stepReports;
const ratio = stepReports.vera.step_ms / stepReports.lora.step_ms;
const memRatio = stepReports.vera.gpu_bytes / stepReports.lora.gpu_bytes;
table.push(["wgrad VeRA / LoRA", `step ${ratio.toFixed(3)}×, GPU memory ${memRatio.toFixed(3)}×`]);

// 5. PyTorch + PEFT.
async function python(args: string[]): Promise<Record<string, unknown>> {
  try {
    const out = await new Deno.Command(flags.python!, {
      args: ["bench/peers/torch_peft_step.py", ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    const err = new TextDecoder().decode(out.stderr).trim();
    if (err) log.push(`[python stderr]\n${err}`);
    const last = text.split("\n").at(-1) ?? "";
    if (out.code !== 0 || !last.startsWith("{")) {
      return { skipped: `torch_peft_step.py exited ${out.code}: ${err.split("\n").at(-1)}` };
    }
    return JSON.parse(last);
  } catch (e) {
    return { skipped: `cannot run ${flags.python}: ${(e as Error).message}` };
  }
}
const pyFlags = (c: typeof BIG, method: string) =>
  Object.entries({
    method,
    layers: c.layers,
    "d-model": c.dModel,
    heads: c.heads,
    seq: c.seq,
    batch: c.batch,
    vocab: c.vocab,
    r: method === "vera" ? c.r : 8,
    targets: TARGETS.join(","),
  }).flatMap(([flag, value]) => [`--${flag}`, String(value)]);

/** Step 0 of PEFT's VeRA on wgrad's weights and tokens (the default bench model) against wgrad's. */
async function peftLossCheck(): Promise<void> {
  const small: PeerConfig = { ...BIG_DEFAULTS, r: 256, targets: TARGETS };
  const dir = await Deno.makeTempDir({ prefix: "gpu_check_" });
  try {
    const weights = peerWeights(small, { lambdaB: "random", weightScale: 10 });
    const batches = randomBatches(small, { count: 2 });
    const all: [string, HostTensor][] = [
      ...Object.entries(weights.params),
      ["vera_A", weights.veraA],
      ["vera_B", weights.veraB],
    ];
    await writeSafetensors(
      `${dir}/weights.safetensors`,
      Object.fromEntries(
        all.map((
          [name, t],
        ) => [name, { dtype: "F32" as const, shape: [...t.shape], data: t.data }]),
      ),
    );
    await Deno.writeTextFile(
      `${dir}/tokens.json`,
      JSON.stringify(batches.map((b) => ({ tokens: [...b.tokens], targets: [...b.targets] }))),
    );
    const params = Object.fromEntries(Object.entries(weights.params).map(([k, t]) => [k, t.data]));
    const wgrad = await prepareStep(wgradConfig(small), { params, batches, device: gpu });
    wgrad.dispose();
    const check = await python([
      ...pyFlags(small, "vera"),
      ...["--steps", "1", "--warmup", "0", "--weights", `${dir}/weights.safetensors`],
      ...["--tokens", `${dir}/tokens.json`],
    ]);
    if ("skipped" in check) {
      say(`  step-0 loss check failed to run: ${check.skipped}`);
      table.push(["PEFT vs wgrad step-0 loss", `not run: ${String(check.skipped).slice(0, 80)}`]);
      return;
    }
    const delta = Math.abs((check.loss_first as number) - wgrad.firstLoss);
    say(
      `  step-0 loss on the same weights: PEFT ${check.loss_first}, wgrad ${wgrad.firstLoss}, ` +
        `|Δ| ${delta.toExponential(2)}`,
    );
    results.peft_loss_check = { peft: check.loss_first, wgrad: wgrad.firstLoss, delta };
    table.push([
      "PEFT vs wgrad step-0 loss",
      `|Δ| ${delta.toExponential(2)} ${delta < 1e-4 ? "(ok)" : "(MISMATCH)"}`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function torchSection(): Promise<void> {
  if (flags["skip-torch"]) {
    say("\nPyTorch + PEFT: skipped (--skip-torch)");
    table.push(["PyTorch + PEFT", "skipped (--skip-torch)"]);
    return;
  }
  const probe = await python(["--probe"]);
  if ("skipped" in probe) {
    say(`\nPyTorch + PEFT: skipped: ${probe.skipped}`);
    table.push(["PyTorch + PEFT", `skipped: ${String(probe.skipped).slice(0, 100)}`]);
    return;
  }
  say(`\nPyTorch ${probe.torch} + PEFT ${probe.peft} on ${probe.device}:`);
  results.torch_versions = probe;
  await peftLossCheck();
  const torch: Record<string, unknown> = {};
  for (const method of ["vera", "lora"]) {
    const r = await python([...pyFlags(BIG, method), "--steps", QUICK ? "3" : "20"]);
    torch[method] = r;
    say(`  ${JSON.stringify(r)}`);
    if ("skipped" in r) {
      table.push([`PyTorch+PEFT ${method} step`, `failed: ${String(r.skipped).slice(0, 100)}`]);
      continue;
    }
    const mem = typeof r.peak_memory_bytes === "number"
      ? `${(r.peak_memory_bytes / 2 ** 20).toFixed(1)} MiB`
      : "?";
    table.push([
      `PyTorch+PEFT ${method} step`,
      `${(r.step_ms as number).toFixed(2)} ms, ${
        Math.round(r.tokens_per_s as number)
      } tok/s, peak ${mem}`,
    ]);
    table.push([
      `wgrad / PyTorch ${method} step time`,
      `${(stepReports[method].step_ms / (r.step_ms as number)).toFixed(2)}×`,
    ]);
  }
  results.torch = torch;
}
await torchSection();

// The table, last.
say("\n| check | result |");
say("| --- | --- |");
for (const [k, v] of table) say(`| ${k} | ${v} |`);
if (OUT) {
  await Deno.mkdir(OUT, { recursive: true });
  results.finished = new Date().toISOString();
  await Deno.writeTextFile(`${OUT}/gpu_check.json`, JSON.stringify(results, null, 2) + "\n");
  await Deno.writeTextFile(`${OUT}/gpu_check.log`, log.join("\n") + "\n");
  console.log(`wrote ${OUT}/gpu_check.json and ${OUT}/gpu_check.log`);
}
