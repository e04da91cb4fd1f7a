// The matmul generator checked against a float64 CPU reference on the real
// adapter (llvmpipe in CI), across edge shapes, layouts, slices, broadcasts,
// both staging modes and every epilogue builder. Tiles are kept small so the
// few distinct kernels compile quickly.

import assert from "node:assert/strict";
import {
  activation,
  addBias,
  addResidual,
  MATMUL_TILES_CPU,
  MATMUL_TILES_CPU_ROWS,
  MATMUL_TILES_CPU_SMALL,
  MATMUL_TILES_GPU,
  type MatmulOptions,
  type MatmulTiles,
  matmulTilesFor,
  scaleBy,
  scaleColumns,
  scaleRows,
} from "../../../compiler/kernels/matmul.ts";
import { matmulKernel } from "../../../backends/webgpu/wgsl/matmul_kernel.ts";
import { matmulSizes } from "./_matmul_sizes.ts";
import { lowerPlan } from "../../../compiler/kernels/lower.ts";
import { toKernel } from "../../../backends/webgpu/wgsl/render.ts";
import { fuse } from "../../../compiler/fusion/fuse.ts";
import { param, trace } from "../../../compiler/trace.ts";
import {
  readFloat32,
  requestGpu,
  runKernels,
  uploadFloat32,
} from "../../../backends/webgpu/device.ts";

const REGISTERS: Partial<MatmulTiles> = {
  staging: "registers",
  tileM: 16,
  tileN: 16,
  tileK: 4,
  threadM: 4,
  threadN: 4,
};
const WORKGROUP: Partial<MatmulTiles> = {
  staging: "workgroup",
  tileM: 16,
  tileN: 16,
  tileK: 8,
  threadM: 4,
  threadN: 4,
};

/** Deterministic values in [-1, 1). */
function random(length: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length }, () => {
    state = (Math.imul(state ^ (state >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

/** C[b] = op(A[b]) · op(B[b]) in float64, indexing exactly as the options describe. */
function referenceMatmul(o: MatmulOptions, a: Float32Array, b: Float32Array): Float64Array {
  const { M, N, K } = o;
  const batch = o.batch ?? 1;
  const lda = o.lda ?? (o.transA ? M : K);
  const ldb = o.ldb ?? (o.transB ? K : N);
  const strideA = o.batchStrideA ?? M * K;
  const strideB = o.batchStrideB ?? K * N;
  const c = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let sum = 0;
        for (let k = 0; k < K; k++) {
          const av = a[(o.offsetA ?? 0) + z * strideA + (o.transA ? k * lda + i : i * lda + k)];
          const bv = b[(o.offsetB ?? 0) + z * strideB + (o.transB ? j * ldb + k : k * ldb + j)];
          sum += av * bv;
        }
        c[(z * M + i) * N + j] = sum;
      }
    }
  }
  return c;
}

function assertClose(got: Float32Array, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  let error = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Number.isFinite(got[i]), `${what}: element ${i} is ${got[i]}`);
    scale = Math.max(scale, Math.abs(want[i]));
    error = Math.max(error, Math.abs(got[i] - want[i]));
  }
  assert.ok(
    error <= 1e-4 * Math.max(scale, 1e-30),
    `${what}: relative error ${error / scale} > 1e-4`,
  );
}

interface Extra {
  /** Epilogue buffers, in binding order. */
  buffers?: Float32Array[];
  /** Applies the epilogue to the reference. */
  epilogue?: (acc: number, row: number, col: number, index: number) => number;
}

/** Runs one matmul on the GPU and compares it with the reference (plus an epilogue). */
async function check(options: MatmulOptions, extra: Extra = {}): Promise<void> {
  const gpu = await requestGpu();
  const sizes = matmulSizes(options);
  const a = random(sizes.a, 1);
  const b = random(sizes.b, 2);
  const kernel = matmulKernel(options);
  const inputs = [a, b, ...(extra.buffers ?? [])];
  const buffers = await Promise.all(
    inputs.map((x) => uploadFloat32(gpu, x.length ? x : new Float32Array(1))),
  );
  const sentinel = new Float32Array(sizes.c).fill(Number.NaN);
  const out = await uploadFloat32(gpu, sentinel);
  try {
    await runKernels(gpu, [{
      kernel,
      buffers: [buffers[0], buffers[1], out, ...buffers.slice(2)],
    }]);
    const got = await readFloat32(gpu, out, {
      length: (options.batch ?? 1) * options.M * options.N,
    });
    const want = referenceMatmul(options, a, b);
    const { M, N } = options;
    if (extra.epilogue) {
      want.forEach((v, index) => {
        want[index] = extra.epilogue!(v, Math.floor(index / N) % M, index % N, index);
      });
    }
    assertClose(got, want, kernel.key);
  } finally {
    for (const buffer of [...buffers, out]) gpu.buffers.release(buffer);
  }
}

