/**
 * The WebGPU backend: schedules the fusion plan into WGSL kernels, compiles
 * every pipeline, and binds the program to a device.
 *
 * @module
 */
import { DEFAULT_RANDOM_PROJECTIONS, type RandomProjections } from "../../compiler/fusion/fuse.ts";
import type { Backend } from "../backend.ts";
import type { GpuContext } from "./device.ts";
import { createWebGpuExecutable } from "./executable.ts";
import { printProgram, schedule } from "../../compiler/schedule.ts";
import { renderProgram } from "./render_program.ts";
import type { Kernel } from "./wgsl/kernel.ts";
import type { MatmulShape } from "../../compiler/kernels/lower.ts";
import { matmulTilesFor } from "../../compiler/kernels/matmul.ts";

/**
 * Options of {@link webgpuBackend}.
 *
 * @example
 * ```ts
 * import type { WebGpuBackendOptions } from "./backend.ts";
 * const options: WebGpuBackendOptions = { randomProjections: "fused" };
 * ```
 */
export interface WebGpuBackendOptions {
  /** Rewrites each kernel after lowering (instrumentation; tests use it to break one). */
  readonly mapKernel?: (kernel: Kernel) => Kernel;
  /**
   * VeRA's projections (`random` nodes): `"shared"` generates each once per
   * run into a buffer every matmul reads; `"fused"` generates the elements
   * inside each matmul's operand loads and allocates nothing. Same bits
   * either way. Default `DEFAULT_RANDOM_PROJECTIONS`, the faster on the
   * measured adapter (BENCHMARKS.md).
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
 * The WebGPU backend on a device. Every kernel is compiled (cached by key)
 * and every buffer allocated when compiling, so runs only write inputs and
 * submit; a tensor too large to bind, or a kernel that fails to compile, is
 * an error then, naming the node and the kernel key.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { webgpuBackend } from "./backend.ts";
 * import { requestGpu } from "./device.ts";
 * import { compile } from "../compile.ts";
 * import { trace } from "../../compiler/trace.ts";
 * const backend = webgpuBackend(await requestGpu());
 * const exe = await compile(trace((x) => x.exp().sum(), [{ name: "x", shape: [3] }]), { backend });
 * strictEqual(exe.program?.steps.length, 1);
 * ```
 */
export function webgpuBackend(gpu: GpuContext, options: WebGpuBackendOptions = {}): Backend {
  return {
    name: "webgpu",
    capabilities: {
      fuses: true,
      fusion: {
        maxBindings: gpu.limits.maxStorageBuffersPerShaderStage,
        randomProjections: options.randomProjections ?? DEFAULT_RANDOM_PROJECTIONS,
      },
    },
    async compile(state, { debug, onKernels }) {
      if (state.plan === undefined) throw new Error(`the webgpu backend needs the pass "fuse"`);
      const scheduled = schedule(state.plan, {
        tiles: (shape) => tilesFor(gpu, shape),
        checkSize: gpu.checkBindingSize,
      });
      const program = renderProgram(scheduled, options.mapKernel);
      debug?.("schedule", printProgram(program, (step) => step.kernel.key));
      onKernels?.(program.steps.length);
      const before = gpu.pipelines.pipelinesCreated;
      // One at a time: concurrent compilations would interleave their error scopes.
      for (const step of program.steps) await gpu.pipelines.get(step.kernel);
      return await createWebGpuExecutable(gpu, program, {
        pipelinesCreated: gpu.pipelines.pipelinesCreated - before,
      });
    },
  };
}
