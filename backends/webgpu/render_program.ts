/**
 * A scheduled program (`compiler/schedule.ts`) with every kernel rendered to
 * WGSL: what the WebGPU executable dispatches.
 *
 * @module
 */
import type { Program, Step } from "../../compiler/schedule.ts";
import type { Kernel } from "./wgsl/kernel.ts";
import { toKernel } from "./wgsl/render.ts";

/**
 * A step with its rendered kernel.
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { schedule } from "../../compiler/schedule.ts";
 * import { fuse } from "../../compiler/fusion/fuse.ts";
 * import { trace } from "../../compiler/trace.ts";
 * import { renderProgram } from "./render_program.ts";
 * const [step] = renderProgram(schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [8] }])))).steps;
 * match(step.kernel.key, /^elementwise:/);
 * ```
 */
export interface RenderedStep extends Step {
  /** The kernel as the runtime dispatches it. */
  readonly kernel: Kernel;
}

/**
 * A program whose steps carry their rendered kernels.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { schedule } from "../../compiler/schedule.ts";
 * import { fuse } from "../../compiler/fusion/fuse.ts";
 * import { trace } from "../../compiler/trace.ts";
 * import { type RenderedProgram, renderProgram } from "./render_program.ts";
 * const program: RenderedProgram = renderProgram(schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [2] }]))));
 * strictEqual(program.steps[0].kernel.wgsl.includes("fn main"), true);
 * ```
 */
export interface RenderedProgram extends Program {
  /** The steps, in dispatch order. */
  readonly steps: readonly RenderedStep[];
}

/**
 * Renders every step's kernel program to WGSL; `mapKernel` rewrites each
 * rendered kernel (instrumentation, and tests that break one on purpose).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { schedule } from "../../compiler/schedule.ts";
 * import { fuse } from "../../compiler/fusion/fuse.ts";
 * import { trace } from "../../compiler/trace.ts";
 * import { renderProgram } from "./render_program.ts";
 * const program = schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [2] }])));
 * const labelled = renderProgram(program, (k) => ({ ...k, label: "mine" }));
 * strictEqual(labelled.steps[0].kernel.label, "mine");
 * ```
 */
export function renderProgram(
  program: Program,
  mapKernel: (kernel: Kernel) => Kernel = (kernel) => kernel,
): RenderedProgram {
  return {
    ...program,
    steps: program.steps.map((step) => ({ ...step, kernel: mapKernel(toKernel(step.program)) })),
  };
}