const gpuTest = { sanitizeOps: false, sanitizeResources: false };

Deno.test("matmul kernels match the float64 reference (registers staging)", gpuTest, async (t) => {
  const tiles = REGISTERS;
  for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [17, 33, 65]]) {
    await t.step(`${M}x${N}x${K}`, () => check({ M, N, K, tiles }));
  }
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      // 8x12x16 is vec4-aligned everywhere; 9x10x11 takes the scalar paths.
      for (const [M, N, K] of [[8, 12, 16], [9, 10, 11]]) {
        await t.step(
          `transA=${transA} transB=${transB} ${M}x${N}x${K}`,
          () => check({ M, N, K, transA, transB, tiles }),
        );
      }
    }
  }
  await t.step(
    "batched, B broadcast with stride 0",
    () => check({ batch: 3, M: 5, N: 6, K: 7, batchStrideB: 0, tiles }),
  );
  await t.step(
    "batched, A broadcast, transposed B",
    () => check({ batch: 2, M: 8, N: 4, K: 8, batchStrideA: 0, transB: true, tiles }),
  );
  await t.step(
    "VeRA slice x · A[:, :in]ᵀ of A: [r, maxIn], unaligned",
    () => check({ M: 4, N: 3, K: 6, transB: true, ldb: 10, tiles }),
  );
  await t.step(
    "aligned slice with offsets and leading dims",
    () => check({ M: 5, N: 8, K: 12, lda: 16, offsetA: 8, ldb: 12, offsetB: 4, tiles }),
  );
  await t.step(
    "aligned k-contiguous rows with a k tail (single lanes of vec4 loads)",
    () => check({ M: 5, N: 6, K: 11, lda: 12, transB: true, ldb: 16, offsetB: 4, tiles }),
  );
  await t.step("K=0 gives zeros", () => check({ M: 3, N: 4, K: 0, tiles }));
  await t.step(
    "K=0 still applies the epilogue",
    () =>
      check({ M: 2, N: 5, K: 0, epilogue: addBias("bias"), tiles }, {
        buffers: [Float32Array.of(1, 2, 3, 4, 5)],
        epilogue: (acc, _row, col) => acc + [1, 2, 3, 4, 5][col],
      }),
  );
  await t.step("M=0 and N=0 dispatch nothing", async () => {
    assert.deepEqual(matmulKernel({ M: 0, N: 4, K: 3, tiles }).dispatch, [0, 0, 0]);
    await check({ M: 0, N: 4, K: 3, tiles });
    await check({ M: 4, N: 0, K: 3, tiles });
  });
});

Deno.test("matmul kernels match the float64 reference (workgroup staging)", gpuTest, async (t) => {
  const tiles = WORKGROUP;
  await t.step(
    "17x33x65 (scalar tile loads, partial tiles)",
    () => check({ M: 17, N: 33, K: 65, tiles }),
  );
  await t.step(
    "transA, vec4 tile loads",
    () => check({ M: 16, N: 20, K: 24, transA: true, tiles }),
  );
  await t.step(
    "transB with a leading-dimension slice",
    () => check({ M: 20, N: 12, K: 8, transB: true, ldb: 16, tiles }),
  );
  await t.step(
    "tile copies that do not divide among the invocations (a guarded last copy)",
    () =>
      check({
        M: 13,
        N: 17,
        K: 9,
        tiles: { staging: "workgroup", tileM: 12, tileN: 16, tileK: 4, threadM: 4, threadN: 4 },
      }),
  );
  await t.step(
    "batched broadcast with an epilogue",
    () =>
      check({ batch: 2, M: 6, N: 8, K: 12, batchStrideA: 0, epilogue: scaleBy(-2), tiles }, {
        epilogue: (acc) => acc * -2,
      }),
  );
});

