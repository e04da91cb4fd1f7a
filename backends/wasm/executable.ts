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
import { graphUpdates } from "../graph_updates.ts";
import type { TensorData } from "../cpu/interpreter.ts";
import type { Executable } from "../executable.ts";
import { checkIndexInputs, checkNames, indexBounds } from "../index_checks.ts";
import { type HostArray, toStorage } from "../host_data.ts";
import { compileCached } from "./_module.ts";
import { planWasm } from "./_plan.ts";
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

  const buffer = memory.buffer as unknown as ArrayBuffer;
  const addressOf = (node: Node) => plan.address.get(node.id)!;
  const write = (node: Node, value: TensorData, what: string) => {
    const data = toStorage(node, value, what);
    new Uint8Array(buffer, addressOf(node), data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  };
  const readNode = (node: Node): HostArray => {
    const n = sizeOf(node.shape);
    const at = addressOf(node);
    if (node.dtype === "f32") return new Float32Array(buffer, at, n).slice();
    if (node.dtype === "i32") return new Int32Array(buffer, at, n).slice();
    const words = new Uint32Array(buffer, at, n);
    return node.dtype === "u32" ? words.slice() : Uint8Array.from(words, (w) => (w !== 0 ? 1 : 0));
  };
  for (const node of graphLeaves(graph)) {
    if (!plan.address.has(node.id)) continue;
    if (node.op === "iota") write(node, iotaData(node), "iota");
    else if (node.op === "const" && node.attrs.data !== undefined) {
      write(node, node.attrs.data as number[], "const");
    }
  }

  const params = new Map(graph.params.map((n) => [n.name!, n]));
  const inputs = new Map(
    graph.inputs.filter((n) => plan.address.has(n.id)).map((n) => [n.name!, n]),
  );
  const bounds = indexBounds(graph);
  const updates = Object.entries(graphUpdates(graph))
    .map(([output, param]) => [graph.outputs[output], params.get(param)!] as const)
    .filter(([from, to]) => from.id !== to.id && plan.address.has(to.id));
  const paramsSet = new Set<string>();
  let runs = 0;
  let destroyed = false;
  const alive = (what: string) => {
    if (destroyed) throw new Error(`cannot ${what}: the executable was destroyed`);
  };
  const outputNode = (name: string) => {
    const node = graph.outputs[name];
    if (node === undefined) {
      throw new Error(
        `unknown output "${name}" (outputs: ${Object.keys(graph.outputs).join(", ")})`,
      );
    }
    return node;
  };

  const exe: Executable = {
    backend: "wasm",
    graph,
    get stats() {
      return {
        kernelsPerRun: plan.steps.length,
        gpuBytes: 0,
        buffersCreated: 0,
        pipelinesCreated: 0,
        runs,
      };
    },
    setParams(values: Readonly<Record<string, TensorData>>) {
      alive("set params");
      checkNames("param", Object.keys(values), new Set(params.keys()));
      for (const [name, value] of Object.entries(values)) {
        const node = params.get(name)!;
        if (plan.address.has(node.id)) write(node, value, "param");
        else toStorage(node, value, "param"); // checks the size of an unread param
        paramsSet.add(name);
      }
    },
    getParam(name: string) {
      alive("read a param");
      const node = params.get(name);
      if (node === undefined) {
        return Promise.reject(
          new Error(`unknown param "${name}" (params: ${[...params.keys()].join(", ")})`),
        );
      }
      return Promise.resolve(readNode(node));
    },
    run(
      feeds: Readonly<Record<string, TensorData>> = {},
      runOptions: { read?: readonly string[] } = {},
    ) {
      try {
        alive("run");
        checkNames("input", Object.keys(feeds), new Set(graph.inputs.map((n) => n.name!)));
        // Like the webgpu backend: only inputs the graph reads must be fed.
        for (const [name, node] of inputs) {
          if (feeds[name] === undefined) {
            throw new Error(`input "${name}" (${node.dtype}[${node.shape}]) was not fed`);
          }
        }
        const unset = [...params.keys()].filter((p) => !paramsSet.has(p));
        if (unset.length > 0) {
          throw new Error(`params never set (call setParams first): ${unset.join(", ")}`);
        }
        checkIndexInputs(bounds, feeds);
        for (const [name, node] of inputs) write(node, feeds[name], "input");
        pool.run(plan.steps, kernels);
        const run = ++runs;
        const kept = new Map((runOptions.read ?? []).map((n) => [n, readNode(outputNode(n))]));
        for (const [from, to] of updates) {
          const bytes = sizeOf(to.shape) * 4;
          new Uint8Array(buffer).copyWithin(
            addressOf(to),
            addressOf(from),
            addressOf(from) + bytes,
          );
        }
        const read = (name: string) => {
          const value = kept.get(name);
          if (value !== undefined) return Promise.resolve(value);
          if (runs !== run) {
            return Promise.reject(
              new Error(
                `output "${name}" of run ${run} was overwritten by run ${runs}: pass { read: ["${name}"] } to run()`,
              ),
            );
          }
          return Promise.resolve(readNode(outputNode(name)));
        };
        return Promise.resolve({ run, read });
      } catch (e) {
        return Promise.reject(e);
      }
    },
    read(name: string) {
      alive("read an output");
      if (runs === 0) {
        return Promise.reject(new Error(`output "${name}" cannot be read before the first run`));
      }
      return Promise.resolve(readNode(outputNode(name)));
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      pool.destroy();
    },
  };
  return exe;
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
