/**
 * The paper's comparison, rerun here: fine-tune the committed base model as
 * a spam classifier with head-only, full, LoRA (r=8) and VeRA (r=256)
 * training — same data, steps, batch and seed — and print a markdown table of
 * trainable parameters, test accuracy, adapter bytes and step time.
 *
 *   deno run -A bench/methods_table.ts [--steps 300] [--batch 16] [--vera-lr 3e-2] [--lora-lr 1e-2] [--out runs/methods]
 */
import { parseArgs } from "node:util";
import { finetuneCommand } from "../cli/train.ts";
import { DEMO_BASE } from "../cli/demo.ts";
import { readPeft } from "../adapters/peft_import.ts";
import { compactFromPeft } from "../adapters/compact.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "300" },
    batch: { type: "string", default: "16" },
    out: { type: "string", default: "runs/methods" },
    backend: { type: "string", default: "webgpu" },
    "vera-lr": { type: "string", default: "3e-2" },
    "lora-lr": { type: "string", default: "1e-2" },
    methods: { type: "string", default: "head,full,lora,vera" },
  },
});

const methods: [string, string[]][] = [
  ["head", []],
  ["full", []],
  ["lora", ["--r", "8", "--targets", "q_proj,v_proj", "--lr", values["lora-lr"]!]],
  ["vera", ["--r", "256", "--targets", "q_proj,v_proj", "--lr", values["vera-lr"]!]],
];

const rows: string[] = [];
const chosen = new Set(values.methods!.split(","));
for (const [method, extra] of methods.filter(([m]) => chosen.has(m))) {
  const out = `${values.out}/${method}`;
  await Deno.remove(out, { recursive: true }).catch(() => {});
  await finetuneCommand([
    "--base",
    DEMO_BASE,
    "--data",
    "spam",
    "--method",
    method,
    ...extra,
    "--steps",
    values.steps!,
    "--batch",
    values.batch!,
    "--seed",
    "0",
    "--backend",
    values.backend!,
    "--out",
    out,
    "--log-every",
    "50",
  ], { progress: "lines" });
  const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
  const compact = s.adapter_bytes === null
    ? "—"
    : compactFromPeft(await readPeft(`${out}/adapter`)).length.toLocaleString("en-US");
  const head = method === "head" || method === "full" ? "" : " + head";
  rows.push(
    `| ${method}${extra.length ? ` (${extra[1] === "8" ? "r=8" : "r=256"})` : ""} | ` +
      `${s.trainable_params.toLocaleString("en-US")}${head ? ` (${head.slice(3)} incl.)` : ""} | ` +
      `${(100 * s.accuracy.test.after).toFixed(1)}% | ` +
      `${
        s.adapter_bytes === null ? "—" : s.adapter_bytes.toLocaleString("en-US")
      } | ${compact} | ` +
      `${s.step_ms.toFixed(0)} |`,
  );
}
console.log(`
steps ${values.steps}, batch ${values.batch}, seed 0, base ${
  DEMO_BASE.split("/").pop()
}, backend ${values.backend}

| method | trainable params | test accuracy | PEFT adapter bytes | compact bytes | step ms |
| --- | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}`);
