/**
 * Kernel fusion: decides which nodes get a buffer and which are computed
 * inside the kernels that read them, and groups the graph into kernels.
 *
 * - Elementwise ops, casts, compares, `where`, fills, `iota`, `random`,
 *   `dropout` and the shape ops (broadcast, reshape, permute, slice, pad,
 *   concat, as index arithmetic) are *inline*: a connected region of them
 *   becomes one kernel, or the prologue of the reduction, row-wise, gather or
 *   scatter kernel that reads it.
 * - A node gets a buffer when it is a graph output, when kernels in two
 *   different groups read it (unless recomputing it is trivial: shape ops,
 *   fills, iota), or when a matmul must read it from memory.
 * - A matmul reads its operands in place through reshape / transpose / slice /
 *   batch-broadcast views; only operands no stride pattern describes are
 *   copied.
 * - A matmul whose only reader is one elementwise region that reads it at the
 *   same flat index (bias, per-row or per-column scalings, residual, GELU)
 *   becomes that region's epilogue: one kernel instead of two.
 *
 * @module
 */
import { type Graph, graphNodes, makeNode, type Node, sizeOf } from "../ir.ts";
import { rewrite, type Rule } from "../rewrite.ts";
import { transposeLast } from "../../ops/_build.ts";
import { getOp } from "../../ops/registry.ts";
import { type Family, familyOf } from "../wgsl/_families.ts";
import { type MatmulOperand, matmulOperand, stridedView } from "../wgsl/_strided.ts";
import { SHAPE_OPS } from "../wgsl/_values.ts";

/** One kernel of a fusion plan. */
export interface KernelGroup {
  /** The kernel family: `elementwise`, or the kernel op's family. */
  readonly kind: "elementwise" | Exclude<Family, "storage" | "inline">;
  /** The nodes the kernel writes (one today; the type allows more). */
  readonly roots: readonly Node[];
  /** For `matmul` groups: the matmul; when it differs from `roots[0]` the root is its epilogue. */
  readonly matmul?: Node;
}

/** The result of {@link fuse}: the graph, its kernels in execution order, and which nodes have buffers. */
export interface FusionPlan {
  readonly graph: Graph;
  readonly groups: readonly KernelGroup[];
  /** Ids of nodes with a buffer: storage leaves and kernel roots. */
  readonly materialized: ReadonlySet<number>;
}

/** Options of {@link fuse}. */
export interface FuseOptions {
  /** Most storage buffers one kernel may bind (default 8, WebGPU's guaranteed minimum). */
  readonly maxBindings?: number;
}

const CHEAP = new Set([...SHAPE_OPS, "const", "iota"]);

function isSwapLast(perm: readonly number[]): boolean {
  const r = perm.length;
  return r >= 2 && perm[r - 2] === r - 1 && perm[r - 1] === r - 2 &&
    perm.slice(0, r - 2).every((p, i) => p === i);
}

/**
 * `(A·B)ᵀ → Bᵀ·Aᵀ` for a matmul read only by the transpose (weight gradients
 * come out of autodiff this way); the transposes then fold into the matmul's
 * indexing, so no copy kernel is needed.
 */
function transposedMatmulRule(uses: ReadonlyMap<number, number>): Rule {
  return {
    name: "transpose-of-matmul",
    pattern: {
      op: "permute",
      where: (n) =>
        isSwapLast(n.attrs.perm as number[]) && n.inputs[0].op === "matmul" &&
        uses.get(n.inputs[0].id) === 1,
    },
    rewrite: ({ node }) => {
      const [a, b] = node.inputs[0].inputs;
      return makeNode("matmul", [transposeLast(b), transposeLast(a)], {});
    },
  };
}

/**
 * How a matmul reads `operand`: in place through a strided view of a base
 * node, or (when no stride pattern fits) from the operand's own buffer.
 */
