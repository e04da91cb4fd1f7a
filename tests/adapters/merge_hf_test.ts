import assert from "node:assert/strict";
import { finetuneCommand } from "../../cli/train.ts";
import { predictCommand } from "../../cli/predict.ts";
import { mergeCommand } from "../../cli/formats.ts";
import { cpuMergeRunner } from "../../adapters/merge.ts";
import { classifierArchitecture } from "../../adapters/merge_hf.ts";
import { readSafetensors } from "../../io/safetensors.ts";
import { loadModel } from "../../nn/families.ts";
import { threeClassJsonl } from "../cli/_data_fixtures.ts";
import { quietly as stdout } from "../cli/_capture.ts";

const fixture = (name: string) => new URL(`../fixtures/hf/${name}`, import.meta.url).pathname;

const finetune = (base: string, data: string, out: string, method: string) =>
  stdout(() =>
    finetuneCommand([
      ...["--base", base, "--data", data, "--method", method, "--r", "4", "--out", out],
      ...["--steps", "2", "--batch", "4", "--seq", "12", "--lr", "0.05", "--backend", "cpu"],
    ], { progress: "none" })
  );

const merge = (base: string, adapter: string, out: string) =>
  stdout(() =>
    mergeCommand(["--base", base, "--adapter", adapter, "--out", out, "--json"], cpuMergeRunner)
  );

Deno.test("merge into a Hugging Face directory", async (t) => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/three.jsonl`, threeClassJsonl(12));
  await Deno.writeTextFile(
    `${dir}/lm.jsonl`,
    '{"prompt":"a","completion":"bc"}\n{"text":"hello"}\n',
  );

  await t.step(
    "GPT-2 classifier: Conv1D stays [in, out], new head, config for transformers",
    async () => {
      const base = fixture("tiny-gpt2");
      await finetune(base, `${dir}/three.jsonl`, `${dir}/gpt2`, "lora");
      const out = `${dir}/gpt2-merged`;
      const report = JSON.parse((await merge(base, `${dir}/gpt2/adapter`, out)).at(-1)!);
      assert.deepEqual(report.added, ["score.weight"]);
      assert.equal(report.merged.length, 2);
      const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
      assert.deepEqual(config.architectures, ["GPT2ForSequenceClassification"]);
      assert.deepEqual(config.id2label, { 0: "colour", 1: "fruit", 2: "number" });
      assert.deepEqual(config.label2id, { colour: 0, fruit: 1, number: 2 });
      assert.equal(config.num_labels, 3);
      assert.equal(config.n_embd, 32, "the rest of the base config is kept");
      const merged = await readSafetensors(`${out}/model.safetensors`);
      const original = await readSafetensors(`${base}/model.safetensors`);
      const cAttn = "transformer.h.0.attn.c_attn.weight";
      assert.deepEqual(merged.tensors.get(cAttn)!.shape, original.tensors.get(cAttn)!.shape);
      assert.deepEqual(merged.tensors.get(cAttn)!.shape, [32, 96], "[in, out] as Conv1D stores it");
      assert.notDeepEqual(merged.tensors.get(cAttn)!.data, original.tensors.get(cAttn)!.data);
      const cFc = "transformer.h.0.mlp.c_fc.weight";
      assert.deepEqual(merged.tensors.get(cFc)!.data, original.tensors.get(cFc)!.data);
      assert.deepEqual(merged.tensors.get("score.weight")!.shape, [3, 32]);
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
        assert.equal(
          await Deno.readTextFile(`${out}/${f}`),
          await Deno.readTextFile(`${base}/${f}`),
        );
      }
      assert.ok(!(await Deno.stat(`${out}/score.safetensors`).then(() => true, () => false)));
      // The merged directory predicts what base + adapter predicts.
      const predict = async (args: string[]) =>
        JSON.parse(
          (await stdout(() =>
            predictCommand([...args, "--data", `${dir}/three.jsonl`, "--backend", "cpu", "--json"])
          ))[0],
        ).predictions;
      const adapted = await predict(["--base", base, "--adapter", `${dir}/gpt2/adapter`]);
      const folded = await predict(["--base", out]);
      assert.equal(folded.length, 12);
      adapted.forEach((p: { label: string; probabilities: Record<string, number> }, i: number) => {
        assert.equal(folded[i].label, p.label);
        for (const [k, v] of Object.entries(p.probabilities)) {
          assert.ok(Math.abs(folded[i].probabilities[k] - v) < 1e-5, `${i} ${k}`);
        }
      });
    },
  );

  await t.step("Qwen2 (BF16) VeRA LM adapter: dtype and architecture kept", async () => {
    const base = fixture("tiny-qwen2");
    await finetune(base, `${dir}/lm.jsonl`, `${dir}/qwen`, "vera");
    const out = `${dir}/qwen-merged`;
    const report = JSON.parse((await merge(base, `${dir}/qwen/adapter`, out)).at(-1)!);
    assert.deepEqual(report.added, []);
    const merged = await readSafetensors(`${out}/model.safetensors`);
    for (const [name, t] of merged.tensors) assert.equal(t.dtype, "BF16", name);
    const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assert.deepEqual(config.architectures, ["Qwen2ForCausalLM"]);
    assert.equal(config.id2label, undefined);
    const model = await loadModel(out);
    assert.equal(model.family.name, "llama");
  });

  await t.step("sharded Llama base: one model.safetensors with every tensor", async () => {
    const base = fixture("tiny-llama");
    await finetune(base, `${dir}/three.jsonl`, `${dir}/llama`, "lora");
    const out = `${dir}/llama-merged`;
    const report = JSON.parse((await merge(base, `${dir}/llama/adapter`, out)).at(-1)!);
    const index = JSON.parse(await Deno.readTextFile(`${base}/model.safetensors.index.json`));
    const names = new Set(Object.keys(index.weight_map));
    const merged = await readSafetensors(`${out}/model.safetensors`);
    for (const n of names) {
      if (n.startsWith("lm_head.")) assert.ok(report.dropped.includes(n));
      else assert.ok(merged.tensors.has(n), n);
    }
    assert.ok(merged.tensors.has("score.weight"));
    const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.ok(!files.some((f) => f.startsWith("model-0")), files.join());
  });

  await t.step("architecture names", () => {
    assert.equal(classifierArchitecture("LlamaForCausalLM"), "LlamaForSequenceClassification");
    assert.equal(
      classifierArchitecture("GPT2ForSequenceClassification"),
      "GPT2ForSequenceClassification",
    );
  });

  await Deno.remove(dir, { recursive: true });
});
