/**
 * Random graphs for the GPU property tests: the ops whose kernels fusion and
 * lowering build (matmuls plain, transposed, batched and over attention-like
 * head views; reductions; softmax, layerNorm, cross-entropy; gather; shape
 * views; broadcasting elementwise chains and wide regions that force kernel
 * splits) over shapes that are not multiples of any tile or workgroup size
 * (dims 1, 3, 5, 17, 33, 65).
 *
 * Unlike `_random_graph.ts`, whose tiny shapes and identity-heavy families
 * target the graph passes, a case here is meant to be compiled: few steps
 * (each kernel costs a shader compile on a software adapter), bigger shapes,
 * only ops continuous in their inputs (no casts or comparisons, whose f32
 * rounding could flip a result against the float64 reference; autodiff adds
 * the comparisons of max and relu backward), and leaf
 * values on a 1/32 grid, so that sums and products of leaves are exact in
 * f32 too and ties (max, relu) fall the same way on both sides. Steps may
 * create params (matmul weights, layerNorm affines), which the gradient
 * property differentiates.
 *
 * @module
 */
import fc from "fast-check";
import { type Graph, sizeOf } from "../../compiler/ir.ts";
import { print } from "../../compiler/print.ts";
import { concat, constant, param, type Tensor, trace } from "../../compiler/trace.ts";
import { layerNorm } from "../../nn/layers.ts";
import type { Feeds } from "../../backends/cpu/interpreter.ts";
import { permFrom, type StepRecipe } from "./_random_graph.ts";
import { atLeast2D, axesFrom, broadcastable, positive } from "./_random_graph.ts";

/** Dims that are not multiples of a tile (4, 8, 16, 32, 64) nor of a workgroup. */
export const ODD_DIMS = [1, 3, 5, 17, 33, 65] as const;

/** What a case is built from; fast-check shrinks it. */
export interface GpuRecipe {
  /** Shapes of the f32 inputs `x0`, `x1`, …. */
  readonly inputs: readonly (readonly number[])[];
  /** Steps, applied in order (see {@link StepRecipe}). */
  readonly steps: readonly StepRecipe[];
  /** Seeds the leaf values. */
  readonly valueSeed: number;
}

/** A generated graph with values for its inputs and params. */
export interface GpuCase {
  /** The recipe it was built from. */
  readonly recipe: GpuRecipe;
  /** The traced graph: outputs `y` (the last result) and `z` (an earlier one). */
  readonly graph: Graph;
  /** Values for every input and param. */
  readonly feeds: Feeds;
}

/** Largest element count of a leaf or an intermediate (keeps llvmpipe runs short). */
const MAX_SIZE = 4500;
const MAX_RANK = 4;

const pick = <T>(list: readonly T[], n: number): T => list[n % list.length];

/** `from` broadcasts to exactly `to`. */
const broadcastsTo = (from: readonly number[], to: readonly number[]): boolean =>
  from.length <= to.length &&
  from.every((d, i) => d === 1 || d === to[to.length - from.length + i]);

/** `b` if it broadcasts against `a`, else a reduction of `a` that does (a row or column). */
function partner(a: Tensor, b: Tensor, mask: number): Tensor {
  return broadcastable(a.shape, b.shape) ? b : a.sum(axesFrom(a.rank, mask), true).tanh();
}

const UNARY: ((x: Tensor) => Tensor)[] = [
  (x) => x.neg(),
  (x) => x.minimum(4).exp(),
  (x) => positive(x).log(),
  (x) => positive(x).sqrt(),
  (x) => positive(x).rsqrt(),
  (x) => x.tanh(),
  (x) => x.relu(),
  (x) => x.gelu(),
  (x) => x.sigmoid(),
  (x) => x.square(),
];

const BINARY: ((x: Tensor, y: Tensor) => Tensor)[] = [
  (x, y) => x.add(y),
  (x, y) => x.sub(y),
  (x, y) => x.mul(y),
  (x, y) => x.div(positive(y)),
  (x, y) => x.maximum(y),
];

/** Shapes with the same element count, for reshapes that split or merge axes. */
function reshapeTargets(shape: readonly number[]): number[][] {
  const size = sizeOf(shape);
  const out: number[][] = [[size], [1, ...shape], [...shape, 1]];
  for (const f of ODD_DIMS) if (f > 1 && size % f === 0 && f < size) out.push([f, -1], [-1, f]);
  return out.filter((s) => s.length <= MAX_RANK);
}

/**
 * One op family: a step's operands `a` (recent) and `b` (any), two free
 * choices, the step index and every tensor built so far.
 */
type Family = (
  a: Tensor,
  b: Tensor,
  k: number,
  m: number,
  step: number,
  pool: readonly Tensor[],
) => Tensor;