Deno.test("matmul presets", gpuTest, async (t) => {
  await requestGpu();
  // Shapes off the tile grid but vec4-aligned, which keeps the big kernels quick to compile.
  await t.step(
    "MATMUL_TILES_CPU",
    () => check({ M: 132, N: 20, K: 24, transB: true, tiles: MATMUL_TILES_CPU }),
  );
  await t.step(
    "MATMUL_TILES_CPU_SMALL",
    () => check({ M: 68, N: 12, K: 24, tiles: MATMUL_TILES_CPU_SMALL }),
  );
  await t.step("MATMUL_TILES_CPU_ROWS (1 to 4 rows, partial column tiles)", async () => {
    for (const M of [1, 2, 3, 4]) {
      await check({ M, N: 70, K: 36, transB: true, tiles: MATMUL_TILES_CPU_ROWS });
      await check({ M, N: 20, K: 9, transA: true, ldb: 24, tiles: MATMUL_TILES_CPU_ROWS });
    }
  });
  // The preset real GPUs get runs here too (seconds to compile on llvmpipe, but
  // it is the code path an NVIDIA adapter takes, so CI must exercise it).
  await t.step(
    "MATMUL_TILES_GPU",
    () => check({ M: 70, N: 68, K: 36, transA: true, tiles: MATMUL_TILES_GPU }),
  );
});

Deno.test("matmul epilogue builders", gpuTest, async (t) => {
  const [M, N, K] = [6, 8, 5];
  const tiles = REGISTERS;
  const rows = random(M, 3);
  const cols = random(N, 4);
  const bias = random(N, 5);
  const residual = random(M * N, 6);
  await t.step("scaleRows, scaleColumns, addBias, scaleBy in order", () =>
    check({
      M,
      N,
      K,
      tiles,
      epilogue: [scaleRows("s_rows"), scaleColumns("s_cols"), addBias("bias"), scaleBy(0.5)],
    }, {
      buffers: [rows, cols, bias],
      epilogue: (acc, row, col) => (acc * rows[row] * cols[col] + bias[col]) * 0.5,
    }));
  await t.step(
    "addResidual then gelu (tanh form)",
    () =>
      check({ M, N, K, tiles, epilogue: [addResidual("residual"), activation("gelu")] }, {
        buffers: [residual],
        epilogue: (acc, _row, _col, index) => {
          const x = acc + residual[index];
          return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
        },
      }),
  );
  await t.step(
    "relu",
    () =>
      check({ M, N, K, tiles, epilogue: activation("relu") }, {
        epilogue: (acc) => Math.max(acc, 0),
      }),
  );
});

