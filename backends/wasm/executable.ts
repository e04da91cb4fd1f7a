/**
 * The wasm backend's {@link Executable}: one shared `WebAssembly.Memory`
 * holding every buffer at a fixed address, the plan's kernels compiled once,
 * and a {@link ThreadPool}. Runs are synchronous: `run` returns once the
 * results are in memory.
 *
 * @module
 */
import type { Graph, Node } from "../../compiler/ir.ts";
import { sizeOf } from "../../compiler/ir.ts";
import { graphUpdates } from "../../compiler/graph_updates.ts";
import type { TensorData } from "../cpu/interpreter.ts";
import type { Executable, RunResult } from "../executable.ts";
import { checkIndexInputs, checkNames, type IndexBound, indexBounds } from "../index_checks.ts";
import { type HostArray, toStorage } from "../host_data.ts";
import { compileCached } from "./_module.ts";
import { planWasm, type WasmPlan } from "./_plan.ts";
import { type Kernel, ThreadPool } from "./_threads.ts";
import { RELAXED_MADD_CODE, validates } from "./_probe.ts";

/**
 * Options of {@link createWasmExecutable}.
 *
 * @example
 * ```ts
 * import type { WasmOptions } from "./executable.ts";
 * const singleThreaded: WasmOptions = { threads: 1 };
 * ```
 */
export interface WasmOptions {
  /** Threads (the caller's plus workers); default `navigator.hardwareConcurrency`. */
  readonly threads?: number;
  /** Use relaxed-SIMD fused multiply-add in matmul (default: when the engine supports it). */
  readonly fma?: boolean;
}

/**
 * The default thread count: one per logical core.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { defaultThreads } from "./executable.ts";
 * strictEqual(defaultThreads() >= 1, true);
 * ```
 */
export function defaultThreads(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

/**
 * Whether the engine has relaxed SIMD (for fused multiply-add).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { relaxedSimdAvailable } from "./executable.ts";
 * strictEqual(typeof relaxedSimdAvailable(), "boolean");
 * ```
 */
export function relaxedSimdAvailable(): boolean {
  return validates(RELAXED_MADD_CODE);
}

/**
 * Compiles `graph` (after the graph passes) for the wasm backend.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { createWasmExecutable } from "./executable.ts";
 * import { trace } from "../../compiler/trace.ts";
 * const exe = await createWasmExecutable(trace((x) => x.mul(2), [{ name: "x", shape: [2] }]));
 * const result = await exe.run({ x: [1, 2] });
 * deepStrictEqual(await result.read("out"), new Float32Array([2, 4]));
 * exe.destroy();
 * ```
 */
export async function createWasmExecutable(
  graph: Graph,
  options: WasmOptions = {},
): Promise<Executable> {
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`wasm: threads must be a positive integer, got ${threads}`);
  }
  const plan = planWasm(graph, { threads, fma: options.fma ?? relaxedSimdAvailable() });
  const state = await instantiate(graph, plan, threads);
  writeLeafData(state);
  return executableOf(state);
}

/** What the executable's methods share: the instance, its memory, and the graph's names. */
interface WasmState {
  readonly graph: Graph;
  readonly plan: WasmPlan;
  readonly kernels: Record<string, Kernel>;
  readonly pool: ThreadPool;
  /** The shared memory, where every buffer sits at its plan address. */
  readonly buffer: ArrayBuffer;
  readonly params: Map<string, Node>;
  /** The inputs the graph reads (those with a buffer). */
  readonly inputs: Map<string, Node>;
  readonly bounds: Map<string, IndexBound>;
  /** Outputs copied onto the params they update after each run. */
  readonly updates: readonly (readonly [from: Node, to: Node])[];
  readonly paramsSet: Set<string>;
  runs: number;
  destroyed: boolean;
}

/**
 * Compiles the plan's module into a fixed-size shared memory, starts the threads (one unless a
 * step is shared) and runs the init kernels (random projections).
 */