const FAMILIES: Family[] = [
  // Broadcasting elementwise chains.
  (a, _b, k) => pick(UNARY, k)(a),
  (a, b, k, m) => pick(BINARY, k)(a, partner(a, b, m)),
  (a, b, k, m) => pick(UNARY, m)(pick(BINARY, k)(partner(a, b, m), a)),
  (a, _b, k, m) => a.mul(a.sum(axesFrom(a.rank, m), true).broadcastTo(a.shape).tanh()).add(k % 3),
  // A wide region: every earlier tensor that broadcasts to `a` (many buffers to bind).
  (a, _b, k, _m, _step, pool) =>
    pool.filter((t) => t !== a && broadcastsTo(t.shape, a.shape)).reduce(
      (acc, t, i) => pick(BINARY, k + i)(acc, t).tanh(),
      a,
    ),
  // A region reading `a` and the means of up to four earlier tensors (each its own kernel).
  (a, _b, k, _m, _step, pool) =>
    pool.slice(-4).reduce((acc, t, i) => pick(BINARY, k + i)(acc, t.mean().tanh()), a),
  // Matmuls: against a fresh weight (plain or transposed), batched, xᵀx / xxᵀ.
  (a, _b, k, _m, step) => {
    const x = atLeast2D(a);
    const n = pick(ODD_DIMS, k);
    const kk = x.shape[x.rank - 1];
    return k % 2 === 0
      ? x.matmul(param(`w${step}`, [kk, n]))
      : x.matmul(param(`w${step}`, [n, kk]).T);
  },
  (a, b, k) => {
    const [x, y] = [atLeast2D(a), atLeast2D(b)];
    const batches = broadcastable(x.shape.slice(0, -2), y.shape.slice(0, -2));
    const last = (t: Tensor, i: number) => t.shape[t.rank - i];
    if (batches && last(x, 1) === last(y, 2)) return x.matmul(y);
    if (batches && last(x, 1) === last(y, 1)) return x.matmul(y.transpose(-1, -2));
    if (batches && last(x, 2) === last(y, 2)) return x.transpose(-1, -2).matmul(y);
    return k % 2 === 0 ? x.matmul(x.transpose(-1, -2)) : x.transpose(-1, -2).matmul(x);
  },
  (a, _b, k) => {
    // Batched: a [B, M, K] against a broadcast weight [K, N] or a per-batch one.
    const x = atLeast2D(a).reshape([-1, ...atLeast2D(a).shape.slice(-2)]);
    const [batch, rows, inner] = x.shape;
    const w = x.transpose(1, 2).mul(0.5).slice([0, 0, 0], [batch, inner, Math.min(rows, 5)]);
    return k % 2 === 0 ? x.matmul(w) : w.transpose(1, 2).matmul(x.transpose(1, 2));
  },
  // Reductions over random axes, with and without keepdims.
  (a, _b, k, m) => a.sum(axesFrom(a.rank, m), k % 2 === 0),
  (a, _b, k, m) => a.max(axesFrom(a.rank, m), k % 2 === 0),
  (a, _b, k, m) => a.mean(axesFrom(a.rank, m), k % 2 === 0),
  // Row-wise: softmax, logSoftmax over any axis; layerNorm with its affine params.
  (a, _b, k) => (k % 2 === 0 ? a.softmax(k % a.rank) : a.logSoftmax(-1 - (k % a.rank))),
  (a, _b, k, _m, step) => (k % 2 === 0 ? a.normalize() : layerNorm(a, `ln${step}`)),
  // Per-row cross-entropy against constant labels (a negative label costs 0).
  (a, _b, k) => {
    const logits = atLeast2D(a);
    const [rows, classes] = [sizeOf(logits.shape.slice(0, -1)), logits.shape[logits.rank - 1]];
    const labels = Array.from({ length: rows }, (_, i) => ((k + 3 * i) % (classes + 1)) - 1);
    return logits.crossEntropy(constant(labels, logits.shape.slice(0, -1), "i32"));
  },
  // Attention-like: split the last axis into heads, scores q·kᵀ over the head views.
  (a, _b, k) => {
    const x = atLeast2D(a);
    const [t, d] = x.shape.slice(-2);
    const heads = d % 5 === 0 ? 5 : d % 3 === 0 ? 3 : 1;
    const split = (y: Tensor) => y.reshape([-1, t, heads, d / heads]).permute([0, 2, 1, 3]);
    const q = split(x);
    const scores = q.matmul(split(x.tanh()).transpose(-1, -2)).mul(0.5).softmax(-1);
    const out = scores.matmul(split(k % 2 === 0 ? x : x.neg()));
    return out.permute([0, 2, 1, 3]).reshape(x.shape);
  },
  // Gather rows of a table (a, viewed as [V, rest]) by constant indices, repeats included.
  (a, _b, k, m) => {
    const table = a.rank >= 2 ? a : a.reshape([a.shape[0], 1]);
    const rows = table.shape[0];
    const count = pick([1, 3, 5, 17], m);
    const idx = Array.from({ length: count }, (_, i) => (k + 7 * i * i + 3 * i) % rows);
    return table.gather(constant(idx, [count], "i32"));
  },
  // Shape ops.
  (a, _b, k, m) => {
    const targets = reshapeTargets(a.shape);
    return a.reshape(pick(targets, k)).tanh().reshape(pick(targets, m));
  },
  (a, _b, k) => a.permute(permFrom(a.rank, k)).mul(2),
  (a, _b, k, m) => {
    const starts = a.shape.map((d, i) => ((k >> (3 * i)) & 7) % d);
    const ends = a.shape.map((d, i) => starts[i] + 1 + (((m >> (3 * i)) & 7) % (d - starts[i])));
    return a.slice(starts, ends);
  },
  (a, _b, k, m) => a.pad(a.shape.map((_, i) => (k >> i) & 1), a.shape.map((_, i) => (m >> i) & 3)),
  (a, b, k, m) => {
    const axis = k % a.rank;
    const fits = b.rank === a.rank && b.shape.every((d, i) => i === axis || d === a.shape[i]);
    const other = fits ? b : a.narrow(axis, 0, 1 + (m % a.shape[axis])).neg();
    return concat(m % 2 === 0 ? [a, other] : [other.exp(), a, other], axis);
  },
  (a, _b, k) => a.broadcastTo([pick([3, 5], k), ...a.shape]).add(a),
];

