/**
 * The cpu backend: the float64 reference interpreter (rounding to f32) behind
 * the {@link Backend} interface. It runs the graph op by op, so the pipeline
 * stops before fusion.
 *
 * @module
 */
import { unfusedKernelCount } from "../../compiler/compile.ts";
import type { Backend } from "../backend.ts";
import { createCpuExecutable } from "./executable.ts";

/**
 * The cpu backend.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { cpuBackend } from "./backend.ts";
 * import { compile } from "../compile.ts";
 * import { trace } from "../../compiler/trace.ts";
 * const exe = await compile(trace((x) => x.mul(2), [{ name: "x", shape: [2] }]), { backend: cpuBackend });
 * deepStrictEqual(await (await exe.run({ x: [1, 2] })).read("out"), new Float32Array([2, 4]));
 * ```
 */
export const cpuBackend: Backend = {
  name: "cpu",
  capabilities: { fuses: false },
  compile: (state) =>
    Promise.resolve(
      createCpuExecutable(state.graph, { kernelsPerRun: unfusedKernelCount(state.graph) }),
    ),
};
