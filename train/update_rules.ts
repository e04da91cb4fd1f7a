/**
 * The update rules of the built-in optimizers, written on symbolic tensors so
 * they become ordinary elementwise nodes of the step graph. Each mirrors
 * PyTorch's single-tensor (`foreach=False`) algorithm operation by operation.
 */
import { constant, type Tensor, where } from "../compiler/trace.ts";

/** What an update rule sees for one param: all tensors, the scalars `[]`-shaped f32. */
export interface UpdateContext {
  /** The param's current value. */
  readonly param: Tensor;
  /** Its gradient (averaged over accumulated micro-batches and clipped, when asked). */
  readonly grad: Tensor;
  /** The optimizer state of this param, by state name (`exp_avg`, ...). */
  readonly state: Readonly<Record<string, Tensor>>;
  /** The learning rate of the param's group (a scalar input). */
  readonly lr: Tensor;
  /** The 1-based step count (a scalar f32 input). */
  readonly step: Tensor;
  /** The weight decay of the param's group (a constant). */
  readonly weightDecay: number;
}

/** What an update rule returns: the new param and the new value of every state tensor. */
export interface UpdateResult {
  /** The param after the step. */
  readonly param: Tensor;
  /** New state, one entry per name the optimizer declares. */
  readonly state: Readonly<Record<string, Tensor>>;
}

/**
 * An optimizer as data plus one rule: the state tensors it keeps per param
 * (zero-initialised) and how a step updates a param and its state. Users may
 * write their own; {@link adamw} and {@link sgd} are the built-ins.
 */
export interface Optimizer {
  /** Short name, recorded in the step graph's metadata (`adamw`, `sgd`). */
  readonly kind: string;
  /** Per-param state names (PyTorch's: `exp_avg`, `exp_avg_sq`, `momentum_buffer`). */
  readonly state: readonly string[];
  /** Default weight decay (a group may override it). */
  readonly weightDecay: number;
  /** The constant hyper-parameters, JSON-serialisable, for the metadata. */
  readonly config: Readonly<Record<string, number | boolean | readonly number[]>>;
  /** Builds one param's update. */
  readonly update: (ctx: UpdateContext) => UpdateResult;
}

/** Options of {@link adamw}, PyTorch's `torch.optim.AdamW` arguments. */
export interface AdamWOptions {
  /** Decay rates of the first and second moments (default `[0.9, 0.999]`). */
  readonly betas?: readonly [number, number];
  /** Added to the denominator (default 1e-8). */
  readonly eps?: number;
  /** Decoupled weight decay (default 0.01). */
  readonly weightDecay?: number;
}

/** Options of {@link sgd}, PyTorch's `torch.optim.SGD` arguments. */
export interface SgdOptions {
  /** Momentum factor (default 0: plain SGD, no state). */
  readonly momentum?: number;
  /** Dampening of the momentum (default 0). */
  readonly dampening?: number;
  /** L2 penalty added to the gradient (default 0). */
  readonly weightDecay?: number;
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  readonly nesterov?: boolean;
}

function checkRange(where: string, what: string, v: number, lo: number, hi = Infinity): void {
  if (typeof v !== "number" || !(v >= lo && v < hi)) {
    const range = hi === Infinity ? `≥ ${lo}` : `in [${lo}, ${hi})`;
    throw new Error(`${where}: ${what} must be ${range}, got ${v}`);
  }
}

/**
 * AdamW exactly as PyTorch's `torch.optim.AdamW` (amsgrad off): for step `t`,
 *
 * ```
 * p ← p · (1 − lr·wd)
 * m ← m + (1 − β1)(g − m)            (exp_avg.lerp_(g, 1 − β1))
 * v ← β2·v + (1 − β2)·g²
 * p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)
 * ```
 *
 * State: `exp_avg`, `exp_avg_sq`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { adamw } from "./optim.ts";
 * const opt = adamw({ betas: [0.9, 0.98], weightDecay: 0 });
 * deepStrictEqual(opt.state, ["exp_avg", "exp_avg_sq"]);
 * ```
 */
