// A compact adapter whose seed, config or vectors changed is refused (checksum), an unknown kind
// is an error, and a classification adapter merged into an LM base carries its head and says so.
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { vera } from "../../adapters/vera.ts";
import { lora } from "../../adapters/lora.ts";
import { exportPeft } from "../../adapters/peft.ts";
import { adapterFromCompact, COMPACT_METADATA_KEY, encodeCompact } from "../../adapters/compact.ts";
import { decodeSafetensors, encodeSafetensors, type TensorInput } from "../../io/safetensors.ts";
import { loadBaseModel, saveBaseModel } from "../../train/checkpoint.ts";
import { runCli } from "../cli/_capture.ts";

const CONFIG = { vocabSize: 9, maxSeqLen: 4, dModel: 4, heads: 1, layers: 2 } as const;

function rewrite(
  bytes: Uint8Array,
  edit: (meta: Record<string, unknown>, tensors: Map<string, TensorInput>) => void,
) {
  const file = decodeSafetensors(bytes);
  const meta = JSON.parse(file.metadata[COMPACT_METADATA_KEY]);
  const tensors = new Map<string, TensorInput>(
    [...file.tensors].map((
      [n, t],
    ) => [n, { dtype: "F32", shape: t.shape, data: (t.data as Float32Array).slice() }]),
  );
  edit(meta, tensors);
  return encodeSafetensors(Object.fromEntries(tensors), {
    [COMPACT_METADATA_KEY]: JSON.stringify(meta),
  });
}

Deno.test("compact adapters: any change to seed, config or vectors is refused", () => {
  const base = gptGraph({ ...CONFIG, head: "lm" }, { batch: 1, seqLen: 4 });
  const shapes = Object.fromEntries(base.params.map((p) => [p.name!, [...p.shape]]));
  const { graph, adapter } = vera(base, { r: 2, targetModules: ["q_proj"], projectionPrngKey: 5 });
  const params = initParams(graph, { seed: 1 });
  const bytes = encodeCompact(adapter, params);
  equal(adapterFromCompact(bytes, shapes).adapter.targets.length, 2);
  const edits: [
    string,
    (m: Record<string, unknown>, t: Map<string, TensorInput>) => void,
    RegExp,
  ][] = [
    [
      "seed",
      (m) => (m.config as Record<string, unknown>).projectionPrngKey = 6,
      /checksum mismatch/,
    ],
    ["r", (m) => (m.config as Record<string, unknown>).dInitial = 0.2, /checksum mismatch/],
    [
      "targets",
      (m) => (m.config as Record<string, unknown>).targetModules = ["v_proj"],
      /checksum mismatch/,
    ],
    [
      "a vector",
      (_, t) => ((t.get("layers.0.attn.q_proj.vera_lambda_d")!.data as Float32Array)[0] += 1),
      /checksum mismatch/,
    ],
    ["no checksum", (m) => delete m.checksum, /checksum mismatch/],
    ["unknown kind", (m) => m.kind = "ia3", /"kind" is "ia3", expected "vera" or "lora"/],
    ["old format", (m) => m.format = "wgrad-compact/1", /wgrad-compact\/1 carries no checksum/],
  ];
  for (const [name, edit, expected] of edits) {
    throws(() => adapterFromCompact(rewrite(bytes, edit), shapes), expected, name);
  }
  // LoRA too.
  const l = lora(base, { r: 2, alpha: 4, targetModules: ["v_proj"] });
  const lbytes = encodeCompact(l.adapter, initParams(l.graph, { seed: 2 }));
  throws(
    () =>
      adapterFromCompact(
        rewrite(lbytes, (m) => (m.config as Record<string, unknown>).alpha = 8),
        shapes,
      ),
    /checksum mismatch/,
  );
});

Deno.test("merge carries a classification head into a base that has none, with its config", async () => {
  const dir = await Deno.makeTempDir();
  const lmConfig = { ...CONFIG, head: "lm" as const };
  const lmGraph = gptGraph(lmConfig, { batch: 1, seqLen: 4 });
  await saveBaseModel(
    `${dir}/base.safetensors`,
    lmConfig,
    lmGraph,
    initParams(lmGraph, { seed: 3 }),
  );
  const clsGraph = gptGraph({ ...CONFIG, head: "classifier", numClasses: 3 }, {
    batch: 1,
    seqLen: 4,
  });
  const { graph, adapter } = vera(clsGraph, {
    r: 2,
    targetModules: ["q_proj"],
    modulesToSave: ["classifier"],
  });
  const params = initParams(graph, { seed: 4 });
  await exportPeft(`${dir}/adapter`, adapter, params, { graph });
  const run = await runCli([
    "merge",
    ...["--backend", "cpu", "--base", `${dir}/base.safetensors`, "--adapter", `${dir}/adapter`],
    ...["--out", `${dir}/merged.safetensors`],
  ]);
  equal(run.code, 0, run.err.join("\n"));
  match(run.out[0], /added 2,/);
  const merged = await loadBaseModel(`${dir}/merged.safetensors`);
  equal(merged.config.head, "classifier");
  equal(merged.config.numClasses, 3);
  deepEqual(merged.weights["classifier.weight"], params["classifier.weight"]);
  deepEqual(merged.weights["classifier.bias"], params["classifier.bias"]);
  ok(merged.weights["lm_head.weight"] !== undefined, "the base's own tensors are kept");
  await Deno.remove(dir, { recursive: true });
});
