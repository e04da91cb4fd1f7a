// Validation and layout planning for compiler/kernels/matmul.ts: everything that
// decides the kernel is gathered into a MatmulPlan, which _matmul_codegen.ts builds.

import type { KernelBuffer } from "../kernel_ir/mod.ts";
import type { MatmulEpilogue, MatmulOptions, MatmulTiles, RandomOperand } from "./_matmul_types.ts";

/**
 * One operand as stored: per batch, `outer` rows of `inner` contiguous elements, `ld` apart.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { type OperandPlan, planMatmul } from "./_matmul_plan.ts";
 * import { MATMUL_TILES_GPU } from "./matmul.ts";
 * // Bᵀ of a PyTorch weight [N = 3, K = 8]: rows of B are contiguous along k.
 * const b: OperandPlan = planMatmul({ M: 2, N: 3, K: 8, transB: true }, MATMUL_TILES_GPU).b;
 * strictEqual(b.kContiguous, true);
 * strictEqual(b.extent, 24);
 * ```
 */
export interface OperandPlan {
  kContiguous: boolean;
  outer: number;
  inner: number;
  ld: number;
  batchStride: number;
  offset: number;
  /** Elements of the buffer the kernel may read. */
  extent: number;
  /** Every stored row starts 16-byte aligned, so rows can be read as vec4. */
  aligned: boolean;
  /** Generated in the loads rather than read: the operand has no buffer. */
  random?: RandomOperand;
}

/**
 * A validated matmul, ready to emit.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { type MatmulPlan, planMatmul } from "./_matmul_plan.ts";
 * import { MATMUL_TILES_GPU } from "./matmul.ts";
 * const plan: MatmulPlan = planMatmul({ M: 2, N: 3, K: 8 }, MATMUL_TILES_GPU);
 * strictEqual(plan.batch, 1);
 * ```
 */
export interface MatmulPlan {
  batch: number;
  M: number;
  N: number;
  K: number;
  tiles: MatmulTiles;
  a: OperandPlan;
  b: OperandPlan;
  epilogues: readonly MatmulEpilogue[];
}

/**
 * Validates one operand's layout and fills in defaults.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { operandPlan } from "./_matmul_plan.ts";
 * const a = { name: "A" as const, at: "matmul", outer: 4, inner: 6, kContiguous: true, batch: 1, batchStride: 24, offset: 0 };
 * strictEqual(operandPlan({ ...a, ld: 8 }).aligned, true);
 * throws(() => operandPlan({ ...a, ld: 5 }), /lda = 5 is shorter/);
 * ```
 */
