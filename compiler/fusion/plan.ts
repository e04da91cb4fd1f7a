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
 * import { strictEqual } from "node:assert/strict";
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const [group] = fuse(trace((x) => x.softmax(-1).mul(2), [{ name: "x", shape: [3, 5] }])).groups;
 * strictEqual(group.kind, "rowwise");
 * strictEqual(group.op?.op, "softmax");
 * strictEqual(group.epilogue?.op, "mul");
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
 * import { strictEqual } from "node:assert/strict";
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const plan = fuse(trace((x) => x.exp().sum(), [{ name: "x", shape: [4] }]));
 * strictEqual(plan.groups.length, 1); // exp fused into the sum
 * strictEqual(plan.materialized.size, 2); // x and the output
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
