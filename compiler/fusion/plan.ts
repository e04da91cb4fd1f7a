/**
 * The fusion plan's types: kernels as groups of graph nodes. It is what
 * `fuse` produces and what each backend lowers, one kernel per group.
 *
 * @module
 */
import type { Graph, Node } from "../ir.ts";
import type { Family } from "./families.ts";

/**
 * One kernel of a fusion plan.
 *
 * @example
 * ```ts
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const [group] = fuse(trace((x) => x.softmax(-1).mul(2), [{ name: "x", shape: [3, 5] }])).groups;
 * console.log(group.kind, group.op?.op, group.epilogue?.op); // rowwise softmax mul
 * ```
 */
export interface KernelGroup {
  /** The kernel family: `elementwise`, or the kernel op's family. */
  readonly kind: "elementwise" | Exclude<Family, "storage" | "inline">;
  /** The nodes the kernel writes. */
  readonly roots: readonly Node[];
  /** The kernel op (matmul, reduction, row-wise, gather, scatter); absent for elementwise groups. */
  readonly op?: Node;
  /** An elementwise root computed from the op's value (`acc`) at the same flat index. */
  readonly epilogue?: Node;
  /** A matmul computed by the direct kernel, which reads its operands through index arithmetic. */
  readonly direct?: boolean;
  /** Reductions merged into one kernel (same operand shape and axes): one group per reduction. */
  readonly lanes?: readonly KernelGroup[];
}

/**
 * The result of {@link fuse}: the graph, its kernels in execution order, and
 * which nodes have buffers.
 *
 * @example
 * ```ts
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const plan = fuse(trace((x) => x.exp().sum(), [{ name: "x", shape: [4] }]));
 * console.log(plan.groups.length, plan.materialized.size); // 1 2
 * ```
 */
export interface FusionPlan {
  /** The graph the plan is for (after fusion's own rewrites). */
  readonly graph: Graph;
  /** The kernels, in an order that respects their dependencies. */
  readonly groups: readonly KernelGroup[];
  /** Ids of nodes with a buffer: storage leaves and kernel roots. */
  readonly materialized: ReadonlySet<number>;
}