export function operandPlan(o: {
  name: "A" | "B";
  at: string;
  outer: number;
  inner: number;
  kContiguous: boolean;
  ld?: number;
  batch: number;
  batchStride: number;
  offset: number;
  random?: RandomOperand;
}): OperandPlan {
  const ld = o.ld ?? o.inner;
  const n = o.name;
  const fields = {
    [`ld${n.toLowerCase()}`]: ld,
    [`batchStride${n}`]: o.batchStride,
    [`offset${n}`]: o.offset,
  };
  for (const [name, v] of Object.entries(fields)) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new Error(`${o.at}: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  if (o.outer > 1 && ld < o.inner) {
    throw new Error(
      `${o.at}: ld${n.toLowerCase()} = ${ld} is shorter than a stored row of ${n} ` +
        `(${n} is stored [${o.outer}, ${o.inner}] per batch)`,
    );
  }
  const batchStride = o.batch > 1 ? o.batchStride : 0;
  const empty = o.outer === 0 || o.inner === 0 || o.batch === 0;
  const extent = empty ? 0 : o.offset + (o.batch - 1) * batchStride + (o.outer - 1) * ld + o.inner;
  if (extent >= 2 ** 32) {
    throw new Error(`${o.at}: ${n} spans ${extent} elements, more than u32 can index`);
  }
  const aligned = o.offset % 4 === 0 && (o.outer <= 1 || ld % 4 === 0) && batchStride % 4 === 0;
  const { kContiguous, outer, inner, offset, random } = o;
  if (random !== undefined) checkRandom(random, `${o.at}: random${n}`);
  return { kContiguous, outer, inner, ld, batchStride, offset, extent, aligned, random };
}

function checkRandom(r: RandomOperand, at: string): void {
  for (const field of ["seed", "stream"] as const) {
    const v = r[field];
    if (!Number.isInteger(v) || v < 0 || v >= 2 ** 32) {
      throw new Error(`${at}: ${field} must be an integer in [0, 2^32), got ${v}`);
    }
  }
  if (!(Number.isFinite(r.bound) && r.bound > 0)) {
    throw new Error(`${at}: bound must be finite and > 0, got ${r.bound}`);
  }
}

// Names the generated module declares at module scope (buffers, workgroup
// tiles, functions, Threefry's when an operand is generated) or gives the
// epilogue function's parameters: an epilogue buffer so named would be shadowed.
const RESERVED = new Set([
  "lhs",
  "rhs",
  "dst",
  "a_tile",
  "b_tile",
  "acc",
  "row",
  "col",
  "batch",
  "index",
  "epilogue",
  "store",
  "main",
  "threefry_rotl",
  "threefry_mix",
  "threefry_rounds_a",
  "threefry_rounds_b",
  "threefry2x32",
  "random_word",
  "random_unit",
  "uniform_symmetric",
  "dropout_keep",
]);

/** The names the kernel IR builder gives the epilogue's own `let`s (`v0`, `acc1`, ...). */
const LOCAL = /^(v|acc)[0-9]+$/;

function where(options: MatmulOptions): string {
  return options.label === undefined ? "" : ` (${options.label})`;
}

/**
 * Validates the options, fills in defaults (tiles from `defaultTiles`) and lays out both operands.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { planMatmul } from "./_matmul_plan.ts";
 * import { MATMUL_TILES_GPU } from "./matmul.ts";
 * strictEqual(planMatmul({ M: 2, N: 3, K: 4, tiles: { tileK: 8 } }, MATMUL_TILES_GPU).tiles.tileK, 8);
 * throws(() => planMatmul({ M: 2, N: 3, K: -1 }, MATMUL_TILES_GPU), /K must be a non-negative integer/);
 * ```
 */
export function planMatmul(
  options: MatmulOptions,
  defaultTiles: Readonly<MatmulTiles>,
): MatmulPlan {
  const at = `matmul${where(options)}`;
  const { M, N, K } = options;
  const batch = options.batch ?? 1;
  for (const [name, v] of Object.entries({ batch, M, N, K })) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new Error(`${at}: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  const tiles = { ...defaultTiles, ...options.tiles };
  checkTiles(tiles, at);
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const a = operandPlan({
    name: "A",
    at,
    outer: transA ? K : M,
    inner: transA ? M : K,
    kContiguous: !transA,
    ld: options.lda,
    batch,
    batchStride: options.batchStrideA ?? M * K,
    offset: options.offsetA ?? 0,
    random: options.randomA,
  });
  const b = operandPlan({
    name: "B",
    at,
    outer: transB ? N : K,
    inner: transB ? K : N,
    kContiguous: transB,
    ld: options.ldb,
    batch,
    batchStride: options.batchStrideB ?? K * N,
    offset: options.offsetB ?? 0,
    random: options.randomB,
  });
  if (batch * M * N >= 2 ** 32) {
    throw new Error(`${at}: C has ${batch * M * N} elements, more than u32 indexes`);
  }
  const epilogues = options.epilogue === undefined
    ? []
    : Array.isArray(options.epilogue)
    ? options.epilogue as readonly MatmulEpilogue[]
    : [options.epilogue as MatmulEpilogue];
  const names = new Set<string>();
  for (const binding of epilogues.flatMap((e) => e.bindings)) {
    if (
      !/^[A-Za-z][A-Za-z0-9_]*$/.test(binding.name) || RESERVED.has(binding.name) ||
      LOCAL.test(binding.name) || names.has(binding.name)
    ) {
      throw new Error(
        `${at}: epilogue binding ${JSON.stringify(binding.name)} must be a unique identifier ` +
          `other than ${[...RESERVED].join(", ")} and v<n>, acc<n>`,
      );
    }
    if (binding.type !== "storage-read") {
      throw new Error(
        `${at}: epilogue binding ${binding.name} must be "storage-read", got ${binding.type}`,
      );
    }
    names.add(binding.name);
  }
  return { batch, M, N, K, tiles, a, b, epilogues };
}

function checkTiles(t: MatmulTiles, at: string): void {
  const fail = (why: string) => {
    throw new Error(`${at}: bad tiles ${JSON.stringify(t)}: ${why}`);
  };
  if (t.staging !== "workgroup" && t.staging !== "registers") {
    fail(`staging must be "workgroup" or "registers"`);
  }
  for (const f of ["tileM", "tileN", "tileK", "threadM", "threadN"] as const) {
    if (!Number.isInteger(t[f]) || t[f] < 4 || t[f] % 4 !== 0) {
      fail(`${f} must be a positive multiple of 4`);
    }
  }
  if (t.tileM % t.threadM || t.tileN % t.threadN) {
    fail("tileM/tileN must be multiples of threadM/threadN");
  }
  const invocations = (t.tileM / t.threadM) * (t.tileN / t.threadN);
  if (invocations > 256) fail(`${invocations} invocations per workgroup exceed 256`);
  if (t.staging === "workgroup" && (t.tileM + t.tileN) * t.tileK * 4 > 16384) {
    fail("workgroup tiles exceed 16 KiB of workgroup memory");
  }
}

/**
 * Which arrays are read or written as `vec4<f32>`: vec4 reads need aligned
 * rows; outside the registers-mode k loop (which has a scalar tail) they also
 * need whole vec4s along the stored rows. A generated operand is computed one
 * element at a time; C is written as vec4 when its rows are whole vec4s.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { planMatmul, vectorised } from "./_matmul_plan.ts";
 * import { MATMUL_TILES_CPU } from "./matmul.ts";
 * deepStrictEqual(vectorised(planMatmul({ M: 4, N: 6, K: 8 }, MATMUL_TILES_CPU)), { a: true, b: false, c: false });
 * ```
 */
export function vectorised(p: MatmulPlan): { a: boolean; b: boolean; c: boolean } {
  const registers = p.tiles.staging === "registers";
  const vec = (o: OperandPlan) =>
    !o.random && o.aligned && ((registers && o.kContiguous) || o.inner % 4 === 0);
  return { a: vec(p.a), b: vec(p.b), c: p.N % 4 === 0 };
}

/**
 * The kernel's buffers in binding order: `lhs` and `rhs` unless generated, `dst`, the epilogues'.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { matmulBuffers, planMatmul } from "./_matmul_plan.ts";
 * import { MATMUL_TILES_CPU } from "./matmul.ts";
 * const plan = planMatmul({ M: 4, N: 8, K: 8, randomA: { seed: 1, stream: 0, bound: 1 } }, MATMUL_TILES_CPU);
 * deepStrictEqual(matmulBuffers(plan).map((b) => `${b.name}: ${b.element}`), ["rhs: vec4f", "dst: vec4f"]);
 * ```
 */
export function matmulBuffers(p: MatmulPlan): KernelBuffer[] {
  const vec = vectorised(p);
  const element = (v: boolean) => v ? "vec4f" as const : "f32" as const;
  return [
    ...(p.a.random ? [] : [{ name: "lhs", access: "read" as const, element: element(vec.a) }]),
    ...(p.b.random ? [] : [{ name: "rhs", access: "read" as const, element: element(vec.b) }]),
    { name: "dst", access: "read_write", element: element(vec.c) },
    ...p.epilogues.flatMap((e) =>
      e.bindings.map((b): KernelBuffer => ({
        name: b.name,
        access: "read",
        element: b.element ?? "f32",
      }))
    ),
  ];
}
