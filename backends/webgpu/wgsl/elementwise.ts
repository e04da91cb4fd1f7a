/**
 * Fused elementwise kernels: one invocation per output element computes
 * every root of a fusion group from the group's external inputs, with
 * broadcast / permute / slice / pad / concat / reshape folded into the loads
 * (see `_values.ts`).
 *
 * @module
 */
import { type Node, sizeOf } from "../../../compiler/ir.ts";
import { WGSL_LINEAR_WORKGROUP } from "./kernel.ts";
import {
  bindingSet,
  indent,
  labelOf,
  linearKernel,
  type LoweredKernel,
  MAIN_PARAMS,
  moduleText,
} from "./_module.ts";
import { storeValue, u32, ValueEmitter } from "./value_emitter.ts";

/**
 * Invocations per workgroup of elementwise kernels.
 *
 * @example
 * ```ts
 * import { ELEMENTWISE_WORKGROUP } from "./elementwise.ts";
 * const workgroups = Math.ceil(1000 / ELEMENTWISE_WORKGROUP); // for 1000 elements
 * ```
 */
export const ELEMENTWISE_WORKGROUP = 64;

/**
 * The kernel computing `roots` (equal element counts) from the materialized
 * nodes `reads`; everything between is computed inline.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { elementwiseKernel } from "./elementwise.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [makeNode(ops.neg, [x], {})], {});
 * const { kernel, nodes } = elementwiseKernel([y], [x]);
 * console.log(nodes.length, kernel.dispatch); // 2 [1, 1, 1]
 * ```
 */
export function elementwiseKernel(roots: readonly Node[], reads: readonly Node[]): LoweredKernel {
  const n = sizeOf(roots[0].shape);
  for (const r of roots) {
    if (sizeOf(r.shape) !== n) {
      throw new Error(`elementwise kernel: roots have different sizes (${labelOf(roots)})`);
    }
  }
  const set = bindingSet(roots, reads);
  const emitter = new ValueEmitter(set.scope);
  const stores = roots.map((root, k) => {
    const v = emitter.value(root, { shape: root.shape, linear: "i" });
    return `out${k}[i] = ${storeValue(v, root.dtype)};`;
  });
  const main = [
    `@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})`,
    `fn main(${MAIN_PARAMS}) {`,
    indent([
      `let i = ${WGSL_LINEAR_WORKGROUP} * ${u32(ELEMENTWISE_WORKGROUP)} + lid;`,
      `if (i >= ${u32(n)}) { return; }`,
      ...emitter.lines,
      ...stores,
    ]),
    "}",
  ].join("\n");
  const wgsl = moduleText({ decls: set.decls, threefry: emitter.usesThreefry, main });
  const [width, groups] = [ELEMENTWISE_WORKGROUP, Math.ceil(n / ELEMENTWISE_WORKGROUP)];
  return linearKernel({ family: "elementwise", wgsl, set, width, groups, roots, reads });
}
