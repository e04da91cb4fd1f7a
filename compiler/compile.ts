/**
 * The compiler driver: a visible list of named, backend-neutral passes from a
 * Graph to a fusion plan. `compile` (backends/compile.ts) runs them with the
 * capabilities of the chosen backend and hands the result to that backend.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const g = trace((x) => x.exp().mul(2).sum(), [{ name: "x", shape: [4, 3] }]);
 * strictEqual(runPipeline(g).plan?.groups.length, 1);
 * ```
 *
 * @module
 */
import { type Graph, graphNodes } from "./ir.ts";
import { validate } from "./validate.ts";
import { describeNode, print } from "./print.ts";
import { constantFold, cse, dce } from "./passes/cleanup.ts";
import { fuse, type RandomProjections } from "./fusion/fuse.ts";
import type { FusionPlan } from "./fusion/plan.ts";
import { simplify } from "./passes/simplify.ts";
import { familyOf } from "./fusion/families.ts";

/**
 * What flows through the pipeline: the graph, then its fusion plan.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { type PassState, PASSES } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const start: PassState = { graph: trace((x) => x.exp(), [{ name: "x", shape: [2] }]) };
 * strictEqual(PASSES.fuse.run(start, {}).plan?.groups.length, 1);
 * ```
 */
export interface PassState {
  /** The graph (rewritten by the graph passes). */
  readonly graph: Graph;
  /** Set by `fuse`: which nodes get buffers, grouped into kernels. */
  readonly plan?: FusionPlan;
}

/**
 * What passes may need from the backend.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { type PassContext, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const context: PassContext = { maxBindings: 4 };
 * const g = trace((a, b, c, d) => a.add(b).add(c).add(d), ["a", "b", "c", "d"].map((name) => ({ name, shape: [3] })));
 * strictEqual(runPipeline(g, ["fuse"]).plan?.groups.length, 1);
 * strictEqual(runPipeline(g, ["fuse"], { context }).plan?.groups.length, 2); // 5 buffers do not fit in 4
 * ```
 */
export interface PassContext {
  /** The most buffers one kernel may bind (fusion splits wider regions). */
  readonly maxBindings?: number;
  /** Whether VeRA's projections get a buffer (`shared`) or are recomputed where read (`fused`). */
  readonly randomProjections?: RandomProjections;
}

/**
 * A named step of the pipeline.
 *
 * @example A pass of your own, run between the built-in ones
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { type Pass, PASSES, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const count: Pass = { name: "count", run: (state) => state };
 * const passes = { ...PASSES, count };
 * strictEqual(Object.keys(passes).includes("count"), true);
 * ```
 */
export interface Pass {
  /** The name pipelines list it by. */
  readonly name: string;
  /** Graph passes return a new graph; `fuse` adds the plan. */
  run(state: PassState, context: PassContext): PassState;
}

const graphPass = (name: string, f: (g: Graph) => Graph): Pass => ({
  name,
  run: (state) => ({ graph: f(state.graph) }),
});

/**
 * Every pass by name.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { PASSES } from "./compile.ts";
 * deepStrictEqual(Object.keys(PASSES), ["simplify", "constantFold", "cse", "dce", "fuse"]);
 * ```
 */
export const PASSES: Readonly<Record<string, Pass>> = Object.freeze({
  simplify: graphPass("simplify", simplify),
  constantFold: graphPass("constantFold", constantFold),
  cse: graphPass("cse", cse),
  dce: graphPass("dce", dce),
  fuse: {
    name: "fuse",
    run: (state, context) => {
      const { maxBindings, randomProjections } = context;
      const plan = fuse(state.graph, { maxBindings, randomProjections });
      return { graph: plan.graph, plan };
    },
  },
});

