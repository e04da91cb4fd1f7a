// Which WGSL lowering each op gets. Every op the registry knows must map to
// one of these families; `familyOf` throws, naming the op, for one that does
// not, and tests walk the registry through `loweringOf`.

import type { Node } from "../ir.ts";
import { getOp } from "../../ops/registry.ts";
import { SHAPE_OPS } from "./_values.ts";

/**
 * How a node is lowered:
 * - `storage`: a leaf with its own buffer (input, param, const with data);
 * - `inline`: computed inside whichever kernel reads it (elementwise math,
 *   shape ops as index arithmetic, fills, iota, random, dropout);
 * - a kernel family: `matmul`, `reduce`, `rowwise`, `gather`, `scatterAdd`.
 *
 * @example
 * ```ts
 * import type { Family } from "./_families.ts";
 * const family: Family = "rowwise";
 * ```
 */
export type Family =
  | "storage"
  | "inline"
  | "matmul"
  | "reduce"
  | "rowwise"
  | "gather"
  | "scatterAdd";

const KERNEL_FAMILIES = new Set(["matmul", "reduce", "rowwise", "gather", "scatterAdd"]);
const INLINE_FAMILIES = new Set(["random", "dropout"]);

/**
 * The family of an op by name (`const` reports `inline`; with data it is
 * `storage`); throws, naming the op, when it has no lowering.
 *
 * @example
 * ```ts
 * import { loweringOf } from "./_families.ts";
 * import "../../ops/mod.ts";
 * console.log(loweringOf("gelu"), loweringOf("softmax")); // inline rowwise
 * ```
 */
export function loweringOf(op: string): Family {
  if (op === "input" || op === "param") return "storage";
  if (op === "const" || op === "iota" || SHAPE_OPS.has(op)) return "inline";
  const rule = getOp(op).wgsl;
  if (rule?.kind === "elementwise") return "inline";
  if (rule?.kind === "kernel" && KERNEL_FAMILIES.has(rule.family)) return rule.family as Family;
  if (rule?.kind === "kernel" && INLINE_FAMILIES.has(rule.family)) return "inline";
  throw new Error(
    `op ${op} has no WGSL lowering` +
      (rule?.kind === "kernel"
        ? ` (unknown kernel family "${rule.family}")`
        : " (its wgsl rule is missing)"),
  );
}

/**
 * The family of a node.
 *
 * @example
 * ```ts
 * import { makeNode } from "../ir.ts";
 * import "../../ops/mod.ts";
 * import { familyOf } from "./_families.ts";
 * console.log(familyOf(makeNode("const", [], { data: [1, 2], shape: [2], dtype: "f32" }))); // storage
 * ```
 */
export function familyOf(node: Node): Family {
  if (node.op === "const" && node.attrs.data !== undefined) return "storage";
  return loweringOf(node.op);
}
