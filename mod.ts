/**
 * wgrad — a functional tensor-graph compiler for Deno. Trace a function into
 * a graph, transform it (autodiff, simplification, VeRA), and run it on the
 * CPU reference interpreter or on the GPU through WebGPU.
 *
 * @example
 * ```ts
 * import { evaluate, initParams, param, trace, valueAndGrad } from "./mod.ts";
 *
 * const model = trace(
 *   (x, y) => ({ loss: x.matmul(param("w", [1, 3]).T).sub(y).square().mean() }),
 *   [{ name: "x", shape: [4, 3] }, { name: "y", shape: [4, 1] }],
 * );
 * const step = valueAndGrad(model);
 * const out = evaluate(step, {
 *   inputs: { x: [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], y: [1, 2, 3, 6] },
 *   params: initParams(model),
 * });
 * console.log(out.loss.data[0], out["grad:w"].data);
 * ```
 *
 * @module
 */
export {
  type Attrs,
  type AttrValue,
  type DType,
  type Graph,
  graphNodes,
  makeGraph,
  makeNode,
  type Node,
  type ParamRole,
  print,
  type Shape,
  type TensorType,
  trainableParams,
  validate,
} from "./compiler/ir.ts";
export {
  concat,
  constant,
  type InputSpec,
  iota,
  param,
  type ParamInit,
  type ParamOptions,
  randomUniform,
  scope,
  Tensor,
  type TensorLike,
  trace,
  type TraceResult,
  where,
} from "./compiler/trace.ts";
export { grad, gradName, type GradOptions, valueAndGrad } from "./compiler/autodiff.ts";
export {
  type Match,
  match,
  type Pattern,
  rewrite,
  type RewriteOptions,
  type Rule,
} from "./compiler/rewrite.ts";
export { simplify, simplifyRules } from "./compiler/passes/simplify.ts";
export { constantFold, cse, dce } from "./compiler/passes/cleanup.ts";
export {
  allOps,
  type CpuContext,
  type CpuData,
  type CpuTensor,
  defineOp,
  getOp,
  type OpDef,
  type WgslRule,
} from "./ops/mod.ts";
export { evaluate, type EvaluateOptions, type Feeds, type TensorData } from "./runtime/cpu.ts";
export { initParams } from "./nn/init.ts";
export {
  type AttentionOptions,
  causalSelfAttention,
  layerNorm,
  linear,
  type LinearOptions,
  mlp,
} from "./nn/layers.ts";
export { type GptConfig, gptGraph, type GptShape } from "./nn/gpt.ts";
export {
  type ResolvedVeraConfig,
  vera,
  type VeraAdapter,
  type VeraConfig,
  veraTrainableCount,
} from "./adapters/vera.ts";
export {
  lora,
  type LoraAdapter,
  type LoraConfig,
  loraTrainableCount,
  type ResolvedLoraConfig,
} from "./adapters/lora.ts";
export {
  type Adapter,
  merge,
  mergeAndUnload,
  mergeGraph,
  type MergeOptions,
  type MergeRunner,
  safeMerge,
  unmerge,
} from "./adapters/merge.ts";
export { findTargets, type Target, type TargetConfig } from "./adapters/targets.ts";
