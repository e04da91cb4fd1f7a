/**
 * A fast-check generator of random, well-typed graphs over small shapes, with
 * matching feeds, for property tests of the passes.
 *
 * A case is built from a shrinkable recipe: a few leaves (f32 inputs, and
 * params of either role) of rank ≤ 3 and dims 1..4, then a list of steps.
 * Each step picks an op family and operands from the pool of tensors built so
 * far (by index, modulo the pool size) and appends the result. Every op is
 * applied only where its shapes allow, with a fallback that always fits, so
 * every recipe traces. The families are chosen to exercise the rules of
 * simplify and the cleanup passes: identities (x·1, 1·x, x+0, x−0, x/1, −−x),
 * permute and reshape chains, broadcasts of fills, foldable constant
 * subgraphs, casts, plus the ordinary math around them.
 *
 * @module
 */
import fc from "fast-check";
import { type Graph, makeNode, sizeOf } from "../../compiler/ir.ts";
import { print } from "../../compiler/print.ts";
import {
  concat,
  constant,
  param,
  Tensor,
  type TensorLike,
  trace,
  where,
} from "../../compiler/trace.ts";
import type { Feeds } from "../../backends/cpu/interpreter.ts";
import * as ops from "../../ops/mod.ts";

/** One leaf of a recipe: an f32 input, or a param of either role. */
export interface LeafRecipe {
  /** Static shape, rank ≤ 3, dims 1..4. */
  readonly shape: readonly number[];
  /** A param instead of an input (ignored for the first leaf, always an input). */
  readonly param: boolean;
  /** When a param: frozen rather than trainable. */
  readonly frozen: boolean;
}

/** One step: an op family and the numbers it draws its operands and attributes from. */
export interface StepRecipe {
  /** Which op family (modulo the number of families). */
  readonly op: number;
  /** First operand: one of the three latest tensors of the pool. */
  readonly a: number;
  /** Second operand. */
  readonly b: number;
  /** Free choice: axes, perms, variants. */
  readonly k: number;
  /** Another free choice. */
  readonly m: number;
}

/** Everything a random graph is built from. */
export interface GraphRecipe {
  /** Leaves, first one always an input. */
  readonly leaves: readonly LeafRecipe[];
  /** Steps, applied in order. */
  readonly steps: readonly StepRecipe[];
  /** Extra outputs (indices into the pool); the last tensor built is always an output. */
  readonly extraOutputs: readonly number[];
  /** With no extra outputs: return a single tensor (named `out`) rather than a record. */
  readonly single: boolean;
}

/** A generated graph with values for all its leaves. */
export interface GraphCase {
  /** The recipe it was built from (what fast-check shrinks). */
  readonly recipe: GraphRecipe;
  /** The traced graph. */
  readonly graph: Graph;
  /** Values for every input and param (f32-representable, no -0). */
  readonly feeds: Feeds;
}

/** Largest element count a generated intermediate may have. */
const MAX_SIZE = 256;
/** Largest rank a generated intermediate may have. */
const MAX_RANK = 4;
/** Largest leaf: rank 3, dims ≤ 4. */
const MAX_LEAF_SIZE = 64;

