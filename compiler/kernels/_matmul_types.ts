// The matmul kernel's option types on their own, so the planner, the code
// generator and the epilogues can name them without importing matmul.ts back.
import type { Body, Expr } from "../kernel_ir/mod.ts";

/**
 * How work is split: the C tile of a workgroup, its k step, and the register block of an invocation.
 *
 * @example
 * ```ts
 * import type { MatmulTiles } from "./matmul.ts";
 * // 64×64 outputs per workgroup of 8×8 invocations, each computing 8×8 outputs.
 * const tiles: MatmulTiles = { staging: "registers", tileM: 64, tileN: 64, tileK: 4, threadM: 8, threadN: 8 };
 * ```
 */
export interface MatmulTiles {
  /** `workgroup`: operands pass through workgroup-memory tiles; `registers`: read directly. */
  staging: "workgroup" | "registers";
  /** Rows of C per workgroup (a multiple of `threadM`). */
  tileM: number;
  /** Columns of C per workgroup (a multiple of `threadN`). */
  tileN: number;
  /** k values per step (a multiple of 4): the workgroup tile depth, or the unroll of the k loop. */
  tileK: number;
  /** Rows of C per invocation (a multiple of 4). */
  threadM: number;
  /** Columns of C per invocation (a multiple of 4). */
  threadN: number;
}

/**
 * What an epilogue sees of one element of C: its accumulated value and where it is.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ref } from "../kernel_ir/mod.ts";
 * import type { MatmulEpilogueArgs } from "./matmul.ts";
 * const at: MatmulEpilogueArgs = {
 *   acc: ref("acc", "f32"), row: ref("row", "u32"), col: ref("col", "u32"),
 *   batch: ref("batch", "u32"), index: ref("index", "u32"),
 * };
 * strictEqual(at.acc.type, "f32");
 * ```
 */
export interface MatmulEpilogueArgs {
  /** The value so far (f32): the product, or the previous epilogue's result. */
  readonly acc: Expr;
  /** Row of C (u32). */
  readonly row: Expr;
  /** Column of C (u32). */
  readonly col: Expr;
  /** Batch of C (u32). */
  readonly batch: Expr;
  /** The linear output index `(batch·M + row)·N + col` (u32). */
  readonly index: Expr;
}

/**
 * An extra read-only buffer of an epilogue.
 *
 * @example
 * ```ts
 * import type { MatmulEpilogueBinding } from "./matmul.ts";
 * const bias: MatmulEpilogueBinding = { name: "bias", type: "storage-read" };
 * ```
 */
export interface MatmulEpilogueBinding {
  /** The buffer's name in the kernel (what `apply` loads from). */
  readonly name: string;
  /** Epilogue buffers are read-only. */
  readonly type: "storage-read";
  /** Its element type (default f32). */
  readonly element?: "f32" | "i32" | "u32";
}

/**
 * An elementwise epilogue, in the kernel IR: `apply` builds the new f32 value
 * of the accumulator from {@link MatmulEpilogueArgs}, reading its `bindings`
 * by name; helper values go into `body` (the epilogue function's body).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, Body, load, mul, ref } from "../kernel_ir/mod.ts";
 * import type { MatmulEpilogue } from "./matmul.ts";
 * import { formatExpr } from "../kernel_ir/print.ts";
 * // VeRA's output scaling and the base layer's result, fused: lambda_b ⊙ acc + base.
 * const veraOut: MatmulEpilogue = {
 *   bindings: [{ name: "lambda_b", type: "storage-read" }, { name: "base", type: "storage-read" }],
 *   apply: ({ acc, col, index }) =>
 *     add(mul(load("lambda_b", col, "f32"), acc), load("base", index, "f32")),
 * };
 * const at = {
 *   acc: ref("acc", "f32"), row: ref("row", "u32"), col: ref("col", "u32"),
 *   batch: ref("batch", "u32"), index: ref("index", "u32"),
 * };
 * strictEqual(formatExpr(veraOut.apply(at, new Body())), "((lambda_b[col] * acc) + base[index])");
 * ```
 */
export interface MatmulEpilogue {
  /** Extra read-only buffers the epilogue reads (bound after `lhs`, `rhs`, `dst`). */
  readonly bindings: readonly MatmulEpilogueBinding[];
  /** The new f32 value; lets it needs are added to `body`. */
  readonly apply: (at: MatmulEpilogueArgs, body: Body) => Expr;
}

/**
 * An operand generated inside the kernel instead of read from a buffer (a
 * `random` node, docs/ARCHITECTURE.md §6): the element its layout options address at
 * flat index `e` is `uniform_symmetric(key(seed, stream), e, bound)`, the
 * same bits as the TypeScript reference `uniformSymmetric`.
 *
 * @example
 * ```ts
 * import type { RandomOperand } from "./matmul.ts";
 * import { kaimingUniformBound } from "../../prng/threefry.ts";
 * // VeRA's A [r = 16, maxIn = 64], stream 0 under seed 7.
 * const veraA: RandomOperand = { seed: 7, stream: 0, bound: kaimingUniformBound(64) };
 * ```
 */
export interface RandomOperand {
  /** An integer in [0, 2^32). */
  seed: number;
  /** An integer in [0, 2^32). */
  stream: number;
  /** The half-width, finite and > 0 (used as an f32). */
  bound: number;
}

/**
 * What to multiply; only `M`, `N`, `K` are required.
 *
 * @example
 * ```ts
 * import type { MatmulOptions } from "./matmul.ts";
 * // h = x · A[:, :in]ᵀ for x: [32, 48] and VeRA's shared A: [r = 16, maxIn = 64].
 * const options: MatmulOptions = { M: 32, N: 16, K: 48, transB: true, ldb: 64, label: "q_proj vera" };
 * ```
 */
export interface MatmulOptions {
  /** Number of independent products (default 1); dispatched along z. */
  batch?: number;
  /** Rows of op(A) and C. */
  M: number;
  /** Columns of op(B) and C. */
  N: number;
  /** Columns of op(A), rows of op(B). */
  K: number;
  /** A is stored `[K, M]` and used transposed. */
  transA?: boolean;
  /** B is stored `[N, K]` and used transposed (PyTorch `nn.Linear` weights). */
  transB?: boolean;
  /** Elements between stored rows of A (default: its stored row length). */
  lda?: number;
  /** Elements between stored rows of B (default: its stored row length). */
  ldb?: number;
  /** Elements between batches of A (default `M·K`; 0 broadcasts one A to every batch). */
  batchStrideA?: number;
  /** Elements between batches of B (default `K·N`; 0 broadcasts). */
  batchStrideB?: number;
  /** Element offset of A's first element in its buffer. */
  offsetA?: number;
  /** Element offset of B's first element in its buffer. */
  offsetB?: number;
  /** Generate A in its loads (no `lhs` binding); the layout options index the generated tensor. */
  randomA?: RandomOperand;
  /** Generate B in its loads (no `rhs` binding). */
  randomB?: RandomOperand;
  /** Tile configuration; missing fields come from {@linkcode MATMUL_TILES_GPU}. */
  tiles?: Partial<MatmulTiles>;
  /** Applied in order to each accumulator before it is stored. */
  epilogue?: MatmulEpilogue | readonly MatmulEpilogue[];
  /** The graph node(s) computed, for error messages. */
  label?: string;
}
