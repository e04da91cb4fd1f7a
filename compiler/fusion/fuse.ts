/**
 * Kernel fusion: decides which nodes get a buffer and which are computed
 * inside the kernels that read them, and groups the graph into kernels.
 *
 * - Elementwise ops, casts, compares, `where`, fills, `iota`, `random`,
 *   `dropout` and the shape ops (broadcast, reshape, permute, slice, pad,
 *   concat, as index arithmetic) are *inline*: a connected region of them
 *   becomes one kernel, or the prologue of the reduction, row-wise, gather or
 *   scatter kernel that reads it.
 * - A node gets a buffer when it is a graph output, when a matmul must read
 *   it from memory, or when kernels in two different groups read it —
 *   unless recomputing it costs at most two ops (a causal mask, `max(n, 1)`),
 *   in which case each reader recomputes it.
 * - A matmul reads its operands in place through reshape / transpose / slice /
 *   batch-broadcast views (`(A·B)ᵀ` is first rewritten to `Bᵀ·Aᵀ`, so weight
 *   gradients need no transpose). A small matmul whose operand no stride
 *   pattern describes (attention's head split and merge) uses the direct
 *   kernel, which reads it through index arithmetic; a large one copies it.
 * - Epilogues: a matmul, reduction or row-wise op read by one elementwise
 *   region at its own flat index (bias, per-row / per-column scalings,
 *   residual, GELU, a layerNorm's affine, a loss's mean) computes that region
 *   in its store. The op's own value is still written when others read it
 *   (not by the tiled matmul, which has one output).
 * - Merging: elementwise kernels over as many elements, and reductions over
 *   the same operand shape and axes, that can run at the same point become
 *   one kernel with several outputs.
 * - A kernel never binds more than `maxBindings` buffers: an over-wide region
 *   gets a buffer in the middle.
 * - `random` nodes (VeRA's projections) follow `randomProjections`: `shared`
 *   gives each one buffer, generated once per run and read by every kernel
 *   that uses it; `fused` gives it none: every reader recomputes the
 *   elements it needs, a matmul inside its operand loads.
 *
 * @module
 */
import { type Graph, graphNodes, makeNode, type Node, sizeOf } from "../ir.ts";
import { rewrite, type Rule } from "../rewrite.ts";
import { transposeLast } from "../../ops/build.ts";
import { familyOf } from "./families.ts";
import type { FusionPlan, KernelGroup } from "./plan.ts";
import { matmulOperand, stridedView } from "./strided.ts";
import { bindingCount, keepsIndex, pickSplit, regionReads } from "./regions.ts";
import { mergeSiblings } from "./merge.ts";
import * as ops from "../../ops/mod.ts";

/**
 * Options of {@link fuse}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { fuse, type FuseOptions } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const names = ["a", "b", "c", "d", "e", "f", "g", "h"];
 * const g = trace((...xs) => xs.reduce((sum, x) => sum.add(x)), names.map((name) => ({ name, shape: [3] })));
 * strictEqual(fuse(g).groups.length, 2); // 8 inputs and the output: 9 buffers, more than the default 8
 * const options: FuseOptions = { maxBindings: 16 };
 * strictEqual(fuse(g, options).groups.length, 1);
 * ```
 */
export interface FuseOptions {
  /** Most storage buffers one kernel may bind (default 8, WebGPU's guaranteed minimum). */
  readonly maxBindings?: number;
  /** How `random` nodes read by several kernels are computed (default {@link DEFAULT_RANDOM_PROJECTIONS}). */
  readonly randomProjections?: RandomProjections;
}

/**
 * Where a `random` node read by several kernels is computed: `shared`, once
 * per run into a buffer they all read; `fused`, inside each reader (a matmul
 * generates its operand's elements in its loads), with no buffer at all.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fuse, type RandomProjections } from "./fuse.ts";
 * import { randomUniform, trace } from "../trace.ts";
 * const g = trace((x) => {
 *   const p = randomUniform([3, 3], { seed: 0, stream: 1, bound: 1 }); // read by two matmuls
 *   return { a: x.matmul(p), b: x.exp().matmul(p) };
 * }, [{ name: "x", shape: [2, 3] }]);
 * const kernels = (mode: RandomProjections) => fuse(g, { randomProjections: mode }).groups.map((k) => k.kind);
 * deepStrictEqual(kernels("shared"), ["elementwise", "matmul", "elementwise", "matmul"]); // p, then its readers
 * deepStrictEqual(kernels("fused"), ["matmul", "elementwise", "matmul"]); // no kernel, no buffer for p
 * ```
 */
export type RandomProjections = "shared" | "fused";

/**
 * The faster of the two on the measured adapter (BENCHMARKS.md, "VeRA
 * projections: shared buffer vs fused").
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { DEFAULT_RANDOM_PROJECTIONS } from "./fuse.ts";
 * strictEqual(DEFAULT_RANDOM_PROJECTIONS, "shared");
 * ```
 */
