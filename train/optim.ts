/**
 * Optimizers as a graph pass: {@link trainStep} turns a model graph with a
 * scalar `loss` into one training step — forward, backward, gradient
 * clipping and the optimizer update — so the update is a few elementwise
 * nodes the GPU backend fuses, and params and optimizer state stay resident.
 *
 * The step graph's contract:
 * - inputs: the model's, then scalar f32 `lr` (default group), `lr.<group>`
 *   for each named group, and `step` (1-based, for bias correction);
 * - optimizer state: frozen params `optim.<state>.<param>` (PyTorch's state
 *   names, e.g. `optim.exp_avg.classifier.weight`), zero-initialised;
 * - outputs: the model's (`loss`, ...), `grad_norm` (global L2 norm of the
 *   gradients before clipping), and `update:<name>` for every trainable param
 *   and state tensor; `meta.updates` maps each `update:<name>` to `<name>`:
 *   after a run, that output replaces that param.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { evaluate, type TensorData } from "../backends/cpu/interpreter.ts";
 * import { adamw, applyUpdates, initOptimizerState, trainStep } from "./optim.ts";
 * const model = trace((x) => ({ loss: x.sub(param("w", [2])).square().sum() }), [
 *   { name: "x", shape: [2] },
 * ]);
 * const step = trainStep(model, { optimizer: adamw({ weightDecay: 0 }) });
 * let params: Record<string, TensorData> = { w: new Float32Array(2), ...initOptimizerState(step) };
 * for (let t = 1; t <= 3; t++) {
 *   const out = evaluate(step, { inputs: { x: [1, -1], lr: [0.1], step: [t] }, params });
 *   params = applyUpdates(params, out, step.meta.updates as Record<string, string>);
 * }
 * // Three Adam steps of about lr toward x:
 * const [w0, w1] = params.w as Float64Array;
 * ok(Math.abs(w0 - 0.298) < 1e-3 && Math.abs(w1 + 0.298) < 1e-3, `w ${w0}, ${w1}`);
 * ```
 *
 * @module
 */
import {
  formatType,
  type Graph,
  makeGraph,
  makeNode,
  type Node,
  trainableParams,
} from "../compiler/ir.ts";
import { gradName, valueAndGrad } from "../compiler/autodiff.ts";
import { constant, Tensor } from "../compiler/trace.ts";
import { assignGroups, lrInputName, type ParamGroup } from "./param_groups.ts";
import type { Optimizer, UpdateContext } from "./update_rules.ts";
import * as ops from "../ops/mod.ts";

export { adamw, sgd } from "./update_rules.ts";
export type {
  AdamWOptions,
  Optimizer,
  SgdOptions,
  UpdateContext,
  UpdateResult,
} from "./update_rules.ts";
export { lrInputName } from "./param_groups.ts";
export {
  applyUpdates,
  hyperparameterFeeds,
  initOptimizerState,
  optimizerStateNames,
} from "./_state.ts";
export type { ParamGroup, ParamMatcher } from "./param_groups.ts";

/** Options of {@link trainStep}. */
export interface TrainStepOptions {
  /** The update rule: {@link adamw}, {@link sgd} or your own {@link Optimizer}. */
  readonly optimizer: Optimizer;
  /** Param groups with their own `lr.<name>` input (and weight decay); others use `lr`. */
  readonly groups?: readonly ParamGroup[];
  /** Clip the global gradient norm to this value, as PyTorch's `clip_grad_norm_`. */
  readonly clipNorm?: number;
  /** Read the gradient from the accumulators of {@link accumulateGraph} instead of running the model. */
  readonly accumulated?: boolean;
  /** Micro-batches summed into the accumulators (required with `accumulated`). */
  readonly accumulateSteps?: number;
}

/** Name of the state tensor `state` of param `param`: `optim.<state>.<param>`. */
export function stateName(state: string, param: string): string {
  return `optim.${state}.${param}`;
}

/** Name of the gradient accumulator of `param`: `accum.<param>`. */
export function accumName(param: string): string {
  return `accum.${param}`;
}

/** Name of the output that replaces param `name` after a run: `update:<name>`. */
export function updateName(name: string): string {
  return `update:${name}`;
}

/** The added epsilon of PyTorch's `clip_grad_norm_`. */
const CLIP_EPS = 1e-6;

function scalarInput(name: string): Node {
  return makeNode(ops.input, [], { shape: [], dtype: "f32" }, name);
}

function zeroState(name: string, like: Node): Node {
  return makeNode(ops.param, [], {
    shape: [...like.shape],
    dtype: "f32",
    role: "frozen",
    init: { kind: "zeros" },
  }, name);
}

function checkModel(graph: Graph, where: string): Node[] {
  if (graph.meta.updates !== undefined) {
    throw new Error(`${where}: the graph already has meta.updates (is it already a step graph?)`);
  }
  const trainable = trainableParams(graph);
  if (trainable.length === 0) {
    throw new Error(
      `${where}: the graph has no trainable params (params: ${
        graph.params.map((p) => p.name).join(", ") || "none"
      })`,
    );
  }
  for (const p of trainable) {
    if (p.dtype !== "f32") {
      throw new Error(`${where}: trainable param "${p.name}" is ${formatType(p)}; only f32 trains`);
    }
  }
  return trainable;
}

