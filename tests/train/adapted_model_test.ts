import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { finetuneCommand, pretrainCommand } from "../../cli/train.ts";
import { evalCommand } from "../../cli/eval.ts";
import { loadModel } from "../../nn/families.ts";
import { evaluate, evaluateModel, loadAdapter, withAdapter } from "../../train/adapted_model.ts";
import { trace } from "../../compiler/trace.ts";
import { quietly } from "../cli/_capture.ts";

const TINY = ["--layers", "1", "--d-model", "8", "--heads", "2", "--seq", "16", "--batch", "2"];
const EXAMPLES = [
  { text: "anna", label: 0 },
  { text: "bob", label: 1 },
  { text: "carla", label: 0 },
  { text: "dave", label: 1 },
  { text: "eve", label: 0 },
];

Deno.test("loadAdapter, evaluateModel and withAdapter agree with the CLI", async (t) => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  const quiet = { progress: "none" as const };
  await quietly(() =>
    pretrainCommand(
      ["--data", "names", ...TINY, "--steps", "3", "--eval-batches", "1", "--out", base]
        .concat(["--backend", "cpu"]),
      quiet,
    )
  );
  const finetune = (out: string, more: string[]) =>
    quietly(() =>
      finetuneCommand([
        ...["--base", base, "--data", "names", "--method", "lora", "--r", "2", "--out", out],
        ...["--batch", "2", "--steps", "6", "--eval-limit", "4", "--backend", "cpu", ...more],
      ], quiet)
    );
  const model = await loadModel(base);

  await t.step("a classifier adapter measures as `eval --json` measures it", async () => {
    await finetune(`${dir}/cls`, []);
    const adapter = await loadAdapter(`${dir}/cls/adapter`);
    deepEqual(adapter.labels, ["female", "male"]);
    const mine = await evaluateModel(model, EXAMPLES, { adapter, batch: 2 });
    const data = `${dir}/examples.jsonl`;
    await Deno.writeTextFile(
      data,
      EXAMPLES.map((e) => JSON.stringify({ text: e.text, label: adapter.labels![e.label] }))
        .join("\n"),
    );
    const printed: string[] = [];
    const log = console.log;
    console.log = (l: string) => printed.push(l);
    try {
      await evalCommand([
        ...["--base", base, "--adapter", `${dir}/cls/adapter`, "--data", data],
        ...["--backend", "cpu", "--json", "--batch", "2"],
      ]);
    } finally {
      console.log = log;
    }
    const cli = JSON.parse(printed.at(-1)!);
    equal(mine.count, EXAMPLES.length);
    equal(mine.accuracy, cli.accuracy);
    ok(Math.abs(mine.loss - cli.loss) < 1e-5, `${mine.loss} vs ${cli.loss}`);
  });

  await t.step("a merged language-model adapter scores as the unmerged one", async () => {
    await finetune(`${dir}/lm`, ["--task", "lm", "--lr", "0.1"]);
    const adapter = await loadAdapter(`${dir}/lm/adapter`);
    const docs = [{ prompt: "", completion: "annabel" }, { prompt: "ro", completion: "bert" }];
    const unmerged = await evaluateModel(model, docs, { adapter, batch: 2 });
    const merged = await evaluateModel(await withAdapter(model, adapter), docs, { batch: 2 });
    const plain = await evaluateModel(model, docs, { batch: 2 });
    ok(Math.abs(unmerged.loss - merged.loss) < 1e-4, `${unmerged.loss} vs ${merged.loss}`);
    ok(Math.abs(unmerged.loss - plain.loss) > 1e-4, "the adapter changed the model");
    equal(merged.count, plain.count);
  });

  await t.step("evaluate: a model's metrics, or a graph's outputs on the CPU", async () => {
    const docs = [{ prompt: "", completion: "annabel" }];
    deepEqual(
      await evaluate(model, docs, { batch: 1 }),
      await evaluateModel(model, docs, { batch: 1 }),
    );
    const g = trace((x) => x.mul(2).sum(), [{ name: "x", shape: [3] }]);
    equal(evaluate(g, { inputs: { x: [1, 2, 3] } }).out.data[0], 12);
  });

  await t.step("clear errors", async () => {
    await rejects(evaluateModel(model, []), /no examples/);
    await rejects(evaluateModel(model, EXAMPLES), /no classification head/);
    await rejects(loadAdapter(`${dir}/missing`), /adapter_config\.json/);
  });
  await Deno.remove(dir, { recursive: true });
});