async function instantiate(graph: Graph, plan: WasmPlan, threads: number): Promise<WasmState> {
  const memory = new WebAssembly.Memory({
    initial: plan.pages,
    maximum: plan.pages,
    shared: true,
  });
  const module = await compileCached(plan.bytes);
  const instance = await WebAssembly.instantiate(module, { env: { mem: memory } });
  const kernels = instance.exports as unknown as Record<string, Kernel>;
  const parallel = plan.steps.some((s) => s.parallel);
  const pool = await ThreadPool.start(parallel ? threads : 1, memory, plan.bytes, plan.steps);
  for (const step of plan.init) kernels[step.name](0, 1);
  const params = new Map(graph.params.map((n) => [n.name!, n]));
  return {
    graph,
    plan,
    kernels,
    pool,
    buffer: memory.buffer as unknown as ArrayBuffer,
    params,
    inputs: new Map(
      graph.inputs.filter((n) => plan.address.has(n.id)).map((n) => [n.name!, n]),
    ),
    bounds: indexBounds(graph),
    updates: Object.entries(graphUpdates(graph))
      .map(([output, param]) => [graph.outputs[output], params.get(param)!] as const)
      .filter(([from, to]) => from.id !== to.id && plan.address.has(to.id)),
    paramsSet: new Set<string>(),
    runs: 0,
    destroyed: false,
  };
}

