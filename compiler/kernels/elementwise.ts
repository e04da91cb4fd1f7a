/**
 * Fused elementwise kernels: one invocation per output element computes
 * every root of a fusion group from the group's external inputs, with
 * broadcast / permute / slice / pad / concat / reshape folded into the loads
 * (each view op's `inline` rule).
 *
 * @module
 */
import { type Node, sizeOf } from "../ir.ts";
import { add, binary, Body, invocation, linearWorkgroup, mul, u32 } from "../kernel_ir/mod.ts";
import { bindingSet, labelOf, linearKernel, type LoweredKernel, storeRoots } from "./_assemble.ts";

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
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { elementwiseKernel } from "./elementwise.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [makeNode(ops.neg, [x], {})], {});
 * const { program, nodes } = elementwiseKernel([y], [x]);
 * strictEqual(nodes.length, 2);
 * deepStrictEqual(program.dispatch, [1, 1, 1]);
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
  const body = new Body();
  const i = body.letNamed(
    "i",
    add(mul(linearWorkgroup(), u32(ELEMENTWISE_WORKGROUP)), invocation({ of: "localIndex" })),
  );
  body.when(binary(">=", i, u32(n)), (exit) => exit.return());
  storeRoots(body, roots, set.scope, i);
  const [width, groups] = [ELEMENTWISE_WORKGROUP, Math.ceil(n / ELEMENTWISE_WORKGROUP)];
  return linearKernel({
    family: "elementwise",
    set,
    width,
    groups,
    roots,
    reads,
    body: body.stmts,
  });
}
