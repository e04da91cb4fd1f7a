// VeRA on the GPU: the projections the WGSL lowering generates — into a
// buffer, or fused into the loads of the matmuls that read them — equal the
// TypeScript reference bit for bit; merge, unmerge and safe merge run as
// compiled graphs on WebGPU and fold the adapter; and a training step on
// WebGPU matches the CPU reference in both projection modes.
import { deepEqual, equal, fail, match, ok } from "node:assert/strict";
import { compile } from "../../backends/compile.ts";
import type { RandomProjections } from "../../compiler/fusion/fuse.ts";
import { type Graph, makeGraph, makeNode, type Node } from "../../compiler/ir.ts";
import type { MatmulOptions } from "../../compiler/kernels/matmul.ts";
import { matmulKernel } from "../../backends/webgpu/wgsl/matmul_kernel.ts";
import { type GptConfig, gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { resolveVeraConfig, vera, type VeraAdapter, veraProjections } from "../../adapters/vera.ts";
import { lora } from "../../adapters/lora.ts";
import { merge, safeMerge, unmerge } from "../../adapters/merge.ts";
import { webgpuMergeRunner } from "../../adapters/gpu_merge.ts";
import type { Executable } from "../../backends/executable.ts";
import { kaimingUniformBound, uniformSymmetric } from "../../prng/threefry.ts";
import {
  readFloat32,
  requestGpu,
  runKernels,
  uploadFloat32,
} from "../../backends/webgpu/device.ts";
import { adamw, initOptimizerState, trainStep } from "../../train/optim.ts";
import * as ops from "../../ops/mod.ts";
import { toKernel } from "../../backends/webgpu/wgsl/render.ts";

const SEED = 1234;

/** A seeded VeRA adapter of the given sizes, without a model (the projections only). */
function projectionsOf(r: number, maxIn: number, maxOut: number) {
  const adapter: Pick<VeraAdapter, "config" | "maxIn" | "maxOut" | "projections"> = {
    config: resolveVeraConfig({ r, projectionPrngKey: SEED, targetModules: ["q_proj"] }),
    maxIn,
    maxOut,
    projections: "seed",
  };
  return veraProjections(adapter);
}

/** The reference values of a projection `[rows, cols]`, as the random node defines them. */
function reference(node: Node): Float32Array {
  const { seed, stream, bound } = node.attrs as { seed: number; stream: number; bound: number };
  return uniformSymmetric(seed, stream, node.shape[0] * node.shape[1], bound);
}

/** `data[:rows, :cols]` of a row-major `[?, width]` matrix. */
function leading(data: Float32Array, width: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(data.subarray(i * width, i * width + cols), i * cols);
  return out;
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  }
  return out;
}