export const DEFAULT_RANDOM_PROJECTIONS: RandomProjections = "shared";

/**
 * Matmuls up to this many multiply-adds whose operands no stride pattern
 * describes (attention's head split and merge) use the direct kernel, which
 * reads them through index arithmetic, instead of copying them for the
 * tiled kernel.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { DIRECT_MATMUL_LIMIT } from "./fuse.ts";
 * strictEqual(DIRECT_MATMUL_LIMIT >= 64 * 64 * 64, true);
 * ```
 */
export const DIRECT_MATMUL_LIMIT = 2 ** 22;

/** Inline nodes whose recomputation costs at most this many ops are recomputed by each reader. */
const RECOMPUTE_LIMIT = 2;

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
      return makeNode(ops.matmul, [transposeLast(b), transposeLast(a)], {});
    },
  };
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
 * import { strictEqual } from "node:assert/strict";
 * import { fuse } from "./fuse.ts";
 * import { trace } from "../trace.ts";
 * const g = trace((x) => x.exp().mul(2).add(1), [{ name: "x", shape: [4] }]);
 * strictEqual(fuse(g).groups.length, 1);
 * ```
 */
export function fuse(graph: Graph, options: FuseOptions = {}): FusionPlan {
  const maxBindings = options.maxBindings ?? 8;
  const fusedRandom = (options.randomProjections ?? DEFAULT_RANDOM_PROJECTIONS) === "fused";
  const prepared = rewrite(graph, [transposedMatmulRule(useCounts(graphNodes(graph)))]);
  const forced = new Set<number>();
  for (let round = 0;; round++) {
    const plan = planOnce(prepared, forced, { maxBindings, fusedRandom });
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

interface PlanState {
  readonly nodes: readonly Node[];
  readonly position: ReadonlyMap<number, number>;
  readonly consumers: ReadonlyMap<number, readonly Node[]>;
  readonly outputs: ReadonlySet<number>;
  readonly mat: Set<number>;
  /** Kernels (by root id) each inline node is computed in. */
  readonly owners: Map<number, Set<number>>;
  readonly direct: Set<number>;
  /** `random` nodes are recomputed by their readers, never given a buffer to share. */
  readonly fusedRandom: boolean;
  /** Nodes a matmul reads from memory through a view (its operands' bases). */
  readonly matmulBases: Set<number>;
}

function sitesOf(n: Node, s: PlanState): Set<number> {
  const sites = new Set<number>();
  for (const c of s.consumers.get(n.id) ?? []) {
    for (const site of s.mat.has(c.id) ? [c.id] : s.owners.get(c.id) ?? []) sites.add(site);
  }
  return sites;
}

/** Ops recomputing `n` inline would cost (kernel ops and leaves are free: they are read). */
function inlineCost(n: Node, memo: Map<number, number>): number {
  const known = memo.get(n.id);
  if (known !== undefined) return known;
  const family = familyOf(n);
  let cost = 0;
  if (family === "inline") {
    const own = n.op === "random" || n.op === "dropout"
      ? 20
      : n.def.kind === "shape" || n.inputs.length === 0
      ? 0
      : 1;
    cost = own + n.inputs.reduce((sum, i) => sum + inlineCost(i, memo), 0);
  }
  memo.set(n.id, cost);
  return cost;
}

/** The non-shape nodes under a chain of shape ops (what a direct matmul reads from memory). */
function shapeBases(n: Node): Node[] {
  return n.def.kind === "shape" ? n.inputs.flatMap(shapeBases) : [n];
}

/** Decides, outputs first, which nodes get buffers; matmuls pick tiled or direct. */
function materialize(s: PlanState, forced: ReadonlySet<number>): void {
  const force = new Set(forced);
  const costs = new Map<number, number>();
  // A fused random base is generated by the matmul that reads it, not read from memory.
  const read = (base: Node) => {
    if (!(s.fusedRandom && base.op === "random")) force.add(base.id);
    s.matmulBases.add(base.id);
  };
  for (let k = s.nodes.length - 1; k >= 0; k--) {
    const n = s.nodes[k];
    const family = familyOf(n);
    if (family !== "inline") {
      s.mat.add(n.id);
      if (family !== "matmul") continue;
      const reads = n.inputs.map((operand) => {
        const view = stridedView(operand);
        return view && matmulOperand(view);
      });
      const macs = sizeOf(n.shape) * n.inputs[0].shape.at(-1)!;
      if (reads.every((r) => r !== null) || macs > DIRECT_MATMUL_LIMIT) {
        n.inputs.forEach((operand, i) => read(reads[i]?.base ?? operand));
      } else {
        s.direct.add(n.id);
        n.inputs.flatMap(shapeBases).forEach(read);
      }
      continue;
    }
    const sites = sitesOf(n, s);
    // Shape ops pass their readers down to their operand, which decides for
    // itself; a fused random is recomputed by each reader.
    const recomputed = n.def.kind === "shape" || (s.fusedRandom && n.op === "random");
    const shared = sites.size > 1 && !recomputed && inlineCost(n, costs) > RECOMPUTE_LIMIT;
    if (s.outputs.has(n.id) || force.has(n.id) || shared) s.mat.add(n.id);
    else s.owners.set(n.id, sites);
  }
}

function planOnce(
  graph: Graph,
  forced: ReadonlySet<number>,
  options: { maxBindings: number; fusedRandom: boolean },
): FusionPlan {
  const { maxBindings, fusedRandom } = options;
  const nodes = graphNodes(graph);
  const consumers = new Map<number, Node[]>();
  for (const n of nodes) {
    for (const i of new Set(n.inputs)) consumers.set(i.id, [...(consumers.get(i.id) ?? []), n]);
  }
  const s: PlanState = {
    nodes,
    position: new Map(nodes.map((n, i) => [n.id, i])),
    consumers,
    outputs: new Set(Object.values(graph.outputs).map((n) => n.id)),
    mat: new Set(),
    owners: new Map(),
    direct: new Set(),
    fusedRandom,
    matmulBases: new Set(),
  };
  materialize(s, forced);
  const epilogues = findEpilogues(s, maxBindings);
  const placed: { at: number; group: KernelGroup }[] = [];
  const absorbed = new Set([...epilogues.values()].map((e) => e.root.id));
  for (const n of nodes) {
    const family = familyOf(n);
    if (!s.mat.has(n.id) && !epilogues.has(n.id) || family === "storage" || absorbed.has(n.id)) {
      continue;
    }
    const at = s.position.get(n.id)!;
    if (family === "inline") {
      placed.push({ at, group: { kind: "elementwise", roots: [n] } });
      continue;
    }
    const e = epilogues.get(n.id);
    const roots = e === undefined ? [n] : e.keep ? [n, e.root] : [e.root];
    const group = {
      kind: family,
      roots,
      op: n,
      epilogue: e?.root,
      direct: s.direct.has(n.id) || undefined,
    };
    placed.push({ at: e === undefined || e.keep ? at : s.position.get(e.root.id)!, group });
  }
  placed.sort((a, b) => a.at - b.at);
  const groups = mergeSiblings(placed.map((p) => p.group), s.mat, maxBindings);
  return { graph, groups, materialized: s.mat };
}

const EPILOGUE_FAMILIES = new Set(["matmul", "reduce", "rowwise"]);

/**
 * Kernel ops that also compute one elementwise root reading them at the same
 * flat index: op id → root and whether the op's own value is still written
 * (it has other readers). A tiled matmul can only replace its output.
 */
function findEpilogues(
  s: PlanState,
  maxBindings: number,
): Map<number, { root: Node; keep: boolean }> {
  const result = new Map<number, { root: Node; keep: boolean }>();
  const taken = new Set<number>();
  const byId = new Map(s.nodes.map((n) => [n.id, n]));
  for (const op of s.nodes) {
    if (!EPILOGUE_FAMILIES.has(familyOf(op))) continue;
    const sites = sitesOf(op, s);
    const tiled = op.op === "matmul" && !s.direct.has(op.id);
    // A matmul reading `op` through a view reads op's own buffer, which must then be written.
    const keep = s.outputs.has(op.id) || sites.size > 1 || s.matmulBases.has(op.id);
    if (tiled && keep) continue;
    const opReads = tiled ? 2 : regionReads([op], s.mat).length;
    for (const id of sites) {
      const root = byId.get(id)!;
      const fits = familyOf(root) === "inline" && !taken.has(root.id) &&
        sizeOf(root.shape) === sizeOf(op.shape) && (!tiled || root.dtype === "f32") &&
        pathsKeepIndex(op, root, s);
      if (!fits) continue;
      const reads = regionReads([root], s.mat, op);
      const late = (r: Node) =>
        familyOf(r) !== "storage" && s.position.get(r.id)! > s.position.get(op.id)!;
      if ((tiled && reads.some((r) => r.dtype !== "f32")) || (keep && reads.some(late))) continue;
      if (opReads + reads.length + (keep ? 2 : 1) > maxBindings) continue;
      taken.add(root.id);
      result.set(op.id, { root, keep });
      if (!keep) s.mat.delete(op.id);
      break;
    }
  }
  return result;
}

/** Every path from `op` up to `root` inside root's region reads at an unchanged flat index. */
function pathsKeepIndex(op: Node, root: Node, s: PlanState): boolean {
  const inRegion = (c: Node) =>
    c === root || (!s.mat.has(c.id) && s.owners.get(c.id)?.has(root.id));
  const stack = (s.consumers.get(op.id) ?? []).filter(inRegion);
  const seen = new Set<number>();
  while (stack.length > 0) {
    const c = stack.pop()!;
    if (seen.has(c.id)) continue;
    seen.add(c.id);
    if (!keepsIndex(c) || (c.op === "dropout" && c.inputs[1] === op)) return false;
    if (c !== root) stack.push(...(s.consumers.get(c.id) ?? []).filter(inRegion));
  }
  return true;
}
