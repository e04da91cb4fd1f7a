/**
 * wgrad — a functional tensor-graph compiler for Deno. Trace a function into
 * a graph, transform it (autodiff, simplification, VeRA), and run it on the
 * CPU reference interpreter or on the GPU through WebGPU.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
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
 * // w starts at zero: the loss is mean(y²), the gradient -mean(2·y·x) per column.
 * strictEqual(out.loss.data[0], 12.5);
 * deepStrictEqual(Array.from(out["grad:w"].data), [-3.5, -4, -4.5]);
 * ```
 *
 * Training goes through `fit` (the trainer of the command line: metrics, plot,
 * checkpoints, the NaN guard; an adapter such as `{ vera: { r, targetModules } }`);
 * a trained adapter comes back with `loadAdapter`, `evaluateModel` and `withAdapter`.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { fit, param, trace } from "./mod.ts";
 *
 * const model = trace(
 *   (x, y) => ({ loss: x.matmul(param("w", [3, 1])).sub(y).square().mean() }),
 *   [{ name: "x", shape: [4, 3] }, { name: "y", shape: [4, 1] }],
 * );
 * const batch = { x: [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], y: [1, 2, 3, 6] };
 * const { params } = await fit({ model, data: [batch], epochs: 300, schedule: 0.05 });
 * const target = [1, 2, 3];
 * ok(params.w.every((w, i) => Math.abs(w - target[i]) < 0.05)); // ≈ [1, 2, 3]
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
  type Shape,
  type TensorType,
  trainableParams,
} from "./compiler/ir.ts";
export { print, printAround } from "./compiler/print.ts";
export { validate } from "./compiler/validate.ts";
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
export { wrap } from "./compiler/tensor.ts";
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
  type CpuContext,
  type CpuData,
  type CpuTensor,
  definedOps,
  defineOp,
  type IndexOperand,
  type InlineContext,
  type KernelIndex,
  type Lowering,
  type OpDef,
} from "./compiler/ir.ts";
export * as kernelIR from "./compiler/kernel_ir/mod.ts";
export type {
  BinaryOp,
  Body,
  Expr,
  InvocationId,
  KernelBuffer,
  KernelFunction,
  KernelProgram,
  MathFunction,
  RowKernel,
  ScalarType,
  SharedArray,
  Stmt,
  TreeLane,
  ValueType,
} from "./compiler/kernel_ir/mod.ts";
export { pointwise } from "./ops/rules.ts";
export * as ops from "./ops/mod.ts";
export { builtinOps } from "./ops/mod.ts";
export { type EvaluateOptions, type Feeds, type TensorData } from "./backends/cpu/interpreter.ts";
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
  familyNames,
  type Forward,
  getFamily,
  type GraphOptions,
  type KvHook,
  type KvLayout,
  lastNonPadIndex,
  type LoadedModel,
  loadModel,
  type ModelConfig,
  type ModelFamily,
  registerFamily,
} from "./nn/families.ts";
export { type Gpt2Config, gpt2Family } from "./nn/gpt2.ts";
export { type LlamaConfig, llamaFamily } from "./nn/llama.ts";
export { wgradConfig, wgradGptFamily } from "./nn/wgrad_gpt.ts";
export { generate, type GenerateOptions, type GenerateResult, pickToken } from "./nn/generate.ts";
export { loadHfModel, readHfWeights } from "./io/hf_model.ts";
export {
  byteTokenizer,
  loadHfTokenizer,
  type Tokenizer,
  tokenizerFromJson,
} from "./data/hf_tokenizer.ts";
export {
  type ResolvedVeraConfig,
  vera,
  type VeraAdapter,
  type VeraConfig,
  type VeraOptions,
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
export { DEFAULT_PIPELINE, PASSES, runPipeline } from "./compiler/compile.ts";
export {
  BACKEND_CHOICES,
  type BackendChoice,
  compile,
  type CompileOptions,
  parseBackend,
  resolveBackend,
} from "./backends/compile.ts";
export type {
  Backend,
  BackendCapabilities,
  BackendCompileOptions,
  BackendName,
} from "./backends/backend.ts";
export { cpuBackend } from "./backends/cpu/backend.ts";
export { webgpuBackend, type WebGpuBackendOptions } from "./backends/webgpu/backend.ts";
export { wasmBackend } from "./backends/wasm/backend.ts";
export { wasmAvailable, type WasmOptions } from "./backends/wasm/mod.ts";
export type { Executable, ExecutableStats, HostArray, RunResult } from "./backends/executable.ts";
export { type GpuContext, requestGpu } from "./backends/webgpu/device.ts";
export { adamw, hyperparameterFeeds, initOptimizerState, sgd, trainStep } from "./train/optim.ts";
export { constant as constantSchedule, warmupCosine, warmupLinear } from "./train/schedule.ts";
export { train, type TrainOptions, type TrainResult } from "./train/trainer.ts";
export { classifierEvalBatches, lmEvalBatches, NonFiniteError } from "./train/trainer.ts";
export type {
  BatchState,
  ClassificationBatch,
  ClassificationExample,
  LmBatch,
} from "./data/batches.ts";
export {
  fit,
  type FitAdapter,
  type FitAdapterConfig,
  type FitBatch,
  type FitCallbacks,
  type FitData,
  type FitExamples,
  type FitOptions,
  type FitResult,
  type FitStep,
} from "./train/fit.ts";
export { loadBaseModel, saveBaseModel } from "./train/checkpoint.ts";
export {
  evaluate,
  evaluateModel,
  type EvaluateModelOptions,
  type EvaluationData,
  loadAdapter,
  type LoadedAdapter,
  withAdapter,
} from "./train/adapted_model.ts";
export { TrainInterrupted } from "./train/trainer.ts";
export {
  cpuRunner,
  type RunnerFactory,
  type RunnerHooks,
  type StepRunner,
} from "./train/runner.ts";
export {
  backendRunner,
  runnerFactoryFor,
  webgpuRunner,
  webgpuRunnerFactory,
} from "./train/executable_runner.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
} from "./io/safetensors.ts";
export { exportPeft, peftConfig } from "./adapters/peft.ts";
export { importPeft, readPeft } from "./adapters/peft_import.ts";
export { decodeCompact, encodeCompact } from "./adapters/compact.ts";
export { formatSummary, summary } from "./adapters/summary.ts";
export { exportMerged } from "./adapters/export.ts";
export { backendMergeRunner, webgpuMergeRunner } from "./adapters/gpu_merge.ts";
export type { Kernel, KernelBinding } from "./backends/webgpu/wgsl/kernel.ts";
export type { RandomProjections } from "./compiler/fusion/fuse.ts";
export type { FusionPlan, KernelGroup } from "./compiler/fusion/plan.ts";
export type {
  Program,
  ScheduleOptions,
  Step,
  TensorInfo as ProgramTensorInfo,
  TensorRole,
} from "./compiler/schedule.ts";
export type { Pass, PassContext, PassState, RunPipelineOptions } from "./compiler/compile.ts";
export type { RunOptions } from "./backends/executable.ts";
export type {
  BindingSizeCheck,
  BufferPool,
  DeviceHealth,
  PipelineCache,
} from "./backends/webgpu/device.ts";
export type { RequestGpuOptions } from "./backends/webgpu/device.ts";
export type {
  CpuRunnerOptions,
  Feed,
  RunOptions as StepRunOptions,
  TypedArray,
} from "./train/runner.ts";
export type { Checkpoint, Json } from "./train/checkpoint.ts";
export type { BatchSource, EvalBatch, EvalMetrics } from "./train/evaluation.ts";
export type { Schedule, WarmupOptions } from "./train/schedule.ts";
export type { ProgressMode } from "./train/progress.ts";
export type { MetricsRecord } from "./train/metrics.ts";
export type {
  AdamWOptions,
  Optimizer,
  SgdOptions,
  UpdateContext,
  UpdateResult,
} from "./train/update_rules.ts";
export type { ParamGroup, ParamMatcher } from "./train/param_groups.ts";
export type { TrainStepOptions } from "./train/optim.ts";
export type {
  LoadedTensor,
  SafetensorsDType,
  SafetensorsFile,
  TensorData as SafetensorsData,
  TensorInput,
} from "./io/safetensors.ts";
export type { ExportMergedOptions } from "./adapters/export.ts";
export type { AdapterSummary, LayerSummary } from "./adapters/summary.ts";
export type { PeftAdapterFiles } from "./adapters/peft_import.ts";
export type { Family, LowerOptions, MatmulShape } from "./compiler/kernels/lower.ts";
export type { MatmulTiles } from "./compiler/kernels/matmul.ts";
export { loadDataFile, MIN_SPLIT, parseDataFile, splitData } from "./data/files.ts";
export type {
  ClassificationData,
  DataFileOptions,
  DataSet,
  DataTask,
  LmData,
  LmDocument,
} from "./data/files.ts";
export {
  classificationRows,
  lmRows,
  packRows,
  RowBatcher,
  rowEvalBatches,
} from "./data/token_rows.ts";
export type { RowBatchOptions, RowFeeds, RowTokenizer, TokenRow } from "./data/token_rows.ts";
export {
  classificationMetrics,
  formatClassificationMetrics,
  softmax,
} from "./train/metrics_cls.ts";
export type { ClassificationMetrics, ClassMetrics } from "./train/metrics_cls.ts";
export { classifierArchitecture, mergeToHfDir, mergeToHfFiles } from "./adapters/merge_hf.ts";
export type { HfMergeReport } from "./adapters/merge_hf.ts";
export { downloadModel, hubCacheDir, parseHubRef } from "./io/hub.ts";
export type { DownloadOptions, HubRef } from "./io/hub.ts";
export type { SplitName, Splits } from "./data/split.ts";