export function adamw(options: AdamWOptions = {}): Optimizer {
  const { betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01 } = options;
  if (!Array.isArray(betas) || betas.length !== 2) {
    throw new Error(`adamw: betas must be a pair [beta1, beta2], got ${JSON.stringify(betas)}`);
  }
  const [beta1, beta2] = betas;
  checkRange("adamw", "beta1", beta1, 0, 1);
  checkRange("adamw", "beta2", beta2, 0, 1);
  checkRange("adamw", "eps", eps, 0);
  checkRange("adamw", "weightDecay", weightDecay, 0);
  return Object.freeze({
    kind: "adamw",
    state: Object.freeze(["exp_avg", "exp_avg_sq"]),
    weightDecay,
    config: Object.freeze({ betas: Object.freeze([beta1, beta2]), eps, weightDecay }),
    update: ({ param, grad, state, lr, step, weightDecay: wd }: UpdateContext): UpdateResult => {
      const decayed = wd === 0 ? param : param.mul(constant(1).sub(lr.mul(wd)));
      const m = state.exp_avg.add(grad.sub(state.exp_avg).mul(1 - beta1));
      const v = state.exp_avg_sq.mul(beta2).add(grad.mul(grad).mul(1 - beta2));
      const bias1 = constant(1).sub(constant(beta1).pow(step));
      const bias2 = constant(1).sub(constant(beta2).pow(step));
      const stepSize = lr.div(bias1);
      const denom = v.sqrt().div(bias2.sqrt()).add(eps);
      return {
        param: decayed.sub(stepSize.mul(m.div(denom))),
        state: { exp_avg: m, exp_avg_sq: v },
      };
    },
  });
}

/**
 * SGD exactly as PyTorch's `torch.optim.SGD`:
 *
 * ```
 * d ← g + wd·p
 * buf ← d at step 1, else μ·buf + (1 − dampening)·d    (when μ ≠ 0)
 * d ← d + μ·buf if nesterov, else buf                   (when μ ≠ 0)
 * p ← p − lr·d
 * ```
 *
 * PyTorch creates the momentum buffer on the first step as a copy of `d`;
 * here the buffer starts at zero and the first step selects `d` with
 * `where(step ≤ 1, …)`, which is exact. State: `momentum_buffer` (only when
 * momentum ≠ 0).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { sgd } from "./optim.ts";
 * deepStrictEqual(sgd({ momentum: 0.9 }).state, ["momentum_buffer"]);
 * deepStrictEqual(sgd().state, []);
 * ```
 */
export function sgd(options: SgdOptions = {}): Optimizer {
  const { momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = options;
  checkRange("sgd", "momentum", momentum, 0);
  checkRange("sgd", "dampening", dampening, 0);
  checkRange("sgd", "weightDecay", weightDecay, 0);
  if (nesterov && (momentum <= 0 || dampening !== 0)) {
    throw new Error(
      `sgd: nesterov momentum requires momentum > 0 and dampening 0 (got ${momentum}, ${dampening})`,
    );
  }
  return Object.freeze({
    kind: "sgd",
    state: Object.freeze(momentum === 0 ? [] : ["momentum_buffer"]),
    weightDecay,
    config: Object.freeze({ momentum, dampening, weightDecay, nesterov }),
    update: ({ param, grad, state, lr, step, weightDecay: wd }: UpdateContext): UpdateResult => {
      let d: Tensor = wd === 0 ? grad : grad.add(param.mul(wd));
      if (momentum === 0) return { param: param.sub(lr.mul(d)), state: {} };
      const fresh = dampening === 0 ? d : d.mul(1 - dampening);
      const buf = where(step.le(1), d, state.momentum_buffer.mul(momentum).add(fresh));
      d = nesterov ? d.add(buf.mul(momentum)) : buf;
      return { param: param.sub(lr.mul(d)), state: { momentum_buffer: buf } };
    },
  });
}
