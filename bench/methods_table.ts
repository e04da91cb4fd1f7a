/**
 * The paper's comparison, rerun here: fine-tune the committed base model as
 * a spam classifier with head-only, full, LoRA (r=8) and VeRA (r=256)
 * training — same data, steps, batch and seed — and print a markdown table of
 * trainable parameters, test accuracy, adapter bytes and step time.
 *
 *   deno run -A bench/methods_table.ts [--steps 300] [--batch 16] [--out runs/methods]
 */
import { parseArgs } from "node:util";
import { finetuneCommand } from "../cli/_train.ts";
import { DEMO_BASE } from "../cli/_demo.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "300" },
    batch: { type: "string", default: "16" },
    out: { type: "string", default: "runs/methods" },
    backend: { type: "string", default: "webgpu" },
  },
});

const methods: [string, string[]][] = [
  ["head", []],
  ["full", []],
  ["lora", ["--r", "8", "--targets", "q_proj,v_proj"]],
  ["vera", ["--r", "256", "--targets", "q_proj,v_proj"]],
];

const rows: string[] = [];
for (const [method, extra] of methods) {
  const out = `${values.out}/${method}`;
  await Deno.remove(out, { recursive: true }).catch(() => {});
  await finetuneCommand([
    "--base", DEMO_BASE, "--data", "spam", "--method", method, ...extra,
    "--steps", values.steps!, "--batch", values.batch!, "--seed", "0",
    "--backend", values.backend!, "--out", out, "--log-every", "50",
  ], { progress: "lines" });
  const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
  const head = method === "head" || method === "full" ? "" : " + head";
  rows.push(
    `| ${method}${extra.length ? ` (${extra[1] === "8" ? "r=8" : "r=256"})` : ""} | ` +
      `${s.trainable_params.toLocaleString("en-US")}${head ? ` (${head.slice(3)} incl.)` : ""} | ` +
      `${(100 * s.accuracy.test.after).toFixed(1)}% | ` +
      `${s.adapter_bytes === null ? "—" : s.adapter_bytes.toLocaleString("en-US")} | ` +
      `${s.step_ms.toFixed(0)} |`,
  );
}
console.log(`
steps ${values.steps}, batch ${values.batch}, seed 0, base ${DEMO_BASE.split("/").pop()}, backend ${values.backend}

| method | trainable params | test accuracy | adapter bytes (PEFT dir) | step ms |
| --- | ---: | ---: | ---: | ---: |
${rows.join("\n")}`);