/** Copies `value` (checked against `node`'s shape and dtype) into `node`'s buffer. */
function write(state: WasmState, node: Node, value: TensorData, what: string): void {
  const data = toStorage(node, value, what);
  new Uint8Array(state.buffer, state.plan.address.get(node.id)!, data.byteLength).set(
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
}

/** A copy of `node`'s buffer as a host array of its dtype. */
function readNode(state: WasmState, node: Node): HostArray {
  const n = sizeOf(node.shape);
  const at = state.plan.address.get(node.id)!;
  const buffer = state.buffer;
  if (node.dtype === "f32") return new Float32Array(buffer, at, n).slice();
  if (node.dtype === "i32") return new Int32Array(buffer, at, n).slice();
  const words = new Uint32Array(buffer, at, n);
  return node.dtype === "u32" ? words.slice() : Uint8Array.from(words, (w) => (w !== 0 ? 1 : 0));
}

/** The iota and data constants the graph reads, written once. */
function writeLeafData(state: WasmState): void {
  for (const node of graphLeaves(state.graph)) {
    if (!state.plan.address.has(node.id)) continue;
    if (node.op === "iota") write(state, node, iotaData(node), "iota");
    else if (node.op === "const" && node.attrs.data !== undefined) {
      write(state, node, node.attrs.data as number[], "const");
    }
  }
}

function alive(state: WasmState, what: string): void {
  if (state.destroyed) throw new Error(`cannot ${what}: the executable was destroyed`);
}

function outputNode(graph: Graph, name: string): Node {
  const node = graph.outputs[name];
  if (node === undefined) {
    throw new Error(
      `unknown output "${name}" (outputs: ${Object.keys(graph.outputs).join(", ")})`,
    );
  }
  return node;
}

function writeParams(state: WasmState, values: Readonly<Record<string, TensorData>>): void {
  alive(state, "set params");
  const params = state.params;
  checkNames("param", Object.keys(values), new Set(params.keys()));
  for (const [name, value] of Object.entries(values)) {
    const node = params.get(name)!;
    if (state.plan.address.has(node.id)) write(state, node, value, "param");
    else toStorage(node, value, "param"); // checks the size of an unread param
    state.paramsSet.add(name);
  }
}

/** Refuses a run whose feeds or params are incomplete or whose indices are out of range. */
function checkRun(state: WasmState, feeds: Readonly<Record<string, TensorData>>): void {
  alive(state, "run");
  checkNames("input", Object.keys(feeds), new Set(state.graph.inputs.map((n) => n.name!)));
  // Like the webgpu backend: only inputs the graph reads must be fed.
  for (const [name, node] of state.inputs) {
    if (feeds[name] === undefined) {
      throw new Error(`input "${name}" (${node.dtype}[${node.shape}]) was not fed`);
    }
  }
  const unset = [...state.params.keys()].filter((p) => !state.paramsSet.has(p));
  if (unset.length > 0) {
    throw new Error(`params never set (call setParams first): ${unset.join(", ")}`);
  }
  checkIndexInputs(state.bounds, feeds);
}

/**
 * Writes the feeds, runs every step, keeps the outputs in `read` and moves the updated params
 * into place; the outputs not kept can be read until the next run overwrites them.
 */
function runSteps(
  state: WasmState,
  feeds: Readonly<Record<string, TensorData>>,
  read: readonly string[],
): RunResult {
  checkRun(state, feeds);
  for (const [name, node] of state.inputs) write(state, node, feeds[name], "input");
  state.pool.run(state.plan.steps, state.kernels);
  const run = ++state.runs;
  const kept = new Map(read.map((n) => [n, readNode(state, outputNode(state.graph, n))]));
  const address = state.plan.address;
  for (const [from, to] of state.updates) {
    const bytes = sizeOf(to.shape) * 4;
    new Uint8Array(state.buffer).copyWithin(
      address.get(to.id)!,
      address.get(from.id)!,
      address.get(from.id)! + bytes,
    );
  }
  const readOutput = (name: string) => {
    const value = kept.get(name);
    if (value !== undefined) return Promise.resolve(value);
    if (state.runs !== run) {
      return Promise.reject(
        new Error(
          `output "${name}" of run ${run} was overwritten by run ${state.runs}: pass { read: ["${name}"] } to run()`,
        ),
      );
    }
    return Promise.resolve(readNode(state, outputNode(state.graph, name)));
  };
  return { run, read: readOutput };
}

/** The {@link Executable} over `state`: each method checks it was not destroyed. */
function executableOf(state: WasmState): Executable {
  const { graph, params } = state;
  return {
    backend: "wasm",
    graph,
    get stats() {
      return {
        kernelsPerRun: state.plan.steps.length,
        gpuBytes: 0,
        buffersCreated: 0,
        pipelinesCreated: 0,
        runs: state.runs,
      };
    },
    setParams(values: Readonly<Record<string, TensorData>>) {
      writeParams(state, values);
    },
    getParam(name: string) {
      alive(state, "read a param");
      const node = params.get(name);
      if (node === undefined) {
        return Promise.reject(
          new Error(`unknown param "${name}" (params: ${[...params.keys()].join(", ")})`),
        );
      }
      return Promise.resolve(readNode(state, node));
    },
    run(
      feeds: Readonly<Record<string, TensorData>> = {},
      runOptions: { read?: readonly string[] } = {},
    ) {
      try {
        return Promise.resolve(runSteps(state, feeds, runOptions.read ?? []));
      } catch (e) {
        return Promise.reject(e);
      }
    },
    read(name: string) {
      alive(state, "read an output");
      if (state.runs === 0) {
        return Promise.reject(new Error(`output "${name}" cannot be read before the first run`));
      }
      return Promise.resolve(readNode(state, outputNode(graph, name)));
    },
    destroy() {
      if (state.destroyed) return;
      state.destroyed = true;
      state.pool.destroy();
    },
  };
}

function graphLeaves(graph: Graph): Node[] {
  const seen = new Set<number>();
  const out: Node[] = [];
  const walk = (n: Node) => {
    if (seen.has(n.id)) return;
    seen.add(n.id);
    if (n.inputs.length === 0) out.push(n);
    n.inputs.forEach(walk);
  };
  Object.values(graph.outputs).forEach(walk);
  return out;
}

function iotaData(node: Node): number[] {
  const rank = node.shape.length;
  const axis = ((node.attrs.axis as number) + rank) % rank;
  const stride = node.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const dim = node.shape[axis];
  return Array.from({ length: sizeOf(node.shape) }, (_, i) => Math.floor(i / stride) % dim);
}