Deno.test("matmul keys, plans and validation (no GPU)", async (t) => {
  const base: MatmulOptions = { M: 8, N: 8, K: 8, tiles: REGISTERS };
  await t.step(
    "equal options give equal kernels; every WGSL-changing option changes the key",
    () => {
      assert.deepEqual(matmulKernel(base), matmulKernel({ ...base }));
      const variants: MatmulOptions[] = [
        { ...base, M: 9 },
        { ...base, K: 4 },
        { ...base, batch: 2 },
        { ...base, transA: true },
        { ...base, transB: true },
        { ...base, lda: 12 },
        { ...base, ldb: 12 },
        { ...base, offsetA: 4 },
        { ...base, offsetB: 4 },
        { ...base, batch: 2, batchStrideA: 0 },
        { ...base, tiles: { ...REGISTERS, threadN: 8 } },
        { ...base, tiles: WORKGROUP },
        { ...base, epilogue: scaleBy(2) },
        { ...base, epilogue: scaleBy(3) },
        { ...base, epilogue: addBias("bias") },
        { ...base, epilogue: addBias("b2") },
      ];
      const kernels = [matmulKernel(base), ...variants.map(matmulKernel)];
      assert.equal(new Set(kernels.map((k) => k.key)).size, kernels.length);
      assert.equal(new Set(kernels.map((k) => k.wgsl)).size, kernels.length);
    },
  );
  await t.step("label travels to the kernel; bindings and dispatch", () => {
    const k = matmulKernel({
      ...base,
      M: 40,
      N: 20,
      batch: 3,
      label: "layers.0.mlp.fc1",
      epilogue: addBias("bias"),
    });
    assert.equal(k.label, "layers.0.mlp.fc1");
    assert.deepEqual(k.bindings.map((b) => b.type), [
      "storage-read",
      "storage-read",
      "storage",
      "storage-read",
    ]);
    assert.deepEqual(k.dispatch, [2, 3, 3]);
    assert.deepEqual(k.workgroupSize, [4, 4, 1]);
  });
  await t.step("sizes account for slices, offsets and broadcasts", () => {
    assert.deepEqual(matmulSizes({ M: 4, N: 3, K: 6, transB: true, ldb: 10 }), {
      a: 24,
      b: 26,
      c: 12,
    });
    assert.deepEqual(matmulSizes({ batch: 3, M: 2, N: 2, K: 2, batchStrideB: 0, offsetA: 1 }), {
      a: 13,
      b: 4,
      c: 12,
    });
    assert.deepEqual(matmulSizes({ M: 0, N: 3, K: 6 }), { a: 1, b: 18, c: 1 });
  });
  await t.step("bad options are rejected with the offending field", () => {
    assert.throws(() => matmulKernel({ M: -1, N: 1, K: 1 }), /M must be a non-negative integer/);
    assert.throws(
      () => matmulKernel({ M: 4, N: 4, K: 8, lda: 4, label: "q_proj" }),
      /q_proj.*lda = 4 is shorter/,
    );
    assert.throws(
      () => matmulKernel({ ...base, tiles: { ...REGISTERS, threadM: 3 } }),
      /threadM must be a positive multiple of 4/,
    );
    assert.throws(
      () => matmulKernel({ ...base, tiles: { ...REGISTERS, tileM: 256, tileN: 32 } }),
      /invocations/,
    );
    assert.throws(
      () => matmulKernel({ ...base, epilogue: addBias("row") }),
      /epilogue binding "row"/,
    );
    assert.throws(
      () => matmulKernel({ ...base, epilogue: [addBias("v"), scaleColumns("v")] }),
      /unique/,
    );
    assert.throws(
      () => matmulKernel({ ...base, epilogue: addBias("v0") }),
      /epilogue binding "v0"/,
    );
    assert.throws(() => scaleBy(Number.NaN), /finite/);
  });
  await t.step("a fused graph epilogue is built into the one program and keyed from it", () => {
    const plan = fuse(
      trace((x) => x.matmul(param("w", [8, 12])).add(param("b", [12])).relu(), [
        { name: "x", shape: [5, 8] },
      ]),
    );
    const lowered = lowerPlan(plan, { tiles: REGISTERS });
    const matmul = lowered.filter((l) => l.program.family === "matmul");
    assert.equal(matmul.length, 1);
    const [{ program }] = matmul;
    const kernel = toKernel(program);
    assert.equal(kernel.wgsl.match(/\bfn epilogue\(/g)?.length, 1);
    const epilogue = kernel.wgsl.slice(kernel.wgsl.indexOf("fn epilogue("));
    assert.match(epilogue, /> 0\.0f\)/, "the relu (x > 0 ? x : 0) is computed in the epilogue");
    assert.deepEqual(program.buffers.map((b) => b.name), ["lhs", "rhs", "dst", "e0"]);
  });
  await t.step("tiles follow the adapter", () => {
    assert.equal(matmulTilesFor({ isFallbackAdapter: true }), MATMUL_TILES_CPU);
    assert.equal(
      matmulTilesFor({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }),
      MATMUL_TILES_CPU,
    );
    assert.equal(matmulTilesFor({ description: "NVIDIA H200" }), MATMUL_TILES_GPU);
    assert.equal(
      matmulTilesFor({ isFallbackAdapter: true }, { M: 256, N: 192, K: 64 }),
      MATMUL_TILES_CPU_SMALL,
    );
    assert.equal(
      matmulTilesFor({ isFallbackAdapter: true }, { M: 512, N: 512, K: 512 }),
      MATMUL_TILES_CPU,
    );
    assert.equal(
      matmulTilesFor({ description: "NVIDIA H200" }, { M: 1, N: 1, K: 1 }),
      MATMUL_TILES_GPU,
    );
  });
});
