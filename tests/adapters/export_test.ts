import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { vera } from "../../adapters/vera.ts";
import { lora } from "../../adapters/lora.ts";
import { exportPeft } from "../../adapters/peft.ts";
import { readPeft } from "../../adapters/peft_import.ts";
import { exportMerged } from "../../adapters/export.ts";
import type { Adapter } from "../../adapters/merge.ts";
import { type PeftAdapterFiles, peftSource } from "../../adapters/peft_import.ts";
import { resolveAdapter } from "../../adapters/resolve.ts";
import { deltaWeight } from "../../adapters/merge.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";

/** A PEFT adapter checked against stored weight shapes, as merge and export read it. */
const adapterFromPeft = (
  files: PeftAdapterFiles,
  weights: Readonly<Record<string, readonly number[]>>,
): Adapter => resolveAdapter(peftSource(files), weights).adapter;
import { makeGraph } from "../../compiler/ir.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../../io/safetensors.ts";

const base = gptGraph({
  vocabSize: 11,
  maxSeqLen: 5,
  dModel: 8,
  heads: 2,
  layers: 2,
  head: "classifier",
}, {
  batch: 2,
  seqLen: 5,
});

function f32Tensors(params: Record<string, Float32Array>, shapes: Map<string, readonly number[]>) {
  const out: Record<string, TensorInput> = {};
  for (const [k, v] of Object.entries(params)) {
    out[k] = { dtype: "F32", shape: shapes.get(k)!, data: v };
  }
  return out;
}

Deno.test("exportMerged: targeted weights are W + ΔW, everything else is copied bit for bit", async () => {
  const dir = await Deno.makeTempDir();
  const baseParams = initParams(base, { seed: 9 });
  const shapes = new Map(base.params.map((p) => [p.name!, p.shape]));
  await writeSafetensors(`${dir}/base.safetensors`, f32Tensors(baseParams, shapes), {
    model: "tiny",
  });
  for (
    const adapted of [
      vera(base, { r: 5, targetModules: ["q_proj", "fc1"], modulesToSave: ["classifier"] }),
      lora(base, { r: 2, alpha: 6, targetModules: ["v_proj", "fc2"] }),
    ]
  ) {
    const params: Record<string, Float32Array> = {
      ...baseParams,
      ...initParams(adapted.graph, { seed: 9 }),
    };
    for (const k of Object.keys(params)) {
      if (/vera_lambda_b|lora_B|classifier/.test(k)) {
        params[k] = params[k].map((_, i) => Math.sin(i + 1) / 3);
      }
    }
    await exportPeft(`${dir}/adapter`, adapted.adapter, params, { graph: adapted.graph });
    const files = await readPeft(`${dir}/adapter`);
    const adapter = adapterFromPeft(files, Object.fromEntries(shapes));
    const report = await exportMerged({
      base: `${dir}/base.safetensors`,
      out: `${dir}/merged.safetensors`,
      adapter,
      adapterParams: files.tensors,
    });
    deepEqual(report.merged.sort(), adapted.adapter.targets.map((t) => t.weight).sort());
    const merged = await readSafetensors(`${dir}/merged.safetensors`);
    equal(merged.metadata.model, "tiny");
    for (const t of adapted.adapter.targets) {
      const delta =
        evaluate(makeGraph({ inputs: [], outputs: { d: deltaWeight(adapted.adapter, t) } }), {
          params,
        }).d.data;
      const w = merged.tensors.get(t.weight)!.data as Float32Array;
      const want = baseParams[t.weight].map((v, i) => v + delta[i]);
      const rel = Math.max(
        ...w.map((v, i) => Math.abs(v - want[i]) / Math.max(1e-6, Math.abs(want[i]))),
      );
      ok(
        rel <= 1e-5 || Math.max(...w.map((v, i) => Math.abs(v - want[i]))) < 1e-7,
        `${t.weight}: ${rel}`,
      );
    }
    for (const name of report.copied) {
      deepEqual(merged.tensors.get(name)!.data, baseParams[name], name);
    }
    for (const name of report.replaced) deepEqual(merged.tensors.get(name)!.data, params[name]);
    if (adapted.adapter.kind === "vera") {
      deepEqual(report.replaced.sort(), ["classifier.bias", "classifier.weight"]);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("exportMerged refuses a base model that does not fit the adapter", async () => {
  const dir = await Deno.makeTempDir();
  const adapted = vera(base, { r: 3, targetModules: ["q_proj"] });
  await exportPeft(`${dir}/adapter`, adapted.adapter, initParams(adapted.graph));
  const files = await readPeft(`${dir}/adapter`);
  const adapter = adapterFromPeft(
    files,
    Object.fromEntries(base.params.map((p) => [p.name!, p.shape])),
  );
  await writeSafetensors(`${dir}/other.safetensors`, {
    "layers.0.attn.q_proj.weight": { dtype: "F32", shape: [4, 4], data: new Float32Array(16) },
  });
  await rejects(
    exportMerged({
      base: `${dir}/other.safetensors`,
      out: `${dir}/m.safetensors`,
      adapter,
      adapterParams: files.tensors,
    }),
    /q_proj\.weight is \[4,4\] in the base model/,
  );
  await rejects(Deno.stat(`${dir}/m.safetensors`));
  await Deno.remove(dir, { recursive: true });
});
