/**
 * What an adapter costs: trainable parameters, bytes on disk natively (seed +
 * vectors) and in PEFT format (vectors + stored projections), per layer.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { veraTrainableCount } from "./vera.ts";
import { loraTrainableCount } from "./lora.ts";
import type { Adapter } from "./merge.ts";
import { peftFiles } from "./peft.ts";
import { encodeCompact } from "./compact.ts";

/** One adapted layer in a summary. */
export interface LayerSummary {
  /** Module path. */
  readonly module: string;
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** Trainable parameters this layer adds. */
  readonly params: number;
}

/** The numbers {@link summary} reports. */
export interface AdapterSummary {
  /** `vera` or `lora`. */
  readonly kind: "vera" | "lora";
  /** Rank. */
  readonly r: number;
  /** Trainable adapter parameters (VeRA: Σ out + r; LoRA: Σ r·(in + out)). */
  readonly trainableParams: number;
  /** Bytes of the native compact file (config, seed and vectors). */
  readonly nativeBytes: number;
  /** Bytes of the PEFT directory (`adapter_config.json` + `adapter_model.safetensors`). */
  readonly peftBytes: number;
  /** Per-layer table. */
  readonly layers: readonly LayerSummary[];
}

/**
 * Summarises an adapter; sizes are those of the real encodings (computed on
 * zero-filled tensors of the right shapes, so no params are needed).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { vera } from "./vera.ts";
 * import { summary } from "./summary.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 2, head: "lm" }, { batch: 1, seqLen: 4 });
 * strictEqual(summary(vera(g, { r: 4, targetModules: ["q_proj"] }).adapter).trainableParams, 16);
 * ```
 */
export function summary(adapter: Adapter, graph?: Graph): AdapterSummary {
  const r = adapter.config.r;
  const zeros: Record<string, Float32Array> = {};
  for (const p of graph?.params ?? []) {
    zeros[p.name!] = new Float32Array(p.shape.reduce((a, b) => a * b, 1));
  }
  for (const t of adapter.targets) {
    const names = adapter.kind === "vera"
      ? [[`${t.module}.vera_lambda_b`, t.outFeatures], [`${t.module}.vera_lambda_d`, r]] as const
      : [[`${t.module}.lora_A.weight`, r * t.inFeatures], [
        `${t.module}.lora_B.weight`,
        r * t.outFeatures,
      ]] as const;
    for (const [name, n] of names) zeros[name] = new Float32Array(n);
  }
  if (adapter.kind === "vera" && adapter.projections === "stored") {
    zeros.vera_A = new Float32Array(r * adapter.maxIn);
    zeros.vera_B = new Float32Array(r * adapter.maxOut);
  }
  const peft = peftFiles(adapter, zeros, { graph });
  const peftBytes = Object.values(peft).reduce(
    (n, f) => n + (typeof f === "string" ? new TextEncoder().encode(f).length : f.length),
    0,
  );
  const stored = adapter.kind === "vera" && adapter.projections === "stored";
  return {
    kind: adapter.kind,
    r,
    trainableParams: adapter.kind === "vera"
      ? veraTrainableCount(adapter)
      : loraTrainableCount(adapter),
    nativeBytes: stored ? peftBytes : encodeCompact(adapter, zeros, graph).length,
    peftBytes,
    layers: adapter.targets.map((t) => ({
      module: t.module,
      inFeatures: t.inFeatures,
      outFeatures: t.outFeatures,
      params: adapter.kind === "vera" ? t.outFeatures + r : r * (t.inFeatures + t.outFeatures),
    })),
  };
}

/**
 * The summary as a plain-text table.
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { vera } from "./vera.ts";
 * import { formatSummary, summary } from "./summary.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const text = formatSummary(summary(vera(g, { r: 4, targetModules: ["q_proj"] }).adapter));
 * match(text, /^VERA r=4: 8 trainable parameters\n/);
 * match(text, /^module +in +out +params$/m);
 * match(text, /^layers\.0\.attn\.q_proj +4 +4 +8$/m); // one row per adapted layer
 * ```
 */
export function formatSummary(s: AdapterSummary): string {
  const width = Math.max(6, ...s.layers.map((l) => l.module.length));
  const lines = [
    `${s.kind.toUpperCase()} r=${s.r}: ${
      s.trainableParams.toLocaleString("en-US")
    } trainable parameters`,
    `native (seed + vectors): ${s.nativeBytes.toLocaleString("en-US")} bytes; ` +
    `PEFT directory: ${s.peftBytes.toLocaleString("en-US")} bytes`,
    "",
    `${"module".padEnd(width)}  ${"in".padStart(6)}  ${"out".padStart(6)}  ${"params".padStart(8)}`,
    ...s.layers.map((l) =>
      `${l.module.padEnd(width)}  ${String(l.inFeatures).padStart(6)}  ${
        String(l.outFeatures).padStart(6)
      }  ${String(l.params).padStart(8)}`
    ),
  ];
  return lines.join("\n");
}
