/**
 * The compiler driver: a visible list of named passes from a Graph to a
 * Program, and {@link compile}, which runs them and binds the result to a
 * backend (`webgpu` or the `cpu` reference) behind one Executable interface.
 *
 * @example
 * ```ts
 * import { compile } from "./compile.ts";
 * import { param, trace } from "./trace.ts";
 * const g = trace((x) => x.matmul(param("w", [3, 2])).sum(), [{ name: "x", shape: [4, 3] }]);
 * const exe = await compile(g, { backend: "webgpu" });
 * exe.setParams({ w: new Float32Array(6).fill(1) });
 * const run = await exe.run({ x: new Float32Array(12).fill(1) }, { read: ["out"] });
 * console.log(await run.read("out")); // Float32Array [24]
 * ```
 *
 * @module
 */
import { type Graph, graphNodes, print, validate } from "./ir.ts";
import "../ops/mod.ts";
import { constantFold, cse, dce } from "./passes/cleanup.ts";
import {
  DEFAULT_RANDOM_PROJECTIONS,
  fuse,
  type FusionPlan,
  type RandomProjections,
} from "./passes/fuse.ts";
import { simplify } from "./passes/simplify.ts";
import {
  describeNode,
  printProgram,
  type Program,
  schedule,
  type ScheduleOptions,
} from "./schedule.ts";
import { familyOf } from "./wgsl/_families.ts";
import type { Kernel } from "./wgsl/kernel.ts";
import type { MatmulShape } from "./wgsl/lower.ts";
import { matmulTilesFor } from "./wgsl/matmul.ts";
import { SHAPE_OPS } from "./wgsl/_values.ts";
import { createWebGpuExecutable, type Executable } from "../runtime/executable.ts";
import { createCpuExecutable } from "../runtime/cpu_executable.ts";
import { type GpuContext, requestGpu } from "../runtime/webgpu.ts";

/**
 * What flows through the pipeline: the graph, then its fusion plan, then the program.
 *
 * @example
 * ```ts
 * import { type PassState, PASSES } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const start: PassState = { graph: trace((x) => x.exp(), [{ name: "x", shape: [2] }]) };
 * console.log(PASSES.fuse.run(start, {}).plan?.groups.length); // 1
 * ```
 */
export interface PassState {
  /** The graph (rewritten by the graph passes). */
  readonly graph: Graph;
  /** Set by `fuse`: which nodes get buffers, grouped into kernels. */
  readonly plan?: FusionPlan;
  /** Set by `schedule`: the kernels and tensors for the runtime. */
  readonly program?: Program;
}

/**
 * What passes may need from the backend.
 *
 * @example
 * ```ts
 * import { type PassContext, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const context: PassContext = { maxBindings: 4 };
 * const g = trace((a, b, c, d) => a.add(b).add(c).add(d), ["a", "b", "c", "d"].map((name) => ({ name, shape: [3] })));
 * console.log(runPipeline(g, ["fuse"], { context }).plan?.groups.length); // 2: 5 buffers do not fit in 4
 * ```
 */
export interface PassContext extends ScheduleOptions {
  /** Storage buffers a kernel may bind (the device's `maxStorageBuffersPerShaderStage`). */
  readonly maxBindings?: number;
  /** Where `random` nodes are computed (see {@link CompileOptions.randomProjections}). */
  readonly randomProjections?: RandomProjections;
}

/**
 * A named step of the pipeline.
 *
 * @example A pass of your own, run between the built-in ones
 * ```ts
 * import { type Pass, PASSES, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const count: Pass = { name: "count", run: (state) => state };
 * const passes = { ...PASSES, count };
 * console.log(Object.keys(passes).includes("count")); // true
 * ```
 */
export interface Pass {
  /** The name pipelines list it by. */
  readonly name: string;
  /** Graph passes return a new graph; `fuse` adds the plan, `schedule` the program. */
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
 * import { PASSES } from "./compile.ts";
 * console.log(Object.keys(PASSES)); // ["simplify", "constantFold", "cse", "dce", "fuse", "schedule"]
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
  schedule: {
    name: "schedule",
    run: (state, context) => {
      if (state.plan === undefined) {
        throw new Error(`pass "schedule" needs the plan of pass "fuse" before it`);
      }
      return { ...state, program: schedule(state.plan, context) };
    },
  },
});

/**
 * The default pipeline, as data.
 *
 * @example Skip constant folding
 * ```ts
 * import { compile, DEFAULT_PIPELINE } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const passes = DEFAULT_PIPELINE.filter((p) => p !== "constantFold");
 * const exe = await compile(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), { passes });
 * ```
 */
export const DEFAULT_PIPELINE: readonly string[] = Object.freeze([
  "simplify",
  "constantFold",
  "cse",
  "dce",
  "fuse",
  "schedule",
]);

/**
 * Text for a debug dump of a pipeline state: the program, else the plan's
 * kernels, else the graph.
 *
 * @example
 * ```ts
 * import { dumpState, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const state = runPipeline(trace((x) => x.exp().sum(), [{ name: "x", shape: [4] }]), ["fuse"]);
 * console.log(dumpState(state).split("\n")[0]); // "fusion plan: 1 kernels"
 * ```
 */