/** Builds the graph of a recipe (deterministic): outputs `y`, the last result, and `z`. */
export function buildGpuGraph(recipe: GpuRecipe): Graph {
  return trace((...inputs) => applySteps(recipe, inputs), inputSpecs(recipe));
}

/**
 * The recipe's graph reduced to a scalar `loss`: each output weighed by a
 * fixed pattern (so no gradient is uniform) and summed.
 */
export function buildLossGraph(recipe: GpuRecipe): Graph {
  return trace((...inputs) => {
    const outs = Object.values(applySteps(recipe, inputs));
    const weighed = outs.map((t) => {
      const data = Array.from({ length: t.size }, (_, i) => ((i * 5) % 7) / 4 - 0.75);
      return t.mul(constant(data, t.shape)).sum();
    });
    return { loss: weighed.reduce((s, t) => s.add(t)) };
  }, inputSpecs(recipe));
}

const inputSpecs = (recipe: GpuRecipe) =>
  recipe.inputs.map((shape, i) => ({ name: `x${i}`, shape }));

/** The steps of a recipe on its input tensors (inside a trace). */
function applySteps(recipe: GpuRecipe, inputs: Tensor[]): Record<string, Tensor> {
  const pool: Tensor[] = [...inputs];
  recipe.steps.forEach((s, i) => {
    const a = pool[pool.length - 1 - (s.a % Math.min(2, pool.length))];
    const b = pool[s.b % pool.length];
    const result = FAMILIES[s.op % FAMILIES.length](a, b, s.k, s.m, i, pool);
    if (result.size <= MAX_SIZE && result.rank <= MAX_RANK && result.rank > 0) pool.push(result);
  });
  return { y: pool[pool.length - 1], z: pool[Math.max(0, pool.length - 3)] };
}

/**
 * Values on a 1/32 grid in [-31/32, 31/32], from a seed and the leaf's name.
 * Not ±1: tanh and sigmoid round to exactly ±1 in f32 but not in float64,
 * and a leaf equal to such a value would tie (in `maximum`, say) on one side only.
 */
function gridValues(seed: number, name: string, size: number): Float32Array {
  let s = seed >>> 0;
  for (const c of name) s = (Math.imul(s ^ c.charCodeAt(0), 16777619) + 1) >>> 0;
  return Float32Array.from({ length: size }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return ((s >>> 16) % 63) / 32 - 31 / 32;
  });
}

/** Feeds for every input and param of `graph`. */
export function gpuFeeds(graph: Graph, seed: number): Feeds {
  const values = (nodes: Graph["inputs"]) =>
    Object.fromEntries(nodes.map((n) => [n.name!, gridValues(seed, n.name!, sizeOf(n.shape))]));
  return { inputs: values(graph.inputs), params: values(graph.params) };
}

const shapeArb = fc
  .array(fc.constantFrom(...ODD_DIMS), { minLength: 1, maxLength: 3 })
  .filter((shape) => sizeOf(shape) <= MAX_SIZE);

const stepArb: fc.Arbitrary<StepRecipe> = fc.record({
  op: fc.nat(),
  a: fc.nat(),
  b: fc.nat(),
  k: fc.nat(),
  m: fc.nat(),
});

/** Recipes: 1–3 inputs, 1–`maxSteps` steps. */
export function gpuRecipeArb(maxSteps: number): fc.Arbitrary<GpuRecipe> {
  return fc.record({
    inputs: fc.array(shapeArb, { minLength: 1, maxLength: 3 }),
    steps: fc.array(stepArb, { minLength: 1, maxLength: maxSteps }),
    valueSeed: fc.nat(),
  });
}

/** Cases built by `build` from recipes; a failure prints the recipe and the graph. */
export function gpuCaseArb(
  maxSteps: number,
  build: (recipe: GpuRecipe) => Graph = buildGpuGraph,
): fc.Arbitrary<GpuCase> {
  return gpuRecipeArb(maxSteps).map((recipe) => {
    const graph = build(recipe);
    return {
      recipe,
      graph,
      feeds: gpuFeeds(graph, recipe.valueSeed),
      [fc.toStringMethod]: () => `${JSON.stringify(recipe)}\n${print(graph)}`,
    };
  });
}
