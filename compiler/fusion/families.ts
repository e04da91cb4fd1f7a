// Which family of kernel computes each node, from its op's `lowering`:
// fusion groups nodes by family, and every backend implements each family.

import type { Lowering, Node, OpDef } from "../ir.ts";

/**
 * How a node is lowered:
 * - `storage`: a leaf with its own buffer (input, param, const with data);
 * - `inline`: computed inside whichever kernel reads it (elementwise math,
 *   shape ops as index arithmetic, fills, iota, random, dropout);
 * - a kernel family: `matmul`, `reduce`, `rowwise`, `gather`, `scatterAdd`.
 *
 * @example
 * ```ts
 * import type { Family } from "./families.ts";
 * const family: Family = "rowwise";
 * ```
 */
export type Family = "storage" | Exclude<Lowering, "leaf">;

/**
 * The family of an op: its `lowering`, with leaves split into `storage`
 * (input, param: a buffer) and `inline` (fills, iota: computed where read).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loweringOf } from "./families.ts";
 * import * as ops from "../../ops/mod.ts";
 * strictEqual(loweringOf(ops.gelu), "inline");
 * strictEqual(loweringOf(ops.softmax), "rowwise");
 * ```
 */
export function loweringOf(op: OpDef): Family {
  if (op.lowering !== "leaf") return op.lowering;
  return op.name === "input" || op.name === "param" ? "storage" : "inline";
}

/**
 * The family of a node.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { familyOf } from "./families.ts";
 * strictEqual(familyOf(makeNode(ops.const, [], { data: [1, 2], shape: [2], dtype: "f32" })), "storage");
 * ```
 */
export function familyOf(node: Node): Family {
  if (node.op === "const" && node.attrs.data !== undefined) return "storage";
  return loweringOf(node.def);
}
