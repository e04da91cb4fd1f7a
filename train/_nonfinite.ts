/**
 * A device-side guard for the trainer: the step graph gains a scalar state
 * that records the first step whose loss or gradient norm was NaN or
 * infinite. It is updated in place every step and read only with the loss
 * the trainer logs anyway, so a divergence is named at its exact step
 * without a readback per step.
 */
import { type Graph, makeGraph, makeNode } from "../compiler/ir.ts";
import { Tensor, where } from "../compiler/trace.ts";
import * as ops from "../ops/mod.ts";

/** The state (and output) holding the first non-finite step, 0 while there was none. */
export const NONFINITE_STEP = "train.nonfinite_step";

// The largest finite f32: |x| ≤ it is false exactly for NaN and ±Infinity.
const F32_MAX = 3.4028234663852886e38;

/**
 * `step` with the guard added (unchanged when it has no `step` input or no scalar `loss` /
 * `grad_norm` output to watch).
 */
export function watchNonFinite(step: Graph): Graph {
  const stepInput = step.inputs.find((n) => n.name === "step");
  const watched = ["loss", "grad_norm"]
    .map((name) => step.outputs[name])
    .filter((n) => n !== undefined && n.shape.length === 0 && n.dtype === "f32");
  if (stepInput === undefined || watched.length === 0 || NONFINITE_STEP in step.outputs) {
    return step;
  }
  const flag = new Tensor(makeNode(ops.param, [], {
    shape: [],
    dtype: "f32",
    role: "frozen",
    init: { kind: "zeros" },
  }, NONFINITE_STEP));
  const bad = watched
    .map((n) => where(new Tensor(n).abs().le(F32_MAX), 0, 1))
    .reduce((a, b) => a.add(b));
  const first = where(flag.gt(0), flag, where(bad.gt(0), new Tensor(stepInput), 0));
  const update = `update:${NONFINITE_STEP}`;
  const updates = { ...(step.meta.updates as Record<string, string>), [update]: NONFINITE_STEP };
  return makeGraph({
    inputs: step.inputs,
    outputs: { ...step.outputs, [NONFINITE_STEP]: first.node, [update]: first.node },
    meta: { ...step.meta, updates },
  });
}