/**
 * The default pipeline, as data.
 *
 * @example Skip constant folding
 * ```ts
 * import { deepStrictEqual, ok } from "node:assert/strict";
 * import { DEFAULT_PIPELINE } from "./compile.ts";
 * import { compile } from "../backends/compile.ts";
 * import { trace } from "./trace.ts";
 * deepStrictEqual(DEFAULT_PIPELINE, ["simplify", "constantFold", "cse", "dce", "fuse"]);
 * const passes = DEFAULT_PIPELINE.filter((p) => p !== "constantFold");
 * const exe = await compile(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), { passes });
 * const out = await (await exe.run({ x: [0, 1] })).read("out");
 * ok(Math.abs(out[0] - 1) < 1e-6 && Math.abs(out[1] - Math.E) < 1e-5);
 * ```
 */
export const DEFAULT_PIPELINE: readonly string[] = Object.freeze([
  "simplify",
  "constantFold",
  "cse",
  "dce",
  "fuse",
]);

/**
 * Text for a debug dump of a pipeline state: the program, else the plan's
 * kernels, else the graph.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { dumpState, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const state = runPipeline(trace((x) => x.exp().sum(), [{ name: "x", shape: [4] }]), ["fuse"]);
 * strictEqual(dumpState(state).split("\n")[0], "fusion plan: 1 kernels");
 * ```
 */
export function dumpState(state: PassState): string {
  if (state.plan) {
    const groups = state.plan.groups.map((g, i) =>
      `${String(i).padStart(3)} ${g.kind}${g.direct ? " (direct)" : ""}${
        g.epilogue ? " + epilogue" : ""
      }: ` +
      g.roots.map(describeNode).join(", ")
    );
    return `fusion plan: ${state.plan.groups.length} kernels\n${groups.join("\n")}\n${
      print(state.graph)
    }`;
  }
  return print(state.graph);
}

/**
 * Options of {@link runPipeline}.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, match } from "node:assert/strict";
 * import { type RunPipelineOptions, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const dumps = new Map<string, string>();
 * const options: RunPipelineOptions = { debug: (pass, dump) => dumps.set(pass, dump) };
 * runPipeline(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), ["simplify", "fuse"], options);
 * deepStrictEqual([...dumps.keys()], ["simplify", "fuse"]);
 * match(dumps.get("fuse")!, /^fusion plan: 1 kernels/);
 * ```
 */
export interface RunPipelineOptions {
  /** What the backend tells the passes (tiles, binding limits, size checks). */
  readonly context?: PassContext;
  /** Receives each pass's name and the dump of the state after it. */
  readonly debug?: (pass: string, dump: string) => void;
}

/**
 * Runs named passes in order; `debug` receives the state's dump after each
 * (and every graph is validated when debugging).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const g = trace((x) => x.mul(1).exp(), [{ name: "x", shape: [2] }]);
 * const state = runPipeline(g, ["simplify", "fuse"]);
 * strictEqual(state.plan?.groups.length, 1);
 * ```
 */
export function runPipeline(
  graph: Graph,
  passes: readonly string[] = DEFAULT_PIPELINE,
  options: RunPipelineOptions = {},
): PassState {
  const { context = {}, debug } = options;
  let state: PassState = { graph };
  for (const name of passes) {
    const pass = PASSES[name];
    if (pass === undefined) {
      throw new Error(`unknown pass "${name}" (passes: ${Object.keys(PASSES).join(", ")})`);
    }
    state = pass.run(state, context);
    if (debug) {
      validate(state.graph);
      debug(name, dumpState(state));
    }
  }
  return state;
}

/**
 * The unfused op count of a graph: its non-leaf, non-shape nodes (what an
 * interpreter without fusion would dispatch).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { unfusedKernelCount } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * strictEqual(unfusedKernelCount(trace((x) => x.exp().T.neg(), [{ name: "x", shape: [2, 3] }])), 2);
 * ```
 */
export function unfusedKernelCount(graph: Graph): number {
  return graphNodes(graph).filter((n) =>
    n.inputs.length > 0 && n.def.kind !== "shape" && familyOf(n) !== "storage"
  ).length;
}
