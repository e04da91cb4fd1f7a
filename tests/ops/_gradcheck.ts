// Finite-difference gradient checking against the CPU interpreter (float64).
//
// `checkGradients(fn, specs, options)` traces `fn`, projects its (tensor)
// output onto a fixed random direction `r` to get the scalar `sum(out * r)`,
// differentiates that with `grad` (wrt every f32 input and every trainable
// param), evaluates the analytic gradient in float64 and compares it with
// central differences of the same scalar.

import { mulberry32 } from "../../data/random.ts";
import assert from "node:assert/strict";
import { grad } from "../../compiler/autodiff.ts";
import { type Graph, graphNodes, sizeOf } from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import { constant, type InputSpec, type Tensor, trace } from "../../compiler/trace.ts";
import { evaluate, type TensorData } from "../../backends/cpu/interpreter.ts";

/** A small seeded PRNG (mulberry32): deterministic inputs, shapes and projections. */
export class Rng {
  #next: () => number;

  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.#next();
  }

  /** Uniform in [lo, hi). */
  uniform(lo = -1, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** An integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** A random shape of `rank` axes, each in [lo, hi]. */
  shape(rank: number, lo = 1, hi = 4): number[] {
    return Array.from({ length: rank }, () => this.int(lo, hi));
  }

  /** A random permutation of [0, n). */
  perm(n: number): number[] {
    const p = [...Array(n).keys()];
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i);
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }

  /** `n` values drawn by `sample`. */
  array(n: number, sample: (rng: Rng) => number = (r) => r.uniform()): number[] {
    return Array.from({ length: n }, () => sample(this));
  }
}

/** Samplers that keep inputs away from kinks and outside functions' domains. */
export const samplers = {
  /** Uniform in [-1, 1). */
  any: (rng: Rng): number => rng.uniform(-1, 1),
  /** Uniform in [0.5, 2): for log, sqrt, rsqrt, pow bases and divisors. */
  positive: (rng: Rng): number => rng.uniform(0.5, 2),
  /** |x| in [0.2, 1) with a random sign: for relu, abs and other kinks at 0. */
  awayFromZero: (rng: Rng): number => (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.2, 1),
  /** Uniform in [-3, 3): wider range for smooth functions. */
  wide: (rng: Rng): number => rng.uniform(-3, 3),
} as const;

/** Options of {@link checkGradients}. */
export interface GradCheckOptions {
  /** Seed of the PRNG that draws inputs, params and the projection (default 1). */
  readonly seed?: number;
  /** Central-difference step (default 1e-6). */
  readonly eps?: number;
  /** Largest allowed `|analytic - numeric| / max(1, |numeric|)` (default 1e-6). */
  readonly tol?: number;
  /** Fixed values for inputs (any dtype) and params; everything else is drawn. */
  readonly values?: Readonly<Record<string, ArrayLike<number>>>;
  /** Fixed values for params (merged into `values`). */
  readonly params?: Readonly<Record<string, ArrayLike<number>>>;
  /** How to draw f32 values not given in `values` (default uniform [-1, 1)); per name or for all. */
  readonly sample?:
    | ((rng: Rng) => number)
    | Readonly<Record<string, (rng: Rng) => number>>;
  /** f32 inputs to differentiate (default: every f32 input). */
  readonly wrtInputs?: readonly string[];
}

/** What {@link checkGradients} measured. */
export interface GradCheckReport {
  /** The traced function, with its output projected to the scalar `loss`. */
  readonly graph: Graph;
  /** The gradient graph that was checked. */
  readonly gradGraph: Graph;
  /** Largest error over every checked element. */
  readonly maxError: number;
  /** Largest |numeric gradient| seen (to spot vacuous checks). */
  readonly maxMagnitude: number;
  /** The analytic gradients, by leaf name. */
  readonly grads: Readonly<Record<string, Float64Array>>;
  /** The values fed, by leaf name. */
  readonly feeds: Readonly<Record<string, Float64Array | ArrayLike<number>>>;
}

function pickSampler(
  sample: GradCheckOptions["sample"],
  name: string,
): (rng: Rng) => number {
  if (sample === undefined) return samplers.any;
  if (typeof sample === "function") return sample;
  return sample[name] ?? samplers.any;
}

/**
 * Gradient-checks `fn` on `specs`: every f32 input (or those in `wrtInputs`)
 * and every trainable param it declares. Throws an assertion error naming
 * the leaf and element when an analytic gradient is off.
 */