export function matmulRead(operand: Node): MatmulOperand {
  const view = stridedView(operand);
  const [rows, cols] = operand.shape.slice(-2);
  return (view && matmulOperand(view)) ??
    { base: operand, trans: false, ld: cols, batchStride: rows * cols, offset: 0 };
}

function useCounts(nodes: readonly Node[]): Map<number, number> {
  const uses = new Map<number, number>();
  for (const n of nodes) {
    for (const i of new Set(n.inputs)) uses.set(i.id, (uses.get(i.id) ?? 0) + 1);
  }
  return uses;
}

/**
 * Plans the kernels of a graph.
 *
 * @example
 * ```ts
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const g = trace((x) => x.exp().mul(2).add(1), [{ name: "x", shape: [4] }]);
 * console.log(fuse(g).groups.length); // 1
 * ```
 */
export function fuse(graph: Graph, options: FuseOptions = {}): FusionPlan {
  const maxBindings = options.maxBindings ?? 8;
  const prepared = rewrite(graph, [transposedMatmulRule(useCounts(graphNodes(graph)))]);
  const forced = new Set<number>();
  for (let round = 0;; round++) {
    const plan = planOnce(prepared, forced, maxBindings);
    const over = plan.groups.find((g) => bindingCount(g, plan.materialized) > maxBindings);
    if (over === undefined) return plan;
    const split = pickSplit(over, plan.materialized);
    if (split === undefined || round > 1000) {
      throw new Error(
        `fuse: kernel for ${over.roots[0].op}#${over.roots[0].id} needs ` +
          `${bindingCount(over, plan.materialized)} buffers, more than the limit of ${maxBindings}`,
      );
    }
    forced.add(split.id);
  }
}

function planOnce(graph: Graph, forced: ReadonlySet<number>, maxBindings: number): FusionPlan {
  const nodes = graphNodes(graph);
  const consumers = new Map<number, Node[]>();
  for (const n of nodes) {
    for (const i of new Set(n.inputs)) consumers.set(i.id, [...(consumers.get(i.id) ?? []), n]);
  }
  const outputs = new Set(Object.values(graph.outputs).map((n) => n.id));
  const mat = new Set<number>();
  const force = new Set(forced);
  // Kernels each inline node is computed in (by root id); filled outputs-first.
  const owners = new Map<number, Set<number>>();
  const sitesOf = (n: Node) => {
    const sites = new Set<number>();
    for (const c of consumers.get(n.id) ?? []) {
      for (const s of mat.has(c.id) ? [c.id] : owners.get(c.id) ?? []) sites.add(s);
    }
    return sites;
  };
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k];
    const family = familyOf(n);
    if (family !== "inline") {
      mat.add(n.id);
      if (family === "matmul") {
        for (const operand of n.inputs) force.add(matmulRead(operand).base.id);
      }
      continue;
    }
    const sites = sitesOf(n);
    if (outputs.has(n.id) || force.has(n.id) || (sites.size > 1 && !CHEAP.has(n.op))) mat.add(n.id);
    else owners.set(n.id, sites);
  }
  const epilogues = matmulEpilogues(
    nodes,
    { consumers, outputs, mat, owners, sitesOf },
    maxBindings,
  );
  const groups: KernelGroup[] = [];
  for (const n of nodes) {
    const family = familyOf(n);
    if (!mat.has(n.id) || family === "storage") continue;
    if (family === "inline") {
      const matmul = epilogues.get(n.id);
      groups.push(
        matmul ? { kind: "matmul", roots: [n], matmul } : { kind: "elementwise", roots: [n] },
      );
    } else {
      groups.push(
        family === "matmul"
          ? { kind: "matmul", roots: [n], matmul: n }
          : { kind: family, roots: [n] },
      );
    }
  }
  return { graph, groups, materialized: mat };
}

interface PlanState {
  consumers: Map<number, Node[]>;
  outputs: Set<number>;
  mat: Set<number>;
  owners: Map<number, Set<number>>;
  sitesOf: (n: Node) => Set<number>;
}

