/**
 * Fine-tune the committed pretrained GPT as a spam classifier with VeRA using
 * `fit` (the `finetune` command does the same with more options): VeRA on the
 * family's default targets (q_proj, v_proj), the new two-class head trained
 * too. Then export the adapter for PEFT, load it back and measure it.
 *
 *   deno run -A examples/vera_finetune.ts [steps]
 */
import { evaluate, exportPeft, fit, loadAdapter, loadModel } from "../mod.ts";
import { classificationTask } from "../data/mod.ts";

const steps = Number(Deno.args[0] ?? 60);
const path = new URL("../models/gpt-spam-2L-d64-t128.safetensors", import.meta.url).pathname;
const model = await loadModel(path);
const spam = classificationTask("spam"); // { train, validation, test }: { text, label } examples

const { history, adapter, params, graph } = await fit({
  model,
  adapter: { vera: { r: 256 } },
  data: spam.train,
  eval: { examples: spam.validation.filter((_, i) => i % 2 === 0) }, // every other one, for speed
  steps,
  batch: 16,
  schedule: 1e-2,
  backend: "webgpu",
  progress: "auto",
});
const pct = (v?: number) => `${(100 * v!).toFixed(1)}%`;
const [before, after] = [history[0], history.at(-1)!].map((r) => pct(r.eval_accuracy));
console.log(`validation accuracy: ${before} → ${after} after ${steps} steps`);

const dir = `${await Deno.makeTempDir()}/adapter`;
await exportPeft(dir, adapter!, params, { graph }); // PeftModel.from_pretrained loads it
const test = await evaluate(model, spam.test, {
  adapter: await loadAdapter(dir),
  backend: "webgpu",
});
console.log(`test accuracy with the adapter in ${dir}: ${pct(test.accuracy)}`);
