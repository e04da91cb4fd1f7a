import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { evaluate } from "../../backends/cpu/interpreter.ts";
import { type GptConfig, gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { vera } from "../../adapters/vera.ts";
import { lora } from "../../adapters/lora.ts";
import { exportPeft, peftConfig, peftFiles } from "../../adapters/peft.ts";
import { importPeft, readPeft } from "../../adapters/peft_import.ts";
import { decodeCompact, encodeCompact } from "../../adapters/compact.ts";
import { summary } from "../../adapters/summary.ts";
import { decodeSafetensors } from "../../io/safetensors.ts";

// The golden listings were written by Hugging Face PEFT 0.21.0 (save_pretrained)
// for a torch module tree with these module names and sizes.
const golden = {
  vera: JSON.parse(await Deno.readTextFile(new URL("./golden/peft_vera.json", import.meta.url))),
  lora: JSON.parse(await Deno.readTextFile(new URL("./golden/peft_lora.json", import.meta.url))),
};

const CONFIG: GptConfig = {
  vocabSize: 11,
  maxSeqLen: 5,
  dModel: 8,
  heads: 2,
  layers: 2,
  head: "classifier",
};
const INPUTS = { tokens: [1, 4, 2, 9, 3, 7, 0, 5, 10, 6], labels: [1, 0], lastIndex: [4, 2] };
const base = gptGraph(CONFIG, { batch: 2, seqLen: 5 });

function trained(names: Record<string, Float32Array>): Record<string, Float32Array> {
  const out = { ...names };
  for (const [k, v] of Object.entries(out)) {
    if (/vera_lambda|lora_B|classifier/.test(k)) {
      out[k] = v.map((_, i) => 0.3 * Math.cos(i + k.length));
    }
  }
  return out;
}

Deno.test("PEFT export: key names, shapes and config fields equal PEFT's own files", () => {
  const v = vera(base, { r: 4, targetModules: ["q_proj", "fc1"], modulesToSave: ["classifier"] });
  const vf = peftFiles(v.adapter, initParams(v.graph), { graph: v.graph });
  const vt = decodeSafetensors(vf["adapter_model.safetensors"] as Uint8Array).tensors;
  deepEqual(Object.fromEntries([...vt].map(([k, t]) => [k, t.shape]).sort()), golden.vera.tensors);
  const vc = JSON.parse(vf["adapter_config.json"] as string);
  deepEqual(Object.keys(vc).sort(), Object.keys(golden.vera.config).sort());
  deepEqual({ ...vc, auto_mapping: null }, { ...golden.vera.config, auto_mapping: null });
  for (const t of vt.values()) equal(t.dtype, "F32");

  const l = lora(base, { r: 2, alpha: 4, targetModules: ["q_proj", "fc1"] });
  const lf = peftFiles(l.adapter, initParams(l.graph));
  const lt = decodeSafetensors(lf["adapter_model.safetensors"] as Uint8Array).tensors;
  deepEqual(Object.fromEntries([...lt].map(([k, t]) => [k, t.shape]).sort()), golden.lora.tensors);
  const lc = JSON.parse(lf["adapter_config.json"] as string);
  deepEqual({ ...lc, auto_mapping: null }, { ...golden.lora.config, auto_mapping: null });
});

Deno.test("export → import → forward gives the same outputs (VeRA with stored projections, LoRA)", async () => {
  const dir = await Deno.makeTempDir();
  for (
    const [kind, adapted] of [
      [
        "vera",
        vera(base, {
          r: 6,
          targetModules: ["q_proj", "v_proj", "fc2"],
          modulesToSave: ["classifier"],
        }),
      ],
      [
        "lora",
        lora(base, {
          r: 2,
          alpha: 8,
          targetModules: ["q_proj", "fc1"],
          modulesToSave: ["classifier"],
        }),
      ],
    ] as const
  ) {
    const params = trained({
      ...initParams(base, { seed: 2 }),
      ...initParams(adapted.graph, { seed: 2 }),
    });
    await exportPeft(`${dir}/${kind}`, adapted.adapter, params, { graph: adapted.graph });
    const imported = importPeft(base, await readPeft(`${dir}/${kind}`));
    equal(imported.adapter.kind, kind);
    const before = evaluate(adapted.graph, { inputs: INPUTS, params });
    const after = evaluate(imported.graph, {
      inputs: INPUTS,
      params: { ...params, ...imported.params },
    });
    // Seeded projections are f32 values either way: the stored copy is exact.
    deepEqual([...after.logits.data], [...before.logits.data]);
    if (kind === "vera") {
      ok(imported.graph.params.some((p) => p.name === "vera_A" && p.attrs.role === "frozen"));
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("PEFT import rejects missing, extra and ill-shaped tensors and bad configs", async () => {
  const dir = await Deno.makeTempDir();
  const v = vera(base, { r: 4, targetModules: ["q_proj"] });
  const files = peftFiles(v.adapter, initParams(v.graph));
  await Deno.mkdir(`${dir}/ok`);
  for (const [k, f] of Object.entries(files)) {
    await Deno.writeFile(`${dir}/ok/${k}`, typeof f === "string" ? new TextEncoder().encode(f) : f);
  }
  const read = await readPeft(`${dir}/ok`);
  const { ["layers.0.attn.q_proj.vera_lambda_b"]: _dropped, ...missing } = read.tensors;
  throws(
    () =>
      importPeft(base, {
        ...read,
        tensors: missing,
        shapes: { ...read.shapes, "layers.0.attn.q_proj.vera_lambda_b": undefined! },
      }),
    /missing tensor layers\.0\.attn\.q_proj\.vera_lambda_b/,
  );
  throws(
    () =>
      importPeft(base, {
        ...read,
        tensors: { ...read.tensors, extra: new Float32Array(1) },
        shapes: { ...read.shapes, extra: [1] },
      }),
    /unexpected tensors: extra/,
  );
  throws(
    () => importPeft(base, { ...read, shapes: { ...read.shapes, vera_A: [4, 9] } }),
    /vera_A has shape \[4,9\]/,
  );
  throws(
    () => importPeft(base, { ...read, config: { ...read.config, target_modules: ["nothing"] } }),
    /no module matched/,
  );
  await Deno.writeTextFile(
    `${dir}/ok/adapter_config.json`,
    JSON.stringify({ peft_type: "IA3", r: 4 }),
  );
  await rejects(
    readPeft(`${dir}/ok`),
    /adapter_config.json: "peft_type" "IA3" is not supported \(VERA or LORA\)/,
  );
  await rejects(readPeft(`${dir}/none`), /cannot read adapter_config\.json/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("compact adapter: seed + vectors only, round-trips, far smaller than PEFT", () => {
  const v = vera(base, {
    r: 64,
    targetModules: ["q_proj", "v_proj"],
    modulesToSave: ["classifier"],
  });
  const params = trained({ ...initParams(base, { seed: 4 }), ...initParams(v.graph, { seed: 4 }) });
  const bytes = encodeCompact(v.adapter, params, v.graph);
  const back = decodeCompact(base, bytes);
  const a = evaluate(v.graph, { inputs: INPUTS, params });
  const b = evaluate(back.graph, { inputs: INPUTS, params: { ...params, ...back.params } });
  deepEqual([...b.logits.data], [...a.logits.data]);
  const s = summary(v.adapter, v.graph);
  equal(s.nativeBytes, bytes.length);
  // The PEFT file must also carry vera_A [64, 8] and vera_B [8, 64]; the compact one never does.
  ok(s.peftBytes - s.nativeBytes >= 4 * 64 * (8 + 8), `${s.nativeBytes} vs ${s.peftBytes}`);
  equal(s.trainableParams, 4 * (8 + 64));
  deepEqual(s.layers.map((l) => l.params), [72, 72, 72, 72]);
  throws(() => decodeCompact(base, new Uint8Array(8)), /safetensors|metadata/);
});

Deno.test("peftConfig carries the adapter's settings", () => {
  const c = peftConfig(
    vera(base, { r: 3, targetModules: "layers\\.1\\..*", projectionPrngKey: 9, dInitial: 0.5 })
      .adapter,
  );
  equal(c.r, 3);
  equal(c.projection_prng_key, 9);
  equal(c.d_initial, 0.5);
  equal(c.target_modules, "layers\\.1\\..*");
  equal(c.save_projection, true);
});