/** Reads a flat index of its operand at its own flat index. */
function keepsIndex(n: Node): boolean {
  return n.op === "reshape" || n.op === "dropout" || getOp(n.op).wgsl?.kind === "elementwise";
}

/** Matmuls that become the epilogue of an elementwise root: root id → matmul. Updates `mat`. */
function matmulEpilogues(
  nodes: readonly Node[],
  s: PlanState,
  maxBindings: number,
): Map<number, Node> {
  const result = new Map<number, Node>();
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const m of nodes) {
    if (m.op !== "matmul" || s.outputs.has(m.id)) continue;
    const sites = s.sitesOf(m);
    if (sites.size !== 1) continue;
    const root = byId.get([...sites][0])!;
    const fits = familyOf(root) === "inline" && root.dtype === "f32" && !result.has(root.id) &&
      sizeOf(root.shape) === sizeOf(m.shape);
    if (!fits || !pathsKeepIndex(m, root, s)) continue;
    const reads = regionReads([root], s.mat, m);
    if (reads.some((r) => r.dtype !== "f32") || reads.length + 3 > maxBindings) continue;
    s.mat.delete(m.id);
    result.set(root.id, m);
  }
  return result;
}

function pathsKeepIndex(m: Node, root: Node, s: PlanState): boolean {
  const stack = [...(s.consumers.get(m.id) ?? [])];
  const seen = new Set<number>();
  while (stack.length > 0) {
    const c = stack.pop()!;
    if (seen.has(c.id)) continue;
    seen.add(c.id);
    if (!keepsIndex(c) || (c.op === "dropout" && c.inputs[1] === m)) return false;
    if (c === root) continue;
    if (s.mat.has(c.id)) return false;
    stack.push(...(s.consumers.get(c.id) ?? []));
  }
  return true;
}

/**
 * The materialized nodes a kernel rooted at `roots` reads: a kernel op reads
 * its operands' regions, an inline root its own; `acc` (a fused matmul) is
 * not read from memory.
 */
export function regionReads(
  roots: readonly Node[],
  materialized: ReadonlySet<number>,
  acc?: Node,
): Node[] {
  const reads = new Map<number, Node>();
  const seen = new Set<number>();
  const stack = roots.flatMap((r) => [...r.inputs]);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n.id) || n === acc) continue;
    seen.add(n.id);
    if (materialized.has(n.id)) reads.set(n.id, n);
    else stack.push(...n.inputs);
  }
  return [...reads.values()];
}

/** The nodes a group reads from buffers (matmul operands through their views). */
export function groupReads(group: KernelGroup, materialized: ReadonlySet<number>): Node[] {
  if (group.kind !== "matmul") return regionReads(group.roots, materialized);
  const bases = group.matmul!.inputs.map((op) => matmulRead(op).base);
  const epilogue = group.roots[0] === group.matmul
    ? []
    : regionReads(group.roots, materialized, group.matmul);
  return [...bases, ...epilogue];
}

function bindingCount(group: KernelGroup, materialized: ReadonlySet<number>): number {
  const reads = new Set(groupReads(group, materialized).map((n) => n.id));
  return reads.size + group.roots.length;
}

/** The inline node of an over-wide group whose own reads are the most, short of all of them. */
function pickSplit(group: KernelGroup, materialized: ReadonlySet<number>): Node | undefined {
  const total = groupReads(group, materialized).length;
  let best: { node: Node; reads: number } | undefined;
  const seen = new Set<number>();
  const stack = group.roots.flatMap((r) => [...r.inputs]);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n.id) || materialized.has(n.id)) continue;
    seen.add(n.id);
    const reads = regionReads([n], materialized).length;
    if (reads > 1 && reads < total && (best === undefined || reads > best.reads)) {
      best = { node: n, reads };
    }
    stack.push(...n.inputs);
  }
  return best?.node;
}
