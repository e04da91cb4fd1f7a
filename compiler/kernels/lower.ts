/**
 * Lowering: one kernel IR program per fusion group (see
 * compiler/fusion/fuse.ts). Elementwise regions, reductions, row-wise ops,
 * gather and scatter come from this folder's families; matmuls from
 * `matmulProgram`, with transposes,
 * slices and batch broadcasts folded into its indexing, a `random` operand
 * without a buffer generated in its loads, and a fused elementwise epilogue
 * built from the graph into the kernel's `epilogue` function.
 *
 * @module
 */
import { type Node, sizeOf } from "../ir.ts";
import type { FusionPlan, KernelGroup } from "../fusion/plan.ts";
import { groupReads, matmulRead, regionReads } from "../fusion/regions.ts";
import { NodeValues, storageType } from "../kernel_ir/mod.ts";
import {
  type MatmulEpilogue,
  matmulProgram,
  type MatmulTiles,
  type RandomOperand,
} from "./matmul.ts";
import { elementwiseKernel } from "./elementwise.ts";
import { scatterAddKernel } from "./gather.ts";
import { gatherKernel } from "./gather.ts";
import { reduceKernel } from "./reduce.ts";
import { rowwiseKernel } from "./rowwise.ts";
import { directMatmulKernel } from "./_direct_matmul.ts";
import { labelOf, lowered, type LoweredKernel } from "./_assemble.ts";

export type { LoweredKernel } from "./_assemble.ts";

/**
 * The size of one matmul, for choosing tiles.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import type { MatmulShape } from "./lower.ts";
 * import { matmulTilesFor } from "./matmul.ts";
 * const shape: MatmulShape = { batch: 1, M: 64, N: 64, K: 64 };
 * strictEqual(matmulTilesFor({ description: "llvmpipe" }, shape).staging, "registers");
 * ```
 */
export interface MatmulShape {
  /** Independent products. */
  readonly batch: number;
  /** Rows of the result. */
  readonly M: number;
  /** Columns of the result. */
  readonly N: number;
  /** The contracted dimension. */
  readonly K: number;
}
export { type Family, loweringOf } from "../fusion/families.ts";

/**
 * Options of {@link lowerGroup} and {@link lowerPlan}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { type LowerOptions, lowerPlan } from "./lower.ts";
 * import { MATMUL_TILES_CPU_SMALL } from "./matmul.ts";
 * import { fuse } from "../fusion/fuse.ts";
 * import { param, trace } from "../trace.ts";
 * const options: LowerOptions = { tiles: MATMUL_TILES_CPU_SMALL };
 * const plan = fuse(trace((x) => x.matmul(param("w", [4, 3])), [{ name: "x", shape: [2, 4] }]));
 * // Register staging: the tiles live in registers, not in workgroup memory.
 * strictEqual(lowerPlan(plan, options)[0].program.shared.length, 0);
 * ```
 */
export interface LowerOptions {
  /** Matmul tiles, or a choice per problem size (see `matmulTilesFor`); default: `matmulProgram`'s. */
  readonly tiles?: Partial<MatmulTiles> | ((shape: MatmulShape) => Partial<MatmulTiles>);
}

/**
 * The kernel of one fusion group.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { lowerGroup } from "./lower.ts";
 * import { fuse } from "../fusion/fuse.ts";
 * import { trace } from "../trace.ts";
 * const plan = fuse(trace((x) => x.exp().sum(), [{ name: "x", shape: [8] }]));
 * deepStrictEqual(plan.groups.map((g) => lowerGroup(g, plan).program.family), ["reduce-sum"]);
 * ```
 */