/** The global L2 norm of a list of gradients: √(Σ g²) over every element. */
function globalNorm(grads: readonly Tensor[]): Tensor {
  let total: Tensor | undefined;
  for (const g of grads) {
    const squares = g.rank === 0 ? g.square() : g.square().sum();
    total = total === undefined ? squares : total.add(squares);
  }
  return total!.sqrt();
}

/** The checked options of a step: each trainable param's group, k and the clip norm. */
function checkStepOptions(trainable: readonly Node[], options: TrainStepOptions) {
  const optimizer = options.optimizer;
  if (optimizer === undefined || typeof optimizer.update !== "function") {
    throw new Error("trainStep: options.optimizer is required (e.g. adamw() or sgd())");
  }
  const groups = options.groups ?? [];
  const assignment = assignGroups(trainable, groups);
  for (const g of groups) {
    if (g.weightDecay !== undefined && !(g.weightDecay >= 0)) {
      throw new Error(
        `trainStep: group "${g.name}": weightDecay must be ≥ 0, got ${g.weightDecay}`,
      );
    }
  }
  const k = options.accumulateSteps;
  if (!options.accumulated && k !== undefined) {
    throw new Error(
      `trainStep: accumulateSteps (${k}) needs accumulated: true (and accumulateGraph for micro-batches)`,
    );
  }
  if (options.accumulated && (!Number.isSafeInteger(k) || k! < 1)) {
    throw new Error(`trainStep: accumulated needs accumulateSteps, a positive integer; got ${k}`);
  }
  const clip = options.clipNorm;
  if (clip !== undefined && !(typeof clip === "number" && clip > 0 && Number.isFinite(clip))) {
    throw new Error(`trainStep: clipNorm must be a finite number > 0, got ${clip}`);
  }
  return { optimizer, groups, assignment, k: options.accumulated ? k : undefined, clip };
}

/** The step's scalar inputs (`lr`, `lr.<group>`, `step`) after the model inputs it keeps. */
function stepInputs(graph: Graph, groups: readonly ParamGroup[], k: number | undefined) {
  const lrNames = [lrInputName(), ...groups.map((g) => lrInputName(g.name))];
  const hyperInputs = [...lrNames, "step"].map(scalarInput);
  // An accumulated step does not run the model, so it takes none of the model's inputs.
  const modelInputs = k === undefined ? graph.inputs : [];
  for (const n of modelInputs) {
    if (lrNames.includes(n.name!) || n.name === "step") {
      throw new Error(`trainStep: the model already has an input named "${n.name}"`);
    }
  }
  const lrs = hyperInputs.slice(0, -1).map((n) => new Tensor(n));
  const step = new Tensor(hyperInputs[hyperInputs.length - 1]);
  return { lrNames, inputs: [...modelInputs, ...hyperInputs], lrs, step };
}

/** The step graph's outputs and `meta.updates`, filled in as the step is built. */
class StepOutputs {
  readonly outputs: Record<string, Node> = {};
  readonly updates: Record<string, string> = {};

  /** Adds output `name`, refusing a name the model's outputs already use. */
  add(name: string, node: Node): void {
    if (name in this.outputs) {
      throw new Error(`trainStep: the model already has an output "${name}"`);
    }
    this.outputs[name] = node;
  }

  /** Outputs the value that replaces `name` after a run, as `update:<name>`. */
  update(name: string, node: Node): void {
    this.add(updateName(name), node);
    this.updates[updateName(name)] = name;
  }
}

/**
 * Each trainable param's gradient: from the backward pass of the model (whose
 * outputs the step keeps), or the accumulators' mean (which the step resets).
 */
function stepGradients(
  graph: Graph,
  trainable: readonly Node[],
  k: number | undefined,
  out: StepOutputs,
): Tensor[] {
  if (k === undefined) {
    const vg = valueAndGrad(graph);
    Object.assign(out.outputs, graph.outputs);
    return trainable.map((p) => new Tensor(vg.outputs[gradName(p.name!)]));
  }
  const grads = trainable.map((p) => new Tensor(zeroState(accumName(p.name!), p)).div(k));
  for (const p of trainable) out.update(accumName(p.name!), constant(0, p.shape).node);
  return grads;
}

/** Outputs the gradients' global norm as `grad_norm`, and scales them to at most `clip`. */
function clipGradients(grads: Tensor[], clip: number | undefined, out: StepOutputs): Tensor[] {
  const norm = globalNorm(grads);
  if (clip !== undefined) {
    const scale = constant(clip).div(norm.add(CLIP_EPS)).minimum(1);
    grads = grads.map((g) => g.mul(scale));
  }
  out.add("grad_norm", norm.node);
  return grads;
}

/**
 * Applies the optimizer to one param: outputs its new value and its new
 * state tensors, each checked against what it replaces; returns the state's names.
 */
