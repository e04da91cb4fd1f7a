/**
 * Scheduling: a fusion plan becomes a Program, backend-neutral — the
 * kernels in execution order as kernel IR programs, the node bound at each
 * buffer, and every tensor that needs a buffer with its size and role. The
 * memory plan (`memory_plan.ts`) then decides which tensors share buffers,
 * and a backend renders and runs the kernels.
 *
 * @module
 */
import { type Graph, type Node, sizeOf, topoSort } from "./ir.ts";
import { describeNode } from "./print.ts";
import { graphUpdates } from "./graph_updates.ts";
import type { FusionPlan } from "./fusion/plan.ts";
import type { KernelProgram } from "./kernel_ir/ir.ts";
import { type LowerOptions, lowerPlan } from "./kernels/lower.ts";

/**
 * What a buffer holds across runs.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const program = schedule(fuse(trace((x) => x.exp().sum(), [{ name: "x", shape: [8] }])));
 * deepStrictEqual([...program.tensors.values()].map((t) => t.role), ["input", "output"]); // exp(x) is fused away
 * ```
 */
export type TensorRole = "input" | "param" | "const" | "output" | "temp";

/**
 * A tensor that lives in a GPU buffer.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const program = schedule(fuse(trace((x) => x.exp().sum(), [{ name: "x", shape: [8] }])));
 * deepStrictEqual([...program.tensors.values()].map((t) => [t.node.op, t.role, t.bytes]), [
 *   ["input", "input", 32],
 *   ["sum", "output", 4],
 * ]);
 * ```
 */
export interface TensorInfo {
  /** The node whose value it holds. */
  readonly node: Node;
  /** Bytes of its data (4 per element; bool is stored as u32). */
  readonly bytes: number;
  /** Inputs, params, consts and outputs keep their own buffer; temps share by liveness. */
  readonly role: TensorRole;
}

/**
 * One dispatch of a program.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, match } from "node:assert/strict";
 * import { schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const [step] = schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [8] }]))).steps;
 * match(step.program.family, /^elementwise$/);
 * deepStrictEqual(step.nodes.map((n) => n.op).sort(), ["exp", "input"]); // two bindings: x and exp(x)
 * deepStrictEqual(step.outputs.map((n) => n.op), ["exp"]);
 * ```
 */
export interface Step {
  /** The kernel, in the kernel IR. */
  readonly program: KernelProgram;
  /** The tensor bound at each buffer. */
  readonly nodes: readonly Node[];
  /** The tensors the kernel writes. */
  readonly outputs: readonly Node[];
}

/**
 * A scheduled graph, ready for the runtime.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const program = schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [2] }])));
 * strictEqual(program.steps.length, 1);
 * strictEqual(program.steps[0].outputs[0], program.graph.outputs.out); // the one kernel writes the output
 * strictEqual(program.tensors.size, 2);
 * deepStrictEqual(program.updates, {}); // no output replaces a param
 * ```
 */
export interface Program {
  /** The graph it computes (after fusion's rewrites). */
  readonly graph: Graph;
  /** The kernels, in dispatch order. */
  readonly steps: readonly Step[];
  /** Every tensor with a buffer, by node id. */
  readonly tensors: ReadonlyMap<number, TensorInfo>;
  /** Output name → param name it replaces after each run (from `graph.meta.updates`). */
  readonly updates: Readonly<Record<string, string>>;
}

/**
 * Options of {@link schedule}.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { schedule, type ScheduleOptions } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const options: ScheduleOptions = {
 *   checkSize: (bytes, what) => {
 *     if (bytes > 16) throw new Error(`${what} is too large`);
 *   },
 * };
 * schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [4] }])), options); // 16 bytes: fits
 * throws(() => schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [8] }])), options), /too large/);
 * ```
 */
export interface ScheduleOptions extends LowerOptions {
  /** Throws when a tensor of `bytes` cannot be bound; `what` names the node (e.g. the device's check). */
  readonly checkSize?: (bytes: number, what: string) => void;
}

/**
 * Lowers every group of `plan` and lists the tensors the program needs.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const program = schedule(fuse(trace((x) => x.exp().sum(), [{ name: "x", shape: [8] }])));
 * strictEqual(program.steps.length, 1);
 * strictEqual(program.tensors.size, 2);
 * ```
 */
export function schedule(plan: FusionPlan, options: ScheduleOptions = {}): Program {
  const graph = plan.graph;
  const outputs = new Set(Object.values(graph.outputs).map((n) => n.id));
  const tensors = new Map<number, TensorInfo>();
  const add = (node: Node) => {
    if (tensors.has(node.id)) return;
    const role: TensorRole = node.op === "input" || node.op === "param"
      ? node.op
      : node.op === "const" && node.attrs.data !== undefined
      ? "const"
      : outputs.has(node.id)
      ? "output"
      : "temp";
    const bytes = sizeOf(node.shape) * 4;
    options.checkSize?.(bytes, `tensor ${describeNode(node)}`);
    tensors.set(node.id, { node, bytes, role });
  };
  const used = new Set(topoSort(Object.values(graph.outputs)).map((n) => n.id));
  for (const input of graph.inputs) if (used.has(input.id)) add(input);
  for (const param of graph.params) add(param);
  const steps = lowerPlan(plan, options).map((lowered): Step => {
    lowered.nodes.forEach(add);
    return { program: lowered.program, nodes: lowered.nodes, outputs: lowered.outputs };
  });
  for (const node of Object.values(graph.outputs)) add(node);
  return { graph, steps, tensors, updates: graphUpdates(graph) };
}

/**
 * A readable listing of a program: one line per kernel with its buffers;
 * `name` says how a step is named (by default its family; a backend may
 * pass its cache key).
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { printProgram, schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const text = printProgram(schedule(fuse(trace((x) => x.exp(), [{ name: "x", shape: [2] }]))));
 * match(text, /^program: 1 kernels, 2 tensors\n {2}0 elementwise \[1x1x1\]/);
 * match(text, /writes exp#\d+ f32\[2\]; reads input "x" f32\[2\]$/);
 * ```
 */
export function printProgram<S extends Step>(
  program: Omit<Program, "steps"> & { readonly steps: readonly S[] },
  name: (step: S) => string = (step) => step.program.family,
): string {
  const lines = program.steps.map((step, i) => {
    const reads = step.nodes.filter((n) => !step.outputs.includes(n)).map(describeNode);
    return `${String(i).padStart(3)} ${name(step)} [${step.program.dispatch.join("x")}]\n` +
      `      ${step.program.label}\n      writes ${step.outputs.map(describeNode).join(", ")}` +
      (reads.length ? `; reads ${reads.join(", ")}` : "");
  });
  return `program: ${program.steps.length} kernels, ${program.tensors.size} tensors\n${
    lines.join("\n")
  }`;
}
