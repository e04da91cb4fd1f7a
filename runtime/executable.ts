/**
 * Executables: a compiled graph bound to a backend. Params are set once and
 * stay resident; inputs are fed per run; outputs stay on the device until
 * read. Outputs named in `graph.meta.updates` replace their params after each
 * run, so a training step's new weights never leave the GPU. The `cpu`
 * backend has the same interface, so callers switch with one flag.
 *
 * @module
 */
import type { Graph, Node } from "../compiler/ir.ts";
import { describeNode, type Program } from "../compiler/schedule.ts";
import type { TensorData } from "./cpu.ts";
import { checkIndexInputs, checkNames, indexBounds } from "./_index_checks.ts";
import {
  bindKernel,
  encodeKernels,
  type GpuContext,
  readBuffer,
  withErrorScopes,
} from "./webgpu.ts";
import {
  bufferBytes,
  fromBytes,
  type HostArray,
  type MemoryPlan,
  planMemory,
  type StorageArray,
  toStorage,
} from "./_memory_plan.ts";

export type { HostArray } from "./_memory_plan.ts";

/**
 * Options of {@link Executable.run}.
 *
 * @example
 * ```ts
 * import type { RunOptions } from "./executable.ts";
 * const everyTenthStep: RunOptions = { read: ["loss"] };
 * ```
 */
export interface RunOptions {
  /** Outputs to copy out of this run (queued with it, so later runs cannot overwrite them). */
  readonly read?: readonly string[];
}

/**
 * What {@link Executable.run} returns once the run is submitted.
 *
 * @example
 * ```ts
 * import { compile } from "../compiler/compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.neg(), [{ name: "x", shape: [1] }]), { backend: "cpu" });
 * const result = await exe.run({ x: [2] });
 * console.log(result.run, await result.read("out")); // 1 Float32Array [-2]
 * ```
 */
export interface RunResult {
  /** 1 for the first run, then 2, 3, ... */
  readonly run: number;
  /** This run's value of an output: one listed in `read`, or any output while no later run was submitted. */
  read(name: string): Promise<HostArray>;
}

/**
 * Counters of an executable.
 *
 * @example
 * ```ts
 * import { compile } from "../compiler/compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.exp().sum(), [{ name: "x", shape: [8] }]), { backend: "webgpu" });
 * console.log(exe.stats.kernelsPerRun); // 1
 * ```
 */
export interface ExecutableStats {
  /** Dispatches per run (the cpu backend: the non-leaf, non-shape ops it evaluates). */
  readonly kernelsPerRun: number;
  /** Bytes of GPU buffers held (params, inputs, outputs, temporaries). */
  readonly gpuBytes: number;
  /** GPU buffers created on this executable's behalf (allocation, readback staging). */
  readonly buffersCreated: number;
  /** Pipelines compiled for it (0 when every kernel was already cached). */
  readonly pipelinesCreated: number;
  /** Runs submitted so far. */
  readonly runs: number;
}

/**
 * A compiled graph; see {@link createWebGpuExecutable} and `createCpuExecutable` (cpu_executable.ts).
 *
 * @example
 * ```ts
 * import { compile } from "../compiler/compile.ts";
 * import { param, trace } from "../compiler/trace.ts";
 * const g = trace((x) => x.mul(param("w", [2])).sum(), [{ name: "x", shape: [2] }]);
 * const exe = await compile(g, { backend: Deno.args.includes("--cpu") ? "cpu" : "webgpu" });
 * exe.setParams({ w: [3, 4] });
 * console.log(await (await exe.run({ x: [1, 2] }, { read: ["out"] })).read("out")); // [11]
 * ```
 */