/** A small deterministic permutation of `rank` axes drawn from `seed`. */
export function permFrom(rank: number, seed: number): number[] {
  const perm = [...Array(rank).keys()];
  let s = seed >>> 0;
  for (let i = rank - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = (s >>> 8) % (i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return perm;
}

/** The axes whose bit is set in `mask`. */
export function axesFrom(rank: number, mask: number): number[] {
  return [...Array(rank).keys()].filter((i) => (mask >> i) & 1);
}

/** Whether shapes `a` and `b` broadcast against each other. */
export function broadcastable(a: readonly number[], b: readonly number[]): boolean {
  const rank = Math.max(a.length, b.length);
  for (let i = 1; i <= rank; i++) {
    const da = a[a.length - i] ?? 1;
    const db = b[b.length - i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return false;
  }
  return true;
}

/** Shapes of the same size as `shape`, for reshape chains (`-1` included). */
function reshapeTargets(shape: readonly number[]): number[][] {
  const size = sizeOf(shape);
  const out: number[][] = [[size], [-1], [...shape], [1, ...shape], [...shape, 1]];
  for (let f = 2; f <= size; f++) {
    if (size % f === 0) out.push([f, size / f], [f, -1], [-1, f]);
  }
  if (size % 4 === 0 && size >= 8) out.push([2, 2, size / 4]);
  return out.filter((s) => s.length <= MAX_RANK);
}

/** Applies one op family; returns undefined when the result would be too big. */
type Family = (a: Tensor, b: Tensor, k: number, m: number) => Tensor;

const atLeast1D = (t: Tensor): Tensor => (t.rank === 0 ? t.reshape([1]) : t);
/** `t` with at least two axes (a vector becomes one row). */
export const atLeast2D = (t: Tensor): Tensor => (t.rank >= 2 ? t : t.reshape([1, -1]));
/** A denominator or log argument that is never near zero (and never -0). */
export const positive = (t: Tensor): Tensor => t.abs().add(1);

/** A binary op on `a` and something broadcast-compatible with it (`b` if it fits). */
function partner(a: Tensor, b: Tensor, mask: number): Tensor {
  return broadcastable(a.shape, b.shape) ? b : a.sum(axesFrom(a.rank, mask), true);
}

const UNARY: ((x: Tensor) => Tensor)[] = [
  (x) => x.neg(),
  (x) => x.minimum(4).exp(),
  (x) => positive(x).log(),
  (x) => x.abs().sqrt(),
  (x) => positive(x).rsqrt(),
  (x) => x.tanh(),
  (x) => x.relu(),
  (x) => x.gelu(),
  (x) => x.abs(),
  (x) => x.sigmoid(),
  (x) => x.square(),
  (x) => x.pow(2),
];

const BINARY: ((x: Tensor, y: Tensor) => Tensor)[] = [
  (x, y) => x.add(y),
  (x, y) => x.sub(y),
  (x, y) => x.mul(y),
  (x, y) => x.div(positive(y)),
  (x, y) => x.maximum(y),
  (x, y) => x.minimum(y),
];

/** Identities that simplify must remove. */
const IDENTITY: ((x: Tensor) => Tensor)[] = [
  (x) => x.mul(1),
  (x) => constant(1).mul(x),
  (x) => x.add(0),
  (x) => constant(0).add(x),
  (x) => x.sub(0),
  (x) => x.div(1),
  (x) => x.neg().neg(),
  (x) => x.mul(constant(1, x.shape)),
  (x) => x.sum([]),
  (x) => x.max([]),
  (x) => new Tensor(makeNode(ops.cast, [x.node], { dtype: x.dtype })),
  (x) => new Tensor(makeNode(ops.broadcast, [x.node], { shape: [...x.shape] })),
  (x) => x.slice(x.shape.map(() => 0), x.shape),
  (x) => x.pad(x.shape.map(() => 0), x.shape.map(() => 0)),
];

/** Constant subgraphs that fold, combined with x. */
const CONSTANTS: ((x: Tensor, k: number) => Tensor)[] = [
  (x) => x.mul(constant(2).add(3)),
  (x) => x.add(constant(2).mul(3).sub(6)),
  (x) => x.sub(constant(1.5, x.shape).add(constant(0.5))),
  (x) => x.mul(constant(2).broadcastTo(x.shape)),
  (x) => x.add(constant(0.5).reshape([1]).broadcastTo([...x.shape, 1]).reshape(x.shape)),
  (x, k) => {
    const n = x.rank === 0 ? 1 : x.shape[x.rank - 1];
    const data = Array.from({ length: n }, (_, i) => ((k + i) % 5) - 2);
    return x.mul(constant(data, x.rank === 0 ? [] : [n]));
  },
  (x) => x.add(constant(3).sub(constant(1)).div(2).neg().neg()),
  (x) => where(constant(1).gt(0), x, constant(0).broadcastTo(x.shape)),
];

const FAMILIES: Family[] = [
  // Elementwise unary.
  (a, _b, k) => UNARY[k % UNARY.length](a),
  // Elementwise binary, broadcasting (the two operands may come from different leaves).
  (a, b, k, m) => BINARY[k % BINARY.length](a, partner(a, b, m)),
  (a, b, k, m) => BINARY[k % BINARY.length](partner(a, b, m), a),
  // Identities.
  (a, _b, k) => IDENTITY[k % IDENTITY.length](a),
  (a, _b, k) => IDENTITY[k % IDENTITY.length](IDENTITY[(k >> 4) % IDENTITY.length](a)),
  // Transposes and permutes, including double ones.
  (a) => a.T.T,
  (a, _b, k) => a.permute(permFrom(a.rank, k)),
  (a, _b, k, m) => a.permute(permFrom(a.rank, k)).permute(permFrom(a.rank, m)),
  (a, _b, k) => {
    const p = permFrom(a.rank, k);
    return a.permute(p).permute(p.map((_, i) => p.indexOf(i)));
  },
  (a, _b, k, m) => (a.rank < 2 ? a.T : a.transpose(k % a.rank, m % a.rank)),
  // Reshape chains.
  (a, _b, k, m) => {
    const targets = reshapeTargets(a.shape);
    return a.reshape(targets[k % targets.length]).reshape(targets[m % targets.length]);
  },
  (a, _b, k) => {
    const targets = reshapeTargets(a.shape);
    return a.reshape([-1]).reshape(targets[k % targets.length]);
  },
  (a) => a.reshape(a.shape),
  // Broadcasts.
  (a, _b, k) => a.broadcastTo([(k % 3) + 1, ...a.shape]),
  (a, _b, k, m) => a.sum(axesFrom(a.rank, m), true).broadcastTo(a.shape).mul(k % 2 === 0 ? 1 : a),
  // Reductions over random axes, with and without keepdims.
  (a, _b, k, m) => a.sum(axesFrom(a.rank, m), k % 2 === 0),
  (a, _b, k, m) => a.max(axesFrom(a.rank, m), k % 2 === 0),
  (a, _b, k, m) => a.mean(axesFrom(a.rank, m), k % 2 === 0),
  (a) => a.sum(),
  // Slice and pad.
  (a, _b, k, m) => {
    const starts = a.shape.map((d, i) => ((k >> (2 * i)) & 3) % d);
    const ends = a.shape.map((d, i) => starts[i] + 1 + (((m >> (2 * i)) & 3) % (d - starts[i])));
    return a.slice(starts, ends);
  },
  (a, _b, k, m) => a.pad(a.shape.map((_, i) => (k >> i) & 1), a.shape.map((_, i) => (m >> i) & 1)),
  (a, _b, k, m) => {
    const x = atLeast1D(a);
    const axis = k % x.rank;
    return x.narrow(axis, 0, 1 + (m % x.shape[axis]));
  },
  // Concat along a random axis.
  (a, b, k, m) => {
    const x = atLeast1D(a);
    const axis = k % x.rank;
    const fits = b.rank === x.rank && b.shape.every((d, i) => i === axis || d === x.shape[i]);
    const other = fits ? b : x.narrow(axis, 0, 1 + (m % x.shape[axis])).neg();
    return concat(m % 2 === 0 ? [x, other] : [other, x, other], axis - (m % 3 === 0 ? x.rank : 0));
  },
  // Matmul: 2-D, batched with broadcasting, n-D × 2-D, or x·xᵀ when nothing else fits.
  (a, b, k) => {
    const x = atLeast2D(a);
    const y = atLeast2D(b);
    const inner = x.shape[x.rank - 1] === y.shape[y.rank - 2];
    const batches = y.rank === 2 || broadcastable(x.shape.slice(0, -2), y.shape.slice(0, -2));
    if (inner && batches) return x.matmul(y);
    if (k % 3 === 0 && x.rank > 2) return x.matmul(x.sum([...Array(x.rank - 2).keys()]).T);
    return k % 2 === 0 ? x.matmul(x.T) : x.T.matmul(x);
  },
  // Softmax and friends over a random axis.
  (a, _b, k) => {
    const x = atLeast1D(a);
    return k % 2 === 0 ? x.softmax(k % x.rank) : x.logSoftmax(-1 - (k % x.rank));
  },
  (a) => atLeast1D(a).normalize(),
  // Where with comparisons.
  (a, b, k, m) => {
    const y = partner(a, b, m);
    const cond = [a.gt(y), a.lt(y), a.ge(0), a.le(y), a.eq(y), a.ne(0)][k % 6];
    const pick: TensorLike = k % 4 === 0 ? 0 : y;
    return where(cond, a, pick);
  },
  // Cast round trips.
  (a, _b, k) => {
    switch (k % 4) {
      case 0:
        return a.mul(3).cast("i32").cast("f32");
      case 1:
        return a.gt(0).cast("f32").add(a);
      case 2:
        return a.mul(4).cast("i32").add(1).mul(2).cast("f32");
      default:
        return a.cast("bool").cast("f32").mul(a);
    }
  },
  // Constant subgraphs that fold.
  (a, _b, k) => CONSTANTS[k % CONSTANTS.length](a, k),
];

/** Builds the graph of a recipe. Deterministic: the same recipe gives the same nodes. */
export function buildGraph(recipe: GraphRecipe): Graph {
  const specs = recipe.leaves.flatMap((leaf, i) =>
    i === 0 || !leaf.param ? [{ name: `x${i}`, shape: leaf.shape }] : []
  );
  return trace((...inputs) => {
    let next = 0;
    const pool: Tensor[] = recipe.leaves.map((leaf, i) =>
      i === 0 || !leaf.param
        ? inputs[next++]
        : param(`layers.${i}.weight`, leaf.shape, { role: leaf.frozen ? "frozen" : "trainable" })
    );
    for (const step of recipe.steps) {
      // The first operand is one of the latest results, so steps build chains.
      const a = pool[pool.length - 1 - (step.a % Math.min(3, pool.length))];
      const b = pool[step.b % pool.length];
      const result = FAMILIES[step.op % FAMILIES.length](a, b, step.k, step.m);
      if (result.size <= MAX_SIZE && result.rank <= MAX_RANK) pool.push(result);
    }
    const last = pool[pool.length - 1];
    if (recipe.extraOutputs.length === 0 && recipe.single) return last;
    const outputs: Record<string, Tensor> = { y: last };
    recipe.extraOutputs.forEach((j, i) => (outputs[`y${i}`] = pool[j % pool.length]));
    return outputs;
  }, specs);
}

const leafArb: fc.Arbitrary<LeafRecipe> = fc.record({
  shape: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }),
  param: fc.boolean(),
  frozen: fc.boolean(),
});

const stepArb: fc.Arbitrary<StepRecipe> = fc.record({
  op: fc.nat(),
  a: fc.nat(),
  b: fc.nat(),
  k: fc.nat(),
  m: fc.nat(),
});

/** Recipes: 1–3 leaves, 2–24 steps, 0–2 extra outputs. */
export const recipeArb: fc.Arbitrary<GraphRecipe> = fc.record({
  leaves: fc.array(leafArb, { minLength: 1, maxLength: 3 }),
  steps: fc.array(stepArb, { minLength: 2, maxLength: 24, size: "medium" }),
  extraOutputs: fc.array(fc.nat(), { maxLength: 2 }),
  single: fc.boolean(),
});

/** f32-representable values in [-2, 2], without -0 (so x+0 → x is exact). */
const valueArb = fc.float({ min: -2, max: 2, noNaN: true }).map((v) => v + 0);

/** One value list per leaf, long enough for any leaf. */
const dataArb = fc.array(
  fc.array(valueArb, { minLength: MAX_LEAF_SIZE, maxLength: MAX_LEAF_SIZE }),
  {
    minLength: 3,
    maxLength: 3,
  },
);

/** Feeds for every input and param of `graph`, from per-leaf value lists. */
export function feedsFor(graph: Graph, data: readonly (readonly number[])[]): Feeds {
  const leaves = [...graph.inputs, ...graph.params];
  const slot = (name: string) => Number(/(\d+)/.exec(name)![1]) % data.length;
  const values = (name: string, shape: readonly number[]) =>
    Float64Array.from(data[slot(name)].slice(0, sizeOf(shape)));
  return {
    inputs: Object.fromEntries(graph.inputs.map((n) => [n.name!, values(n.name!, n.shape)])),
    params: Object.fromEntries(
      leaves.filter((n) => n.op === "param").map((n) => [n.name!, values(n.name!, n.shape)]),
    ),
  };
}

/** Random graphs with feeds; a failing case prints as its recipe and graph listing. */
export const graphCaseArb: fc.Arbitrary<GraphCase> = fc.tuple(recipeArb, dataArb).map(
  ([recipe, data]) => {
    const graph = buildGraph(recipe);
    return {
      recipe,
      graph,
      feeds: feedsFor(graph, data),
      [fc.toStringMethod]: () => `${JSON.stringify(recipe)}\n${print(graph)}`,
    };
  },
);