export function dumpState(state: PassState): string {
  if (state.program) return printProgram(state.program);
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
 * import { type RunPipelineOptions, runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const options: RunPipelineOptions = { debug: (pass, dump) => console.log(pass, dump.length) };
 * runPipeline(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), ["simplify", "fuse"], options);
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
 * import { runPipeline } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const g = trace((x) => x.mul(1).exp(), [{ name: "x", shape: [2] }]);
 * const state = runPipeline(g, ["simplify", "fuse", "schedule"]);
 * console.log(state.program?.steps.length); // 1
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
 * Options of {@link compile}.
 *
 * @example Dump the graph after every pass
 * ```ts
 * import { compile, type CompileOptions } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * const options: CompileOptions = { backend: "webgpu", debug: true };
 * await compile(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), options);
 * ```
 */
export interface CompileOptions {
  /** `webgpu` (default) or the `cpu` reference interpreter (f32 precision). */
  readonly backend?: "webgpu" | "cpu";
  /** The GPU context to use (default: the shared `requestGpu()` one). */
  readonly device?: GpuContext;
  /** Pass names (default {@link DEFAULT_PIPELINE}); the cpu backend stops before `fuse`. */
  readonly passes?: readonly string[];
  /** `true` prints each pass's dump; a function receives it instead. */
  readonly debug?: boolean | ((pass: string, dump: string) => void);
  /** Rewrites each kernel after lowering (instrumentation; tests use it to break one). */
  readonly mapKernel?: (kernel: Kernel) => Kernel;
  /**
   * VeRA's projections (`random` nodes) on webgpu: `"shared"` generates each
   * once per run into a buffer every matmul reads; `"fused"` generates the
   * elements inside each matmul's operand loads and allocates nothing. Same
   * bits either way. Default {@link DEFAULT_RANDOM_PROJECTIONS}, the faster
   * on the measured adapter (BENCHMARKS.md).
   */
  readonly randomProjections?: RandomProjections;
}

/** On software adapters, products under 64³ multiply-adds get 4×4 register blocks: they compile twice as fast. */
const TINY_MATMUL_TILES = {
  staging: "registers",
  tileM: 32,
  tileN: 32,
  tileK: 4,
  threadM: 4,
  threadN: 4,
} as const;

function tilesFor(gpu: GpuContext, shape: MatmulShape) {
  const tiles = matmulTilesFor(gpu, shape);
  const tiny = shape.batch * shape.M * shape.N * shape.K < 64 ** 3;
  return tiny && tiles.staging === "registers" ? TINY_MATMUL_TILES : tiles;
}

/**
 * The unfused op count of a graph: its non-leaf, non-shape nodes (what an
 * interpreter without fusion would dispatch).
 *
 * @example
 * ```ts
 * import { unfusedKernelCount } from "./compile.ts";
 * import { trace } from "./trace.ts";
 * console.log(unfusedKernelCount(trace((x) => x.exp().T.neg(), [{ name: "x", shape: [2, 3] }]))); // 2
 * ```
 */
export function unfusedKernelCount(graph: Graph): number {
  return graphNodes(graph).filter((n) =>
    n.inputs.length > 0 && !SHAPE_OPS.has(n.op) && familyOf(n) !== "storage"
  ).length;
}

/**
 * Compiles a graph for a backend and returns its Executable. On webgpu every
 * kernel is compiled (cached by key) and every buffer allocated here, so runs
 * only write inputs and submit; a tensor too large to bind, or a kernel that
 * fails to compile, is an error now, naming the node and the kernel key.
 *
 * @example A training step whose new weights replace the old ones on the device
 * ```ts
 * import { compile } from "./compile.ts";
 * import { makeGraph } from "./ir.ts";
 * import { param, trace } from "./trace.ts";
 * import { valueAndGrad } from "./autodiff.ts";
 * import { scale, sub } from "../ops/_build.ts";
 * const g = valueAndGrad(trace((x) => ({ loss: x.mul(param("w", [2])).square().sum() }), [
 *   { name: "x", shape: [2] },
 * ]));
 * const w = g.params[0];
 * const step = makeGraph({
 *   inputs: g.inputs,
 *   outputs: { loss: g.outputs.loss, w: sub(w, scale(g.outputs["grad:w"], 0.1)) },
 *   meta: { updates: { w: "w" } },
 * });
 * const exe = await compile(step, { backend: "webgpu" });
 * exe.setParams({ w: [1, 1] });
 * for (let i = 1; i <= 20; i++) {
 *   // Queue steps without waiting; read the loss every 10th.
 *   const run = await exe.run({ x: [1, 2] }, { read: i % 10 === 0 ? ["loss"] : [] });
 *   if (i % 10 === 0) console.log(i, await run.read("loss"));
 * }
 * ```
 */
export async function compile(graph: Graph, options: CompileOptions = {}): Promise<Executable> {
  const debug = options.debug === true
    ? (pass: string, dump: string) => console.log(`--- after ${pass} ---\n${dump}`)
    : options.debug || undefined;
  const passes = options.passes ?? DEFAULT_PIPELINE;
  if (options.backend === "cpu") {
    const cut = passes.indexOf("fuse");
    const state = runPipeline(graph, cut < 0 ? passes : passes.slice(0, cut), { debug });
    return createCpuExecutable(state.graph, { kernelsPerRun: unfusedKernelCount(state.graph) });
  }
  const gpu = options.device ?? await requestGpu();
  const context: PassContext = {
    maxBindings: gpu.limits.maxStorageBuffersPerShaderStage,
    tiles: (shape) => tilesFor(gpu, shape),
    checkSize: gpu.checkBindingSize,
    mapKernel: options.mapKernel,
    randomProjections: options.randomProjections ?? DEFAULT_RANDOM_PROJECTIONS,
  };
  const state = runPipeline(graph, passes, { context, debug });
  if (state.program === undefined) {
    throw new Error(`the webgpu backend needs the passes "fuse" and "schedule"`);
  }
  const before = gpu.pipelines.pipelinesCreated;
  // One at a time: concurrent compilations would interleave their error scopes.
  for (const step of state.program.steps) await gpu.pipelines.get(step.kernel);
  return await createWebGpuExecutable(gpu, state.program, {
    pipelinesCreated: gpu.pipelines.pipelinesCreated - before,
  });
}