export interface Executable {
  /** Which backend runs it. */
  readonly backend: "webgpu" | "cpu";
  /** The graph after the graph passes. */
  readonly graph: Graph;
  /** The scheduled kernels (webgpu only). */
  readonly program?: Program;
  /** Counters (kernels per run, bytes and buffers held, pipelines compiled). */
  readonly stats: ExecutableStats;
  /** Uploads param values (by module path); unknown names are an error. */
  setParams(values: Readonly<Record<string, TensorData>>): void;
  /** The current value of a param (after any updates). */
  getParam(name: string): Promise<HostArray>;
  /** Feeds inputs and submits one run; resolves once submitted, not when the device finishes. */
  run(inputs?: Readonly<Record<string, TensorData>>, options?: RunOptions): Promise<RunResult>;
  /** The latest run's value of an output. */
  read(name: string): Promise<HostArray>;
  /** Returns the buffers to the pool; the executable is unusable afterwards. */
  destroy(): void;
}

const STORAGE_USAGE = () =>
  GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * Options of {@link createWebGpuExecutable}.
 *
 * @example
 * ```ts
 * import type { WebGpuExecutableOptions } from "./executable.ts";
 * const options: WebGpuExecutableOptions = { pipelinesCreated: 3 };
 * ```
 */
export interface WebGpuExecutableOptions {
  /** Pipelines compiled while building the program, for `stats.pipelinesCreated`. */
  readonly pipelinesCreated?: number;
}

/**
 * Binds a scheduled program to a device: compiles nothing (kernels must be in
 * `gpu.pipelines` already), allocates every buffer of the memory plan at
 * once, uploads consts and creates the bind groups, so runs allocate nothing.
 *
 * @example
 * ```ts
 * import { compile } from "../compiler/compile.ts";
 * import { trace } from "../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), { backend: "webgpu" });
 * await exe.run({ x: [0, 1] });
 * console.log(await exe.read("out")); // Float32Array [1, 2.718...]
 * ```
 */