function updateParam(
  optimizer: Optimizer,
  p: Node,
  hyper: Pick<UpdateContext, "grad" | "lr" | "step" | "weightDecay">,
  out: StepOutputs,
): string[] {
  const state = Object.fromEntries(
    optimizer.state.map((s) => [s, new Tensor(zeroState(stateName(s, p.name!), p))]),
  );
  const { grad, lr, step, weightDecay } = hyper;
  const result = optimizer.update({ param: new Tensor(p), grad, state, lr, step, weightDecay });
  const emit = (name: string, like: Node, value: Tensor | undefined) => {
    if (!(value instanceof Tensor)) {
      throw new Error(`trainStep: ${optimizer.kind} returned no tensor for "${name}"`);
    }
    if (value.shape.join() !== like.shape.join() || value.dtype !== like.dtype) {
      throw new Error(
        `trainStep: ${optimizer.kind} gave ${formatType(value.node)} for "${name}", ` +
          `expected ${formatType(like)}`,
      );
    }
    out.update(name, value.node);
  };
  emit(p.name!, p, result.param);
  for (const s of optimizer.state) emit(stateName(s, p.name!), state[s].node, result.state[s]);
  return optimizer.state.map((s) => stateName(s, p.name!));
}

/**
 * Builds the training-step graph of `graph` (see the module doc for its
 * inputs, params and outputs). With `accumulated: true` the step does not run
 * the model: it reads `accum.<param> / accumulateSteps` as the gradient (the
 * sums {@link accumulateGraph} built up) and resets the accumulators to zero.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { sgd, trainStep } from "./optim.ts";
 * const model = trace((x) => ({ loss: x.mul(param("head.w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * const step = trainStep(model, {
 *   optimizer: sgd({ momentum: 0.9 }),
 *   groups: [{ name: "head", match: ["head"] }],
 *   clipNorm: 1,
 * });
 * deepStrictEqual(step.inputs.map((n) => n.name), ["x", "lr", "lr.head", "step"]);
 * deepStrictEqual(step.meta.updates, {
 *   "update:head.w": "head.w",
 *   "update:optim.momentum_buffer.head.w": "optim.momentum_buffer.head.w",
 * });
 * ```
 */
export function trainStep(graph: Graph, options: TrainStepOptions): Graph {
  const trainable = checkModel(graph, "trainStep");
  const { optimizer, groups, assignment, k, clip } = checkStepOptions(trainable, options);
  const { lrNames, inputs, lrs, step } = stepInputs(graph, groups, k);
  const out = new StepOutputs();
  const grads = clipGradients(stepGradients(graph, trainable, k, out), clip, out);
  const stateNames = trainable.flatMap((p, i) => {
    const group = assignment[i];
    const weightDecay = group === -1
      ? optimizer.weightDecay
      : groups[group].weightDecay ?? optimizer.weightDecay;
    return updateParam(
      optimizer,
      p,
      { grad: grads[i], lr: lrs[group + 1], step, weightDecay },
      out,
    );
  });

  const lrParams = Object.fromEntries(lrNames.map((name) => [name, [] as string[]]));
  trainable.forEach((p, i) => lrParams[lrNames[assignment[i] + 1]].push(p.name!));
  return makeGraph({
    inputs,
    outputs: out.outputs,
    meta: {
      ...graph.meta,
      updates: out.updates,
      optimizer: {
        kind: optimizer.kind,
        config: optimizer.config,
        lrInputs: lrParams,
        stepInput: "step",
        state: stateNames,
        clipNorm: clip ?? null,
        accumulateSteps: k ?? null,
      },
    },
  });
}

/**
 * The micro-batch graph of exact gradient accumulation: runs the model and
 * backward pass and adds each trainable param's gradient into the frozen,
 * zero-initialised accumulator `accum.<param>` (output
 * `update:accum.<param>`, listed in `meta.updates`). Outputs `loss` and the
 * model's other outputs too. Run it on k micro-batches, then the step graph
 * of `trainStep(graph, { accumulated: true, accumulateSteps: k })`, which
 * averages the sums and zeroes them: with a mean loss, the mean of the k
 * micro-batch gradients is the gradient of the mean loss over the k batches.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { accumulateGraph } from "./optim.ts";
 * const model = trace((x) => ({ loss: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * deepStrictEqual(accumulateGraph(model).meta.updates, { "update:accum.w": "accum.w" });
 * ```
 */
export function accumulateGraph(graph: Graph): Graph {
  const trainable = checkModel(graph, "accumulateGraph");
  const vg = valueAndGrad(graph);
  const outputs: Record<string, Node> = { ...graph.outputs };
  const updates: Record<string, string> = {};
  for (const p of trainable) {
    const name = accumName(p.name!);
    if (updateName(name) in outputs) {
      throw new Error(`accumulateGraph: the model already has an output "${updateName(name)}"`);
    }
    const sum = new Tensor(zeroState(name, p)).add(new Tensor(vg.outputs[gradName(p.name!)]));
    outputs[updateName(name)] = sum.node;
    updates[updateName(name)] = name;
  }
  return makeGraph({ inputs: graph.inputs, outputs, meta: { ...graph.meta, updates } });
}
