import assert from "node:assert/strict";
import { finetuneCommand } from "../../cli/train.ts";
import { predictCommand } from "../../cli/predict.ts";
import { evalCommand } from "../../cli/eval.ts";
import { main } from "../../cli/main.ts";
import { threeClassJsonl, tinyBase } from "./_data_fixtures.ts";
import { quietly as stdout } from "./_capture.ts";

const GPT2 = "tests/fixtures/hf/tiny-gpt2";

Deno.test("predict and eval", async (t) => {
  const dir = await Deno.makeTempDir();
  const base = await tinyBase(dir);
  await Deno.writeTextFile(`${dir}/three.jsonl`, threeClassJsonl(12));
  await stdout(() =>
    finetuneCommand([
      ...["--base", base, "--data", `${dir}/three.jsonl`, "--method", "vera", "--r", "4"],
      ...["--out", `${dir}/run`, "--steps", "2", "--batch", "4", "--backend", "cpu"],
    ], { progress: "none" })
  );
  const adapter = `${dir}/run/adapter`;
  /** The adapted model on the three-class file, on the cpu backend, plus `extra` flags. */
  const onThree = (...extra: string[]) => [
    ...["--base", base, "--adapter", adapter, "--data", `${dir}/three.jsonl`, "--backend", "cpu"],
    ...extra,
  ];

  await t.step("predict: one line per example with the label and every probability", async () => {
    const lines = await stdout(() => predictCommand(onThree()));
    assert.equal(lines.length, 12);
    for (const line of lines) {
      const [label, probs] = line.split("\t");
      assert.ok(["colour", "fruit", "number"].includes(label), line);
      const p = probs.split(" ").map((kv) => Number(kv.split("=")[1]));
      assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-3, line);
    }
  });

  await t.step("predict --json: one document; unlabelled rows allowed; cpu = webgpu", async () => {
    await Deno.writeTextFile(`${dir}/new.jsonl`, '{"text":"blue 7"}\n{"text":"fig 9"}\n');
    const run = (backend: string) =>
      stdout(() =>
        predictCommand([
          ...["--base", base, "--adapter", adapter, "--data", `${dir}/new.jsonl`],
          ...["--backend", backend, "--json"],
        ])
      );
    const [cpu] = await run("cpu");
    const doc = JSON.parse(cpu);
    assert.deepEqual(doc.labels, ["colour", "fruit", "number"]);
    assert.equal(doc.predictions.length, 2);
    assert.equal(doc.predictions[0].text, "blue 7");
    const gpu = JSON.parse((await run("webgpu"))[0]);
    doc.predictions.forEach((p: { probabilities: Record<string, number> }, i: number) => {
      for (const [k, v] of Object.entries(p.probabilities)) {
        assert.ok(Math.abs(v - gpu.predictions[i].probabilities[k]) < 1e-4);
      }
    });
  });

  await t.step(
    "eval --json: accuracy, per-class F1, macro-F1, confusion that agree with predict",
    async () => {
      const [json] = await stdout(() => evalCommand(onThree("--json")));
      const m = JSON.parse(json);
      assert.equal(m.task, "classification");
      assert.equal(m.count, 12);
      assert.equal(m.confusion.flat().reduce((a: number, b: number) => a + b, 0), 12);
      assert.deepEqual(m.per_class.map((c: { support: number }) => c.support), [4, 4, 4]);
      const [p] = await stdout(() => predictCommand(onThree("--json")));
      const hits =
        JSON.parse(p).predictions.filter((x: { label: string; true_label: string }) =>
          x.label === x.true_label
        ).length;
      assert.equal(m.accuracy, hits / 12);
      const human = await stdout(() => evalCommand(onThree()));
      assert.match(human.join("\n"), /macro-F1[\s\S]*confusion/);
    },
  );

  await t.step("LM eval and predict on a Hugging Face directory", async () => {
    await Deno.writeTextFile(`${dir}/doc.txt`, "hello world, this is text");
    const [json] = await stdout(() =>
      evalCommand(["--base", GPT2, "--data", `${dir}/doc.txt`, "--backend", "cpu", "--json"])
    );
    const m = JSON.parse(json);
    assert.equal(m.task, "lm");
    assert.ok(m.tokens > 0 && Math.abs(m.perplexity - Math.exp(m.loss)) < 1e-9);
    const [p] = await stdout(() =>
      predictCommand(["--base", GPT2, "--data", `${dir}/doc.txt`, "--backend", "cpu", "--json"])
    );
    assert.ok(Math.abs(JSON.parse(p).predictions[0].loss - m.loss) < 1e-9);
  });

  await t.step("errors: one line naming file and field, exit 1", async () => {
    await Deno.writeTextFile(`${dir}/other.jsonl`, '{"text":"x","label":"weather"}\n');
    const errors: string[] = [];
    const { error } = console;
    console.error = (...a: unknown[]) => errors.push(a.join(" "));
    try {
      const code = await main([
        ...["eval", "--base", base, "--adapter", adapter, "--data", `${dir}/other.jsonl`],
        ...["--backend", "cpu"],
      ]);
      assert.equal(code, 1);
      assert.match(
        errors[0],
        /^error: .*other.jsonl:1: label "weather" is not one of the model's classes \(colour, fruit, number\)$/,
      );
      assert.equal(
        await main([
          "eval",
          "--base",
          base,
          "--data",
          `${dir}/new.jsonl`,
          "--task",
          "classification",
          "--backend",
          "cpu",
        ]),
        1,
      );
      assert.match(errors[1], /no classification head "classifier.weight"/);
      assert.equal(
        await main([
          "predict",
          "--base",
          base,
          "--adapter",
          `${dir}/nope`,
          "--data",
          `${dir}/new.jsonl`,
        ]),
        1,
      );
      assert.match(errors[2], /PEFT adapter .*nope: cannot read adapter_config.json/);
      assert.equal(errors.length, 3);
    } finally {
      console.error = error;
    }
  });

  await Deno.remove(dir, { recursive: true });
});
