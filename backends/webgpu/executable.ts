/**
 * The WebGPU executable: a scheduled program bound to a device. Params are
 * set once and stay resident; inputs are fed per run; outputs stay on the
 * device until read. Outputs named in `graph.meta.updates` replace their
 * params after each run, so a training step's new weights never leave the GPU.
 *
 * @module
 */
import type { Graph, Node } from "../../compiler/ir.ts";
import type { RenderedProgram } from "./render_program.ts";
import { describeNode } from "../../compiler/print.ts";
import type { Executable, ExecutableStats, RunOptions, RunResult } from "../executable.ts";
import { checkIndexInputs, checkNames, indexBounds } from "../index_checks.ts";
import {
  bindKernel,
  encodeKernels,
  type GpuContext,
  type KernelDispatch,
  readBuffer,
  withErrorScopes,
} from "./device.ts";
import { bufferBytes, type MemoryPlan, planMemory } from "../../compiler/memory_plan.ts";
import {
  fromBytes,
  type HostArray,
  type StorageArray,
  type TensorData,
  toStorage,
} from "../host_data.ts";

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
 * import { deepStrictEqual } from "node:assert/strict";
 * import { compile } from "../compile.ts";
 * import { trace } from "../../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.exp(), [{ name: "x", shape: [2] }]), { backend: "webgpu" });
 * await exe.run({ x: [0, 1] });
 * const [one, e] = await exe.read("out");
 * deepStrictEqual([one, Math.round(e * 1e6) / 1e6], [1, 2.718282]);
 * ```
 */
export async function createWebGpuExecutable(
  gpu: GpuContext,
  program: RenderedProgram,
  options: WebGpuExecutableOptions = {},
): Promise<Executable> {
  const exe = new WebGpuExecutable(gpu, program, options.pipelinesCreated ?? 0);
  await exe.allocate();
  return exe;
}

interface ParamUpdate {
  readonly from: GPUBuffer;
  readonly to: GPUBuffer;
  readonly bytes: number;
}

class WebGpuExecutable implements Executable {
  readonly backend = "webgpu";
  readonly graph: Graph;
  readonly program: RenderedProgram;
  readonly #gpu: GpuContext;
  readonly #memory: MemoryPlan;
  readonly #pipelinesCreated: number;
  readonly #inputs: Map<string, Node>;
  readonly #params: Map<string, Node>;
  readonly #bounds: ReturnType<typeof indexBounds>;
  readonly #paramsSet = new Set<string>();
  #buffers: GPUBuffer[] = [];
  #dispatches: KernelDispatch[] = [];
  #updates: ParamUpdate[] = [];
  #created = 0;
  #runs = 0;
  #destroyed = false;

  constructor(gpu: GpuContext, program: RenderedProgram, pipelinesCreated: number) {
    this.#gpu = gpu;
    this.program = program;
    this.graph = program.graph;
    this.#memory = planMemory(program);
    this.#pipelinesCreated = pipelinesCreated;
    const { graph, tensors } = program;
    this.#inputs = new Map(
      graph.inputs.filter((n) => tensors.has(n.id)).map((n) => [n.name!, n]),
    );
    this.#params = new Map(graph.params.map((n) => [n.name!, n]));
    this.#bounds = indexBounds(graph);
  }

  /** Allocates every buffer of the memory plan, writes consts and binds every kernel. */
  async allocate(): Promise<void> {
    const { program, graph } = this;
    const memory = this.#memory;
    const largest = [...program.tensors.values()].reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const total = memory.buffers.reduce((a, b) => a + b, 0);
    const what = `allocating ${memory.buffers.length} buffers (${total} bytes; largest tensor ` +
      `${describeNode(largest.node)}) for ${program.steps.length} kernels`;
    this.#dispatches = await withErrorScopes(this.#gpu.device, () => {
      this.#buffers = this.#counted(() =>
        memory.buffers.map((bytes) => this.#gpu.buffers.acquire(bytes, STORAGE_USAGE()))
      );
      for (const t of program.tensors.values()) {
        if (t.role === "const") {
          this.#write(t.node, toStorage(t.node, t.node.attrs.data as number[], "const"));
        }
      }
      return program.steps.map((step) => {
        const d = { kernel: step.kernel, buffers: step.nodes.map((n) => this.#bufferOf(n)) };
        return { ...d, bindGroup: bindKernel(this.#gpu, d) };
      });
    }, { what, health: this.#gpu.health });
    this.#updates = Object.entries(program.updates).map(([output, param]) => ({
      from: this.#bufferOf(graph.outputs[output]),
      to: this.#bufferOf(this.#params.get(param)!),
      bytes: program.tensors.get(this.#params.get(param)!.id)!.bytes,
    })).filter((u) => u.from !== u.to && u.bytes > 0);
  }

  get stats(): ExecutableStats {
    return {
      kernelsPerRun: this.program.steps.filter((s) => s.kernel.dispatch.every((d) => d > 0))
        .length,
      gpuBytes: this.#destroyed ? 0 : this.#memory.buffers.reduce((a, b) => a + b, 0),
      buffersCreated: this.#created,
      pipelinesCreated: this.#pipelinesCreated,
      runs: this.#runs,
    };
  }

  setParams(values: Readonly<Record<string, TensorData>>): void {
    this.#alive("set params");
    checkNames("param", Object.keys(values), new Set(this.#params.keys()));
    for (const [name, value] of Object.entries(values)) {
      const node = this.#params.get(name)!;
      this.#write(node, toStorage(node, value, "param"));
      this.#paramsSet.add(name);
    }
  }

  getParam(name: string): Promise<HostArray> {
    this.#alive("read a param");
    const node = this.#params.get(name);
    if (node === undefined) {
      throw new Error(`unknown param "${name}" (params: ${[...this.#params.keys()].join(", ")})`);
    }
    return this.#readNode(node);
  }

  async run(
    feeds: Readonly<Record<string, TensorData>> = {},
    options: RunOptions = {},
  ): Promise<RunResult> {
    this.#alive("run");
    this.#checkFeeds(feeds);
    const wanted = (options.read ?? []).map((name) => [name, this.#outputNode(name)] as const);
    // Numbered before any await, so runs submitted back to back get distinct numbers.
    const run = ++this.#runs;
    const staged = await this.#submit(run, feeds, wanted);
    return {
      run,
      read: (name: string) => {
        const value = staged.get(name);
        if (value !== undefined) return value;
        if (this.#runs !== run) {
          return Promise.reject(
            new Error(
              `output "${name}" of run ${run} was overwritten by run ${this.#runs}: pass { read: ["${name}"] } to run()`,
            ),
          );
        }
        return this.#readNode(this.#outputNode(name));
      },
    };
  }

  read(name: string): Promise<HostArray> {
    this.#alive("read an output");
    if (this.#runs === 0) {
      return Promise.reject(new Error(`output "${name}" cannot be read before the first run`));
    }
    return this.#readNode(this.#outputNode(name));
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const b of this.#buffers) this.#gpu.buffers.release(b);
  }

  /** Throws unless every input is fed, every param set, and every index in range. */
  #checkFeeds(feeds: Readonly<Record<string, TensorData>>): void {
    checkNames("input", Object.keys(feeds), new Set(this.graph.inputs.map((n) => n.name!)));
    for (const [name, node] of this.#inputs) {
      if (feeds[name] === undefined) {
        throw new Error(`input "${name}" (${describeNode(node)}) was not fed`);
      }
    }
    const unset = [...this.#params.keys()].filter((p) => !this.#paramsSet.has(p));
    if (unset.length > 0) {
      throw new Error(`params never set (call setParams first): ${unset.join(", ")}`);
    }
    // Kernels cannot throw: indices are checked here, as the CPU reference checks them.
    checkIndexInputs(this.#bounds, feeds);
  }

  /** Writes the inputs, encodes every kernel, the param updates and the staged reads; submits. */
  async #submit(
    run: number,
    feeds: Readonly<Record<string, TensorData>>,
    wanted: readonly (readonly [string, Node])[],
  ): Promise<Map<string, Promise<HostArray>>> {
    const staged = new Map<string, Promise<HostArray>>();
    const gpu = this.#gpu;
    await withErrorScopes(gpu.device, () => {
      for (const [name, node] of this.#inputs) {
        this.#write(node, toStorage(node, feeds[name], "input"));
      }
      const encoder = encodeKernels(gpu, this.#dispatches, { label: `run ${run}` });
      for (const u of this.#updates) encoder.copyBufferToBuffer(u.from, 0, u.to, 0, u.bytes);
      const readers = wanted.map(([name, node]) => [name, this.#stage(node, encoder)] as const);
      gpu.device.queue.submit([encoder.finish()]);
      for (const [name, reader] of readers) {
        const p = reader();
        p.catch(() => {});
        staged.set(name, p);
      }
    }, { what: `run ${run} (${this.program.steps.length} kernels)`, health: gpu.health });
    return staged;
  }

  #counted<T>(fn: () => T): T {
    const before = this.#gpu.buffers.buffersCreated;
    try {
      return fn();
    } finally {
      this.#created += this.#gpu.buffers.buffersCreated - before;
    }
  }

  #bufferOf(node: Node): GPUBuffer {
    return this.#buffers[this.#memory.bufferOf.get(node.id)!];
  }

  #write(node: Node, data: StorageArray): void {
    // Deno 2.9 panics on an empty writeBuffer: 0-size tensors have nothing to write.
    if (data.byteLength > 0) this.#gpu.device.queue.writeBuffer(this.#bufferOf(node), 0, data);
  }

  #alive(what: string): void {
    if (this.#destroyed) throw new Error(`cannot ${what}: the executable was destroyed`);
  }

  #outputNode(name: string): Node {
    const node = this.graph.outputs[name];
    if (node === undefined) {
      throw new Error(
        `unknown output "${name}" (outputs: ${Object.keys(this.graph.outputs).join(", ")})`,
      );
    }
    return node;
  }

  async #readNode(node: Node): Promise<HostArray> {
    const bytes = this.program.tensors.get(node.id)!.bytes;
    const buffer = this.#bufferOf(node);
    const data = await this.#counted(() => readBuffer(this.#gpu, buffer, { byteLength: bytes }));
    return fromBytes(node.dtype, data, bytes / 4);
  }

  /** Copies a tensor into a staging buffer in `encoder`; the returned function maps it once submitted. */
  #stage(node: Node, encoder: GPUCommandEncoder): () => Promise<HostArray> {
    const bytes = this.program.tensors.get(node.id)!.bytes;
    const gpu = this.#gpu;
    const staging = this.#counted(() =>
      gpu.buffers.acquire(bufferBytes(bytes), GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST)
    );
    if (bytes > 0) encoder.copyBufferToBuffer(this.#bufferOf(node), 0, staging, 0, bytes);
    return async () => {
      try {
        if (bytes === 0) return fromBytes(node.dtype, new ArrayBuffer(0), 0);
        await staging.mapAsync(GPUMapMode.READ, 0, bytes);
        return fromBytes(node.dtype, staging.getMappedRange(0, bytes).slice(0), bytes / 4);
      } finally {
        gpu.buffers.release(staging);
      }
    };
  }
}
