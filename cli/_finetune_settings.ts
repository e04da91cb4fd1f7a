/**
 * `finetune`'s flags and what they set: the settings checked before anything is loaded, and the
 * run's config that its checkpoint keeps.
 *
 * @module
 */
import type { Adapter } from "../adapters/merge.ts";
import type { DataTask } from "../data/files.ts";
import type { Json } from "../train/checkpoint.ts";
import { type FlagSpec, intFlag, numberFlag, required, UsageError } from "./_args.ts";
import { COMMON_FLAGS, flag, int, snakeCaseKeys } from "./_train_common.ts";
import { DATA_FLAGS } from "./_task.ts";
import { DEFAULT_LR, type Method, METHODS } from "./_finetune_adapter.ts";

/**
 * The flags of `finetune`.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { flagHelp } from "./_args.ts";
 * import { FINETUNE_FLAGS } from "./train.ts";
 * ok(flagHelp(FINETUNE_FLAGS).includes("--method"));
 * ```
 */
export const FINETUNE_FLAGS: Record<string, FlagSpec> = {
  base: flag("base model: a file written by pretrain or a Hugging Face directory"),
  data: flag("spam | names | FILE (.jsonl, .csv, .txt)"),
  method: flag("vera | lora | full | head"),
  out: flag("run directory to write (runs/NAME)"),
  r: flag("rank (default 256 for vera, 8 for lora)"),
  targets: flag("adapted modules, comma-separated (default: the model family's)"),
  "target-layers": flag(
    "adapt only these layer indices, comma-separated (PEFT's layers_to_transform)",
  ),
  "layers-pattern": flag(
    "the module name before the layer index, e.g. layers (PEFT's layers_pattern)",
  ),
  "exclude-modules": flag("never adapt these modules, comma-separated (PEFT's exclude_modules)"),
  "d-initial": flag("VeRA: initial lambda_d", "0.1"),
  alpha: flag("LoRA: scaling numerator alpha (default r)"),
  rslora: { type: "boolean", help: "LoRA: scale by alpha/√r instead of alpha/r (rsLoRA)" },
  "rank-pattern": {
    ...flag(`LoRA: ranks by module, as JSON: '{"q_proj": 4}' (PEFT's rank_pattern)`),
    json: true,
  },
  "alpha-pattern": {
    ...flag(`LoRA: alphas by module, as JSON: '{"q_proj": 8}' (PEFT's alpha_pattern)`),
    json: true,
  },
  "adapter-dropout": flag("VeRA/LoRA: dropout on the adapter's input while training", "0"),
  seq: flag("tokens per example (default: the base's maxSeqLen)"),
  steps: flag("training steps", "200"),
  lr: flag("peak learning rate of the adapter (vera 3e-2, lora 1e-2, full 1e-3)"),
  "head-lr": flag("peak learning rate of the classifier head", "0.003"),
  "eval-limit": flag("at most N examples per evaluation split"),
  "save-every": flag("write checkpoint.safetensors every N steps (default 100)"),
  resume: {
    type: "boolean",
    help: "continue the run in --out from its checkpoint (a larger --steps extends it)",
  },
  force: {
    type: "boolean",
    help: "start over in an --out that holds a run or other files (files not the run's are kept)",
  },
  ...DATA_FLAGS,
  ...COMMON_FLAGS,
};

/** The flags `finetune` checks before it loads anything. */
export interface FinetuneSettings {
  readonly basePath: string;
  readonly data: string;
  readonly out: string;
  readonly method: Method;
  readonly steps: number;
  readonly batch: number;
  readonly seed: number;
  readonly lr: number;
  readonly headLr: number;
  readonly evalLimit?: number;
  readonly evalEvery?: number;
}

/**
 * The settings of the flags, checked in the order their usage errors are reported.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { parseFlags, UsageError } from "./_args.ts";
 * import { FINETUNE_FLAGS, finetuneSettings } from "./_finetune_settings.ts";
 * const flags = ["--base", "b.safetensors", "--data", "spam", "--out", "runs/a"];
 * const { values } = parseFlags("finetune", [...flags, "--method", "lora"], FINETUNE_FLAGS);
 * strictEqual(finetuneSettings(values).lr, 1e-2); // LoRA's default
 * const bad = parseFlags("finetune", [...flags, "--method", "dora"], FINETUNE_FLAGS);
 * throws(() => finetuneSettings(bad.values), UsageError);
 * ```
 */
export function finetuneSettings(values: Record<string, unknown>): FinetuneSettings {
  const basePath = required(values, "base", "finetune");
  const data = required(values, "data", "finetune");
  const out = required(values, "out", "finetune");
  const method = required(values, "method", "finetune") as Method;
  if (!METHODS.includes(method)) {
    throw new UsageError(`finetune: --method must be vera, lora, full or head, got "${method}"`);
  }
  const [steps, batch, seed] = [
    int(values, "steps"),
    int(values, "batch"),
    intFlag(values, "seed", 0)!,
  ];
  const lr = numberFlag(values, "lr", { min: 0, minExclusive: true }) ?? DEFAULT_LR[method];
  const headLr = numberFlag(values, "head-lr", { min: 0, minExclusive: true })!;
  const evalLimit = intFlag(values, "eval-limit");
  const evalEvery = intFlag(values, "eval-every");
  return { basePath, data, out, method, steps, batch, seed, lr, headLr, evalLimit, evalEvery };
}

/**
 * The run's settings, kept in the checkpoint (a resumed run must have the same ones) and appended
 * to summary.json: snake_case throughout, as in metrics.jsonl and PEFT's files.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseFlags } from "./_args.ts";
 * import { FINETUNE_FLAGS, finetuneRunConfig, finetuneSettings } from "./_finetune_settings.ts";
 * const args = ["--base", "b.safetensors", "--data", "spam", "--out", "runs/a", "--method", "head"];
 * const { values } = parseFlags("finetune", args, FINETUNE_FLAGS);
 * const config = finetuneRunConfig(finetuneSettings(values), values, {
 *   task: "classification",
 *   labels: ["ham", "spam"],
 *   seq: 64,
 *   dropout: 0,
 * });
 * strictEqual(config.head_lr, 0.003);
 * strictEqual(config.adapter_config, null);
 * ```
 */
export function finetuneRunConfig(
  settings: FinetuneSettings,
  values: Record<string, unknown>,
  run: {
    readonly task: DataTask;
    readonly labels?: string[];
    readonly seq: number;
    readonly dropout: number;
    readonly clipNorm?: number;
    readonly adapter?: Adapter;
  },
): { [key: string]: Json } {
  const adapter = run.adapter;
  const adapterConfig = adapter ? snakeCaseKeys(JSON.parse(JSON.stringify(adapter.config))) : null;
  return {
    base: settings.basePath,
    data: settings.data,
    task: run.task,
    labels: run.labels ?? null,
    method: settings.method,
    steps: settings.steps,
    batch: settings.batch,
    seq: run.seq,
    seed: settings.seed,
    lr: settings.lr,
    head_lr: settings.headLr,
    dropout: run.dropout,
    optimizer: String(values.optimizer),
    weight_decay: numberFlag(values, "weight-decay") ?? null,
    warmup: numberFlag(values, "warmup")!,
    clip_norm: run.clipNorm ?? 0,
    adapter_config: adapterConfig,
  };
}
