import assert from "node:assert/strict";
import { finetuneCommand, type TrainCommandOptions } from "../../cli/train.ts";
import { readPeft } from "../../adapters/peft_import.ts";
import { threeClassJsonl, tinyBase } from "./_data_fixtures.ts";
import { quietly } from "./_capture.ts";

const QUIET: TrainCommandOptions = { progress: "none" };

Deno.test("finetune on your own data files", async (t) => {
  const dir = await Deno.makeTempDir();
  const base = await tinyBase(dir);
  const run = (out: string, more: string[]) =>
    quietly(() =>
      finetuneCommand([
        ...["--base", base, "--out", `${dir}/${out}`, "--steps", "3", "--batch", "4"],
        ...["--r", "4", "--backend", "cpu", "--log-every", "1", "--json", ...more],
      ], QUIET)
    );

  await t.step("jsonl with three string classes: label names kept in the adapter", async () => {
    await Deno.writeTextFile(`${dir}/three.jsonl`, threeClassJsonl());
    const out = await run("three", ["--data", `${dir}/three.jsonl`, "--method", "lora"]);
    const summary = JSON.parse(out.at(-1)!);
    assert.equal(summary.task, "classification");
    assert.deepEqual(summary.labels, ["colour", "fruit", "number"]);
    const adapter = await readPeft(`${dir}/three/adapter`);
    assert.deepEqual(adapter.config.id2label, { 0: "colour", 1: "fruit", 2: "number" });
    assert.deepEqual(adapter.config.label2id, { colour: 0, fruit: 1, number: 2 });
    assert.deepEqual(adapter.config.modules_to_save, ["classifier"]);
    assert.deepEqual(adapter.shapes["classifier.weight"], [3, 8]);
  });

  await t.step("csv with custom columns and a separate eval file", async () => {
    const csv = (n: number) =>
      "id,message,kind\n" +
      Array.from({ length: n }, (_, i) => `${i},"msg, ${i}",${i % 2 ? "b" : "a"}`).join("\n");
    await Deno.writeTextFile(`${dir}/train.csv`, csv(12));
    await Deno.writeTextFile(`${dir}/eval.csv`, csv(5));
    const out = await run("csv", [
      ...["--data", `${dir}/train.csv`, "--eval-data", `${dir}/eval.csv`, "--method", "head"],
      ...["--text-column", "message", "--label-column", "kind"],
    ]);
    const summary = JSON.parse(out.at(-1)!);
    assert.deepEqual(summary.labels, ["a", "b"]);
    // The eval file (5 rows: a b a b a) is the test split: per-class metrics of the trained model.
    const m = summary.test_metrics;
    assert.deepEqual(m.per_class.map((c: { support: number }) => c.support), [3, 2]);
    assert.equal(m.confusion.flat().reduce((a: number, b: number) => a + b, 0), 5);
    assert.equal(m.accuracy, summary.accuracy.test.after);
    assert.ok(summary.accuracy.test.after >= 0 && summary.accuracy.test.after <= 1);
  });

  await t.step(
    "prompt/completion jsonl trains a language model (completion-only loss)",
    async () => {
      const rows = Array.from(
        { length: 20 },
        (_, i) => JSON.stringify({ prompt: `Q${i}: `, completion: `A${i}` }),
      );
      await Deno.writeTextFile(`${dir}/sft.jsonl`, rows.join("\n"));
      const out = await run("sft", ["--data", `${dir}/sft.jsonl`, "--method", "vera"]);
      const summary = JSON.parse(out.at(-1)!);
      assert.equal(summary.task, "lm");
      assert.equal(summary.accuracy, null);
      assert.ok(Number.isFinite(summary.loss.train));
      const adapter = await readPeft(`${dir}/sft/adapter`);
      assert.equal(adapter.config.modules_to_save, null);
      assert.equal(adapter.config.id2label, undefined);
    },
  );

  await t.step(
    "Hugging Face bases: PEFT task type, fan_in_fan_out and the family's targets",
    async () => {
      const fixture = (name: string) => new URL(`../fixtures/hf/${name}`, import.meta.url).pathname;
      const hf = (base: string, data: string, out: string) =>
        quietly(() =>
          finetuneCommand([
            ...["--base", base, "--data", data, "--method", "lora", "--r", "2", "--out", out],
            ...["--steps", "1", "--batch", "2", "--seq", "8", "--backend", "cpu"],
          ], QUIET)
        );
      await hf(fixture("tiny-gpt2"), `${dir}/three.jsonl`, `${dir}/hf-cls`);
      const cls = await readPeft(`${dir}/hf-cls/adapter`);
      assert.equal(cls.config.task_type, "SEQ_CLS");
      assert.equal(cls.config.fan_in_fan_out, true, "GPT-2 stores Conv1D weights [in, out]");
      assert.deepEqual(cls.config.target_modules, ["c_attn"]);
      assert.deepEqual(cls.config.modules_to_save, ["score"]);
      assert.equal(cls.config.base_model_name_or_path, fixture("tiny-gpt2"));
      assert.deepEqual(cls.shapes["score.weight"], [3, 32]);
      assert.deepEqual(cls.shapes["transformer.h.0.attn.c_attn.lora_A.weight"], [2, 32]);
      assert.deepEqual(cls.shapes["transformer.h.0.attn.c_attn.lora_B.weight"], [96, 2]);
      await hf(fixture("tiny-llama"), `${dir}/sft.jsonl`, `${dir}/hf-lm`);
      const lm = await readPeft(`${dir}/hf-lm/adapter`);
      assert.equal(lm.config.task_type, "CAUSAL_LM");
      assert.equal(lm.config.fan_in_fan_out, false);
      assert.deepEqual(lm.config.target_modules, ["q_proj", "v_proj"]);
      assert.equal(lm.config.modules_to_save, null);
    },
  );

  await t.step("bad data: one error naming file, line and field; nothing written", async () => {
    await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"text":"a","label":"x"}\n{"text":"b"}\n');
    await assert.rejects(
      run("bad", ["--data", `${dir}/bad.jsonl`, "--method", "lora"]),
      /bad.jsonl:2: missing field "label"/,
    );
    await assert.rejects(
      run("bad", ["--data", `${dir}/sft.jsonl`, "--method", "head"]),
      /--method head trains a classification head/,
    );
    await assert.rejects(
      run("bad", ["--data", `${dir}/three.jsonl`, "--method", "lora", "--task", "regression"]),
      /--task must be lm or classification, got "regression"/,
    );
    assert.ok(!(await Deno.stat(`${dir}/bad`).then(() => true, () => false)));
  });

  await Deno.remove(dir, { recursive: true });
});