export function checkGradients(
  fn: (...inputs: Tensor[]) => Tensor,
  specs: readonly InputSpec[],
  options: GradCheckOptions = {},
): GradCheckReport {
  const rng = new Rng(options.seed ?? 1);
  let projection: number[] = [];
  const graph = trace((...xs: Tensor[]) => {
    const out = fn(...xs);
    assert.equal(out.dtype, "f32", "checkGradients: fn must return an f32 tensor");
    projection = rng.array(out.size, samplers.any);
    return { loss: out.mul(constant(projection, out.shape)).sum() };
  }, specs);
  const inputs = options.wrtInputs ?? specs.filter((s) => (s.dtype ?? "f32") === "f32")
    .map((s) => s.name);
  const gradGraph = validate(grad(graph, { inputs }));

  const values = { ...options.params, ...options.values };
  const inputFeeds: Record<string, ArrayLike<number>> = {};
  for (const node of graph.inputs) {
    const name = node.name!;
    if (values[name] !== undefined) inputFeeds[name] = values[name];
    else if (node.dtype === "f32") {
      inputFeeds[name] = Float64Array.from(
        rng.array(sizeOf(node.shape), pickSampler(options.sample, name)),
      );
    } else {
      throw new Error(`checkGradients: give a value for the ${node.dtype} input "${name}"`);
    }
  }
  const paramFeeds: Record<string, ArrayLike<number>> = {};
  for (const node of graph.params) {
    const name = node.name!;
    paramFeeds[name] = values[name] ?? Float64Array.from(
      rng.array(sizeOf(node.shape), pickSampler(options.sample, name)),
    );
  }
  const leaves = [
    ...inputs.map((name) => ({ name, kind: "input" as const })),
    ...graph.params.filter((p) => p.attrs.role === "trainable").map((p) => ({
      name: p.name!,
      kind: "param" as const,
    })),
  ];
  const result = checkGraphGradients(graph, gradGraph, inputFeeds, paramFeeds, leaves, {
    eps: options.eps,
    tol: options.tol,
  });
  return {
    graph,
    gradGraph,
    ...result,
    feeds: { ...inputFeeds, ...paramFeeds },
  };
}

/** One leaf to check: an input or a param, and optionally which of its elements. */
export interface Leaf {
  readonly name: string;
  readonly kind: "input" | "param";
  /** Element indices to check (default all). */
  readonly elements?: readonly number[];
}

/**
 * Compares `gradGraph`'s `grad:<leaf>` outputs with central differences of
 * `graph`'s `of` output (default `loss`), all in float64.
 */
export function checkGraphGradients(
  graph: Graph,
  gradGraph: Graph,
  inputFeeds: Record<string, ArrayLike<number>>,
  paramFeeds: Record<string, ArrayLike<number>>,
  leaves: readonly Leaf[],
  options: { eps?: number; tol?: number; of?: string } = {},
): {
  maxError: number;
  maxMagnitude: number;
  grads: Record<string, Float64Array>;
} {
  const eps = options.eps ?? 1e-6;
  const tol = options.tol ?? 1e-6;
  const of = options.of ?? "loss";
  const analytic = evaluate(gradGraph, {
    inputs: inputFeeds as Record<string, TensorData>,
    params: paramFeeds as Record<string, TensorData>,
  });
  const lossAt = (kind: "input" | "param", name: string, data: Float64Array): number => {
    const ins = kind === "input" ? { ...inputFeeds, [name]: data } : inputFeeds;
    const ps = kind === "param" ? { ...paramFeeds, [name]: data } : paramFeeds;
    const out = evaluate(graph, {
      inputs: ins as Record<string, TensorData>,
      params: ps as Record<string, TensorData>,
    })[of];
    assert.equal(out.data.length, 1, `output ${of} must be a scalar`);
    return out.data[0];
  };
  let maxError = 0;
  let maxMagnitude = 0;
  const grads: Record<string, Float64Array> = {};
  for (const leaf of leaves) {
    const g = analytic[`grad:${leaf.name}`];
    assert.ok(g !== undefined, `no output grad:${leaf.name} in the gradient graph`);
    grads[leaf.name] = g.data as Float64Array;
    const base = Float64Array.from(
      (leaf.kind === "input" ? inputFeeds : paramFeeds)[leaf.name],
    );
    assert.equal(g.data.length, base.length, `grad:${leaf.name} has the wrong size`);
    const elements = leaf.elements ?? [...base.keys()];
    for (const i of elements) {
      const x = base.slice();
      x[i] = base[i] + eps;
      const plus = lossAt(leaf.kind, leaf.name, x);
      x[i] = base[i] - eps;
      const minus = lossAt(leaf.kind, leaf.name, x);
      const numeric = (plus - minus) / (2 * eps);
      const a = g.data[i];
      const err = Math.abs(a - numeric) / Math.max(1, Math.abs(numeric));
      maxMagnitude = Math.max(maxMagnitude, Math.abs(numeric));
      if (!(err <= tol)) {
        assert.fail(
          `gradient of ${leaf.kind} "${leaf.name}" element ${i}: analytic ${a}, ` +
            `numeric ${numeric} (error ${err.toExponential(2)} > ${tol})`,
        );
      }
      maxError = Math.max(maxError, err);
    }
  }
  return { maxError, maxMagnitude, grads };
}

/** The set of op names in a graph. */
export function opsOf(graph: Graph): Set<string> {
  return new Set(graphNodes(graph).map((n) => n.op));
}