function identity(n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

/** Bit-for-bit equality of two f32 arrays, naming the first difference. */
function sameBits(got: ArrayLike<number>, want: Float32Array, what: string): void {
  const a = new Uint32Array(Float32Array.from(got).buffer);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  equal(a.length, b.length, `${what}: length`);
  const at = a.findIndex((v, i) => v !== b[i]);
  ok(at < 0, `${what}: element ${at} is ${got[at]}, expected ${want[at]}`);
}

/** Largest |got − want| over the largest |want|. */
function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let error = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    error = Math.max(error, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return Number.isFinite(error) ? error / Math.max(scale, 1e-30) : Infinity;
}

const f32 = (shape: number[], name: string) =>
  makeNode(ops.input, [], { shape, dtype: "f32" }, name);
const slice = (x: Node, ends: number[]) => makeNode(ops.slice, [x], { starts: [0, 0], ends });
const matmul = (a: Node, b: Node) => makeNode(ops.matmul, [a, b], {});
const transposed = (x: Node) => makeNode(ops.permute, [x], { perm: [1, 0] });

Deno.test("projections generated on the GPU equal uniformSymmetric bit for bit", async (t) => {
  const { a, b } = projectionsOf(1024, 1024, 256);
  const [refA, refB] = [reference(a), reference(b)];

  await t.step("into buffers: A [1024, 1024] and B [256, 1024], 1.3M elements", async () => {
    const exe = await compile(makeGraph({ inputs: [], outputs: { a, b } }), { backend: "webgpu" });
    const run = await exe.run({}, { read: ["a", "b"] });
    sameBits(await run.read("a"), refA, "A");
    sameBits(await run.read("b"), refB, "B");
    exe.destroy();
  });

  // Slices as the targets use them, read by matmuls against identities: each
  // operand layout (A row-major, B row-major, A transposed) reproduces the
  // projection exactly, with no buffer for it when fused.
  const [rows, width, out] = [48, 1000, 40];
  const eyeRows = f32([rows, rows], "eyeRows");
  const eyeWidth = f32([width, width], "eyeWidth");
  const eyeOut = f32([out, out], "eyeOut");
  const eye4 = f32([4, 4], "eye4");
  // A[:8, :12]ᵀ reshaped to [24, 4]: no stride pattern reads it, so the direct kernel does.
  const scrambled = makeNode(ops.reshape, [transposed(slice(a, [8, 12]))], { shape: [24, 4] });
  const graph = makeGraph({
    inputs: [eyeRows, eyeWidth, eyeOut, eye4],
    outputs: {
      // A[:48, :1000] as the right operand, B[:40, :]ᵀ as a transposed left one,
      // A[:48, :1000] as a row-major left operand.
      aRight: matmul(eyeRows, slice(a, [rows, width])),
      bLeftT: matmul(transposed(slice(b, [out, 1024])), eyeOut),
      aLeft: matmul(slice(a, [rows, width]), eyeWidth),
      direct: matmul(scrambled, eye4),
    },
  });
  const feeds = {
    eyeRows: identity(rows),
    eyeWidth: identity(width),
    eyeOut: identity(out),
    eye4: identity(4),
  };
  const wantA = leading(refA, 1024, rows, width);
  const wantB = transpose(leading(refB, 1024, out, 1024), out, 1024);
  const results: Record<string, Record<string, ArrayLike<number>>> = {};
  for (const mode of ["shared", "fused"] as const) {
    await t.step(`through matmul operands (${mode})`, async () => {
      const exe = await compile(graph, { backend: "webgpu", randomProjections: mode });
      const randomBuffers = [...exe.program!.tensors.values()].filter((x) =>
        x.node.op === "random"
      );
      equal(randomBuffers.length, mode === "shared" ? 2 : 0, "buffers of random nodes");
      const run = await exe.run(feeds, { read: Object.keys(graph.outputs) });
      results[mode] = {};
      for (const name of Object.keys(graph.outputs)) results[mode][name] = await run.read(name);
      sameBits(results[mode].aRight, wantA, "eye · A_s");
      sameBits(results[mode].aLeft, wantA, "A_s · eye");
      sameBits(results[mode].bLeftT, wantB, "B_sᵀ · eye");
      sameBits(results[mode].direct, transpose(leading(refA, 1024, 8, 12), 8, 12), "direct");
      ok(exe.program!.steps.some((s) => s.program.family === "matmul-direct"));
      exe.destroy();
    });
  }

  await t.step("fused loads through workgroup tiles equal buffer loads bit for bit", async () => {
    // The GPU tiles stage operands through workgroup memory (llvmpipe's
    // compile() uses registers, so this path is checked on the kernel itself).
    const gpu = await requestGpu();
    const random = { seed: SEED, stream: 1, bound: kaimingUniformBound(96) };
    const values = uniformSymmetric(SEED, 1, 72 * 96, random.bound);
    const options: MatmulOptions = {
      M: 20,
      N: 36,
      K: 70,
      transB: true,
      ldb: 96,
      offsetB: 96 * 2 + 1,
      tiles: { staging: "workgroup", tileM: 16, tileN: 16, tileK: 8, threadM: 4, threadN: 4 },
    };
    const x = Float32Array.from({ length: 20 * 70 }, (_, i) => Math.sin(i));
    const lhs = await uploadFloat32(gpu, x);
    const rhs = await uploadFloat32(gpu, values);
    const outs = [
      await uploadFloat32(gpu, new Float32Array(20 * 36)),
      await uploadFloat32(gpu, new Float32Array(20 * 36)),
    ];
    const generated = matmulKernel({ ...options, randomB: random });
    deepEqual(generated.bindings.map((binding) => binding.name), ["lhs", "dst"]);
    await runKernels(gpu, [
      { kernel: matmulKernel(options), buffers: [lhs, rhs, outs[0]] },
      { kernel: generated, buffers: [lhs, outs[1]] },
    ]);
    const [read, fused] = await Promise.all(outs.map((o) => readFloat32(gpu, o)));
    ok(read.some((v) => v !== 0));
    sameBits(fused, read, "generated B");
    [lhs, rhs, ...outs].forEach((buffer) => gpu.buffers.release(buffer));
  });
});

const CONFIG: GptConfig = {
  vocabSize: 11,
  maxSeqLen: 6,
  dModel: 8,
  heads: 2,
  layers: 2,
  head: "classifier",
  numClasses: 3,
};
const INPUTS = {
  tokens: Int32Array.from([1, 4, 2, 9, 3, 7, 0, 5, 10, 6, 8, 2]),
  labels: Int32Array.from([1, 0]),
  lastIndex: Int32Array.from([5, 3]),
};

/** Params with non-zero lambdaB / lora_B so the adapter changes the model. */
function perturbed(graph: Graph): Record<string, Float32Array> {
  const params = initParams(graph, { seed: 5 });
  for (const [name, v] of Object.entries(params)) {
    if (/vera_lambda_b|lora_B/.test(name)) {
      params[name] = v.map((_, i) => 0.5 * Math.sin(3 * i + 1));
    }
  }
  return params;
}

async function logitsOnGpu(graph: Graph, params: Record<string, Float32Array>) {
  const exe = await compile(graph, { backend: "webgpu" });
  exe.setParams(Object.fromEntries(graph.params.map((p) => [p.name!, params[p.name!]])));
  const logits = await (await exe.run(INPUTS, { read: ["logits"] })).read("logits");
  exe.destroy();
  return logits;
}

Deno.test("merge folds the adapter on the GPU", async (t) => {
  const base = gptGraph(CONFIG, { batch: 2, seqLen: 6 });
  const adapters = {
    vera: () => vera(base, { r: 6, targetModules: ["q_proj", "v_proj", "fc1", "fc2"] }),
    lora: () => lora(base, { r: 2, alpha: 4, targetModules: ["q_proj", "fc2"] }),
  };
  for (const [kind, adapt] of Object.entries(adapters)) {
    const { graph, adapter } = adapt();
    const params = perturbed(graph);
    const merged = await merge(adapter, params, { runner: webgpuMergeRunner });

    await t.step(`${kind}: the GPU merge equals the CPU merge`, async () => {
      const cpu = await merge(adapter, params);
      deepEqual(Object.keys(merged).sort(), Object.keys(cpu).sort());
      for (const target of adapter.targets) {
        const err = relativeError(merged[target.weight], cpu[target.weight]);
        ok(err <= 1e-6, `${target.weight}: ${err}`);
        ok(relativeError(merged[target.weight], params[target.weight]) > 1e-4, "changed");
      }
    });

    await t.step(`${kind}: the merged base model predicts what the adapted one does`, async () => {
      const adapted = await logitsOnGpu(graph, params);
      const folded = await logitsOnGpu(base, merged);
      const err = relativeError(folded, adapted);
      ok(err <= 1e-5, `logits differ by ${err}`);
    });

    await t.step(`${kind}: unmerge(merge(W)) restores W`, async () => {
      const restored = await unmerge(adapter, { ...params, ...merged }, {
        runner: webgpuMergeRunner,
      });
      for (const target of adapter.targets) {
        const err = relativeError(restored[target.weight], params[target.weight]);
        ok(err <= 1e-6, `${target.weight}: ${err}`);
      }
    });
  }

  await t.step("safeMerge on the GPU refuses a non-finite result", async () => {
    const { graph, adapter } = vera(base, { r: 4, targetModules: ["q_proj"] });
    const params = perturbed(graph);
    params["layers.1.attn.q_proj.vera_lambda_d"][0] = Infinity;
    await safeMerge(adapter, params, { runner: webgpuMergeRunner }).then(
      () => fail("expected a refusal"),
      (e: Error) => match(e.message, /safe merge refused: layers\.1\.attn\.q_proj\.weight/),
    );
  });
});

Deno.test("a VeRA training step on WebGPU matches the CPU reference in both projection modes", async (t) => {
  const model = gptGraph({ ...CONFIG, dModel: 16, head: "lm" }, { batch: 2, seqLen: 6 });
  const { graph } = vera(model, { r: 32, targetModules: ["q_proj", "v_proj", "fc1"] });
  const step = trainStep(graph, { optimizer: adamw() });
  const params = { ...perturbed(graph), ...initOptimizerState(step) };
  const tokens = INPUTS.tokens;
  const targets = Int32Array.from(tokens, (v, i) => (v + i) % CONFIG.vocabSize);
  const lambdas = graph.params.map((p) => p.name!).filter((n) => n.includes("vera_lambda"));

  /** Two steps (the second moves lambdaD through the updated lambdaB); the loss and lambdas after. */
  async function train(exe: Executable, mode?: RandomProjections) {
    if (mode !== undefined) {
      // A matmul that generates an operand calls Threefry in its loads.
      const generated = exe.program!.steps.filter((s) =>
        s.program.family === "matmul" && toKernel(s.program).wgsl.includes("uniform_symmetric(")
      );
      const buffers = [...exe.program!.tensors.values()].filter((x) => x.node.op === "random");
      deepEqual([generated.length > 0, buffers.length], mode === "fused" ? [true, 0] : [false, 2]);
    }
    exe.setParams(params);
    await exe.run({ tokens, targets, lr: [1e-2], step: [1] });
    const run = await exe.run({ tokens, targets, lr: [1e-2], step: [2] }, { read: ["loss"] });
    const loss = await run.read("loss");
    const values: Record<string, ArrayLike<number>> = {};
    for (const name of lambdas) values[name] = await exe.getParam(name);
    exe.destroy();
    return { loss, values };
  }

  const cpu = await train(await compile(step, { backend: "cpu" }));
  const gpu: Partial<Record<RandomProjections, Awaited<ReturnType<typeof train>>>> = {};
  for (const mode of ["shared", "fused"] as const) {
    await t.step(mode, async () => {
      const exe = await compile(step, { backend: "webgpu", randomProjections: mode });
      gpu[mode] = await train(exe, mode);
      const { loss, values } = gpu[mode]!;
      ok(relativeError(loss, cpu.loss) <= 1e-4, `loss ${loss[0]} vs ${cpu.loss[0]}`);
      for (const name of lambdas) {
        const err = relativeError(values[name], cpu.values[name]);
        ok(err <= 1e-4, `${name}: ${err}`);
      }
    });
  }

  await t.step("the two modes agree bit for bit", () => {
    sameBits(gpu.fused!.loss, Float32Array.from(gpu.shared!.loss), "loss");
    for (const name of lambdas) {
      sameBits(gpu.fused!.values[name], Float32Array.from(gpu.shared!.values[name]), name);
    }
  });
});