export function lowerGroup(
  group: KernelGroup,
  plan: Pick<FusionPlan, "materialized">,
  options: LowerOptions = {},
): LoweredKernel {
  const reads = groupReads(group, plan.materialized);
  if (group.lanes) {
    return reduceKernel(group.lanes.map((l) => ({ op: l.op!, roots: l.roots })), reads);
  }
  const op = group.op;
  if (op === undefined) return elementwiseKernel(group.roots, reads);
  switch (group.kind) {
    case "reduce":
      return reduceKernel([{ op, roots: group.roots }], reads);
    case "rowwise":
      return rowwiseKernel(op, reads, { roots: group.roots });
    case "gather":
      return gatherKernel(op, reads);
    case "scatterAdd":
      return scatterAddKernel(op, reads);
    case "matmul":
      return group.direct
        ? directMatmulKernel(op, reads, { roots: group.roots })
        : lowerMatmul(group, plan.materialized, options);
    default:
      throw new Error(`lowerGroup: unexpected ${group.kind} group for ${op.op}`);
  }
}

/**
 * Every group's kernel, in execution order.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { lowerPlan } from "./lower.ts";
 * import { fuse } from "../fusion/fuse.ts";
 * import { trace } from "../trace.ts";
 * const plan = fuse(trace((x) => x.exp().add(1), [{ name: "x", shape: [8] }]));
 * strictEqual(lowerPlan(plan).length, 1);
 * ```
 */
export function lowerPlan(plan: FusionPlan, options: LowerOptions = {}): LoweredKernel[] {
  return plan.groups.map((g) => lowerGroup(g, plan, options));
}

function lowerMatmul(
  group: KernelGroup,
  materialized: ReadonlySet<number>,
  options: LowerOptions,
): LoweredKernel {
  const m = group.op!;
  const root = group.epilogue ?? m;
  const [a, b] = m.inputs;
  const r = m.shape.length;
  const readA = matmulRead(a);
  const readB = matmulRead(b);
  // Operands whose base has no buffer are fused `random` nodes, generated in the loads.
  const [randomA, randomB] = [readA, readB].map((read) =>
    materialized.has(read.base.id) ? undefined : randomOperand(read.base)
  );
  const fused = root !== m;
  const extra = fused ? regionReads([root], materialized, m) : [];
  const shape = {
    batch: sizeOf(m.shape.slice(0, r - 2)),
    M: m.shape[r - 2],
    N: m.shape[r - 1],
    K: a.shape[r - 1],
  };
  const program = matmulProgram({
    ...shape,
    transA: readA.trans,
    transB: readB.trans,
    lda: readA.ld,
    ldb: readB.ld,
    batchStrideA: readA.batchStride,
    batchStrideB: readB.batchStride,
    offsetA: readA.offset,
    offsetB: readB.offset,
    randomA,
    randomB,
    tiles: typeof options.tiles === "function" ? options.tiles(shape) : options.tiles,
    epilogue: fused ? fusedEpilogue(m, root, extra) : undefined,
    label: fused
      ? `${labelOf([m])} with epilogue ${labelOf([root], extra)}`
      : labelOf([m], [readA.base, readB.base]),
  });
  const operands = [readA, readB].filter((read) => materialized.has(read.base.id));
  const nodes = [...operands.map((read) => read.base), root, ...extra];
  return lowered(program, { nodes }, [root]);
}

/**
 * The epilogue computing `root` from the matmul `m`'s value at the same
 * index: the fused region between them, its materialized reads `extra`
 * bound as `e0, e1, ...`.
 */
function fusedEpilogue(m: Node, root: Node, extra: readonly Node[]): MatmulEpilogue {
  const names = new Map(extra.map((n, k) => [n.id, `e${k}`]));
  return {
    bindings: extra.map((n, k) => ({
      name: `e${k}`,
      type: "storage-read",
      element: storageType(n.dtype),
    })),
    apply: ({ acc, index }, body) =>
      new NodeValues(body, {
        bufferOf: (n) => names.get(n.id),
        acc: { node: m, value: acc, index },
      }).value(root, { shape: root.shape, linear: index }),
  };
}

function randomOperand(node: Node): RandomOperand {
  if (node.op !== "random") {
    throw new Error(`internal: matmul operand ${node.op}#${node.id} has no buffer to read`);
  }
  const { seed, stream, bound } = node.attrs as { seed: number; stream: number; bound: number };
  return { seed, stream, bound };
}