export async function createWebGpuExecutable(
  gpu: GpuContext,
  program: Program,
  options: WebGpuExecutableOptions = {},
): Promise<Executable> {
  const { graph, tensors } = program;
  const memory: MemoryPlan = planMemory(program);
  let created = 0;
  const counted = <T>(fn: () => T): T => {
    const before = gpu.buffers.buffersCreated;
    try {
      return fn();
    } finally {
      created += gpu.buffers.buffersCreated - before;
    }
  };
  const device = gpu.device;
  // Deno 2.9 panics on an empty writeBuffer: 0-size tensors have nothing to write.
  const write = (buffer: GPUBuffer, data: StorageArray) => {
    if (data.byteLength > 0) device.queue.writeBuffer(buffer, 0, data);
  };
  const largest = [...tensors.values()].reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const total = memory.buffers.reduce((a, b) => a + b, 0);
  const what = `allocating ${memory.buffers.length} buffers (${total} bytes; largest tensor ` +
    `${describeNode(largest.node)}) for ${program.steps.length} kernels`;
  let buffers: GPUBuffer[] = [];
  const bufferOf = (node: Node) => buffers[memory.bufferOf.get(node.id)!];
  const dispatches = await withErrorScopes(device, () => {
    buffers = counted(() =>
      memory.buffers.map((bytes) => gpu.buffers.acquire(bytes, STORAGE_USAGE()))
    );
    for (const t of tensors.values()) {
      if (t.role === "const") {
        write(bufferOf(t.node), toStorage(t.node, t.node.attrs.data as number[], "const"));
      }
    }
    return program.steps.map((step) => {
      const d = { kernel: step.kernel, buffers: step.nodes.map(bufferOf) };
      return { ...d, bindGroup: bindKernel(gpu, d) };
    });
  }, { what, health: gpu.health });
  const inputs = new Map(graph.inputs.filter((n) => tensors.has(n.id)).map((n) => [n.name!, n]));
  const bounds = indexBounds(graph);
  const params = new Map(graph.params.map((n) => [n.name!, n]));
  const paramsSet = new Set<string>();
  const updates = Object.entries(program.updates).map(([output, param]) => ({
    from: bufferOf(graph.outputs[output]),
    to: bufferOf(params.get(param)!),
    bytes: tensors.get(params.get(param)!.id)!.bytes,
  })).filter((u) => u.from !== u.to && u.bytes > 0);
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
  const readNode = async (node: Node) => {
    const bytes = tensors.get(node.id)!.bytes;
    const data = await counted(() => readBuffer(gpu, bufferOf(node), { byteLength: bytes }));
    return fromBytes(node.dtype, data, bytes / 4);
  };
  const stage = (node: Node, encoder: GPUCommandEncoder) => {
    const bytes = tensors.get(node.id)!.bytes;
    const staging = counted(() =>
      gpu.buffers.acquire(bufferBytes(bytes), GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST)
    );
    if (bytes > 0) encoder.copyBufferToBuffer(bufferOf(node), 0, staging, 0, bytes);
    return async () => {
      try {
        if (bytes === 0) return fromBytes(node.dtype, new ArrayBuffer(0), 0);
        await staging.mapAsync(GPUMapMode.READ, 0, bytes);
        return fromBytes(node.dtype, staging.getMappedRange(0, bytes).slice(0), bytes / 4);
      } finally {
        gpu.buffers.release(staging);
      }
    };
  };
  return {
    backend: "webgpu",
    graph,
    program,
    get stats() {
      return {
        kernelsPerRun: program.steps.filter((s) => s.kernel.dispatch.every((d) => d > 0)).length,
        gpuBytes: destroyed ? 0 : memory.buffers.reduce((a, b) => a + b, 0),
        buffersCreated: created,
        pipelinesCreated: options.pipelinesCreated ?? 0,
        runs,
      };
    },
    setParams(values) {
      alive("set params");
      checkNames("param", Object.keys(values), new Set(params.keys()));
      for (const [name, value] of Object.entries(values)) {
        const node = params.get(name)!;
        write(bufferOf(node), toStorage(node, value, "param"));
        paramsSet.add(name);
      }
    },
    getParam(name) {
      alive("read a param");
      const node = params.get(name);
      if (node === undefined) {
        throw new Error(`unknown param "${name}" (params: ${[...params.keys()].join(", ")})`);
      }
      return readNode(node);
    },
    async run(feeds = {}, runOptions = {}) {
      alive("run");
      checkNames("input", Object.keys(feeds), new Set(graph.inputs.map((n) => n.name!)));
      for (const [name, node] of inputs) {
        if (feeds[name] === undefined) {
          throw new Error(`input "${name}" (${describeNode(node)}) was not fed`);
        }
      }
      const unset = [...params.keys()].filter((p) => !paramsSet.has(p));
      if (unset.length > 0) {
        throw new Error(`params never set (call setParams first): ${unset.join(", ")}`);
      }
      // Kernels cannot throw: indices are checked here, as the CPU reference checks them.
      checkIndexInputs(bounds, feeds);
      const wanted = (runOptions.read ?? []).map((name) => [name, outputNode(name)] as const);
      // Numbered before any await, so runs submitted back to back get distinct numbers.
      const run = ++runs;
      const staged = new Map<string, Promise<HostArray>>();
      await withErrorScopes(device, () => {
        for (const [name, node] of inputs) {
          write(bufferOf(node), toStorage(node, feeds[name], "input"));
        }
        const encoder = encodeKernels(gpu, dispatches, { label: `run ${run}` });
        for (const u of updates) encoder.copyBufferToBuffer(u.from, 0, u.to, 0, u.bytes);
        const readers = wanted.map(([name, node]) => [name, stage(node, encoder)] as const);
        device.queue.submit([encoder.finish()]);
        for (const [name, reader] of readers) {
          const p = reader();
          p.catch(() => {});
          staged.set(name, p);
        }
      }, { what: `run ${run} (${program.steps.length} kernels)`, health: gpu.health });
      return {
        run,
        read: (name: string) => {
          const value = staged.get(name);
          if (value !== undefined) return value;
          if (runs !== run) {
            return Promise.reject(
              new Error(
                `output "${name}" of run ${run} was overwritten by run ${runs}: pass { read: ["${name}"] } to run()`,
              ),
            );
          }
          return readNode(outputNode(name));
        },
      };
    },
    read(name) {
      alive("read an output");
      if (runs === 0) {
        return Promise.reject(new Error(`output "${name}" cannot be read before the first run`));
      }
      return readNode(outputNode(name));
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const b of buffers) gpu.buffers.release(b);
    },
  };
}
