import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { UsageError } from "../../cli/_args.ts";
import { finetuneCommand, pretrainCommand, type TrainCommandOptions } from "../../cli/_train.ts";
import { GPT_METADATA_KEY } from "../../train/checkpoint.ts";
import { readSafetensors, writeSafetensors } from "../../io/safetensors.ts";
import { readPeft } from "../../adapters/peft_import.ts";
import { cpuRunner } from "../../train/runner.ts";

const QUIET: TrainCommandOptions = { progress: "none" };

/** Runs a command with console.log/error captured; resolves to the printed stdout lines. */
async function quietly(run: () => Promise<void>): Promise<string[]> {
  const out: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = () => {};
  try {
    await run();
    return out;
  } finally {
    console.log = log;
    console.error = error;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function metricLines(dir: string): Promise<Record<string, number>[]> {
  return (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n")
    .map((l) => ({ ...JSON.parse(l), tokens_per_s: 0 }));
}

// The CPU reference keeps these end-to-end runs fast; WebGPU runs are tested in tests/train.
const TINY = [
  "--layers",
  "1",
  "--d-model",
  "8",
  "--heads",
  "2",
  "--seq",
  "16",
  "--batch",
  "2",
  "--backend",
  "cpu",
];

Deno.test("cli pretrain and finetune", async (t) => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  const finetune = (out: string, method: string, more: string[] = [], options = QUIET) =>
    quietly(() =>
      finetuneCommand([
        ...["--base", base, "--data", "names", "--method", method, "--out", `${dir}/${out}`],
        ...["--r", "4", "--steps", "6", "--batch", "2", "--eval-limit", "4"],
        ...["--log-every", "1", "--save-every", "2", "--backend", "cpu", ...more],
      ], options)
    );

  await t.step("pretrain writes the base weights with the model config", async () => {
    const out = await quietly(() =>
      pretrainCommand(
        [
          "--data",
          "names",
          "--out",
          base,
          ...TINY,
          "--steps",
          "3",
          "--eval-batches",
          "1",
          "--json",
        ],
        QUIET,
      )
    );
    const summary = JSON.parse(out.at(-1)!);
    ok(Number.isFinite(summary.loss) && Number.isFinite(summary.validation_loss));
    const file = await readSafetensors(base);
    deepEqual(JSON.parse(file.metadata[GPT_METADATA_KEY]), {
      vocabSize: 260,
      maxSeqLen: 16,
      dModel: 8,
      heads: 2,
      layers: 1,
      head: "lm",
    });
    ok(file.tensors.has("lm_head.weight") && file.tensors.has("layers.0.attn.q_proj.weight"));
  });

  await t.step("finetune --method vera writes every run file", async () => {
    const out = await finetune("vera", "vera", ["--json"]);
    const run = `${dir}/vera`;
    for (const f of ["adapter/adapter_config.json", "adapter/adapter_model.safetensors"]) {
      ok(await exists(`${run}/${f}`), f);
    }
    for (const f of ["metrics.jsonl", "loss.svg", "summary.json", "checkpoint.safetensors"]) {
      ok(await exists(`${run}/${f}`), f);
    }
    const summary = JSON.parse(await Deno.readTextFile(`${run}/summary.json`));
    equal(summary.method, "vera");
    equal(summary.trainable_params, 2 * (8 + 4) + (8 * 2 + 2), "Σ (out + r) + the classifier");
    for (const split of ["validation", "test"]) {
      for (const when of ["before", "after"]) {
        const acc = summary.accuracy[split][when];
        ok(acc >= 0 && acc <= 1, `${split} ${when}: ${acc}`);
      }
    }
    ok(summary.adapter_bytes > 0 && summary.step_ms > 0);
    deepEqual(JSON.parse(out.at(-1)!).trainable_params, summary.trainable_params);
    const adapter = await readPeft(`${run}/adapter`);
    equal(adapter.kind, "vera");
    ok("classifier.weight" in adapter.tensors, "the head is saved with it");
    deepEqual((await metricLines(run)).map((r) => r.step), [1, 2, 3, 4, 5, 6]);
    ok((await Deno.readTextFile(`${run}/loss.svg`)).startsWith("<svg"));
  });

  await t.step("finetune --method head: no adapter, only the classifier trains", async () => {
    await finetune("head", "head");
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/head/summary.json`));
    equal(summary.trainable_params, 8 * 2 + 2);
    equal(summary.adapter_bytes, null);
    ok(!(await exists(`${dir}/head/adapter`)));
  });

  await t.step("--resume after a crash gives the uninterrupted run's metrics", async () => {
    await finetune("lora", "lora");
    let runs = 0;
    const crashing: TrainCommandOptions = {
      progress: "none",
      backends: {
        cpu: (graph) => {
          const inner = cpuRunner(graph);
          if (graph.meta.updates === undefined) return inner;
          return {
            ...inner,
            run: (inputs, o) =>
              ++runs === 5 ? Promise.reject(new Error("crash")) : inner.run(inputs, o),
          };
        },
      },
    };
    await rejects(finetune("lora2", "lora", [], crashing), /crash/);
    await rejects(finetune("lora2", "lora"), /already holds a run; pass --resume/);
    await finetune("lora2", "lora", ["--resume"]);
    deepEqual(await metricLines(`${dir}/lora2`), await metricLines(`${dir}/lora`));
    const summary = async (name: string) => {
      const s = JSON.parse(await Deno.readTextFile(`${dir}/${name}/summary.json`));
      return [s.accuracy, s.loss];
    };
    deepEqual(await summary("lora2"), await summary("lora"));
    await rejects(finetune("lora2", "lora", ["--resume"]), /nothing left to run/);
    await rejects(
      finetune("lora2", "lora", ["--resume", "--seed", "1"]),
      /written by a different run \(seed/,
    );
  });

  await t.step("bad input: one clear error, no output left behind", async () => {
    const plain = `${dir}/plain.safetensors`;
    await writeSafetensors(plain, { w: { dtype: "F32", shape: [1], data: new Float32Array(1) } });
    const cases: [string[], RegExp][] = [
      [
        ["--base", `${dir}/missing.safetensors`],
        /cannot read (base )?model .*missing\.safetensors/,
      ],
      [["--base", plain], /plain\.safetensors: no "wgrad\.gpt" metadata \(not a base model/],
      [["--method", "dora"], /--method must be vera, lora, full or head, got "dora"/],
      [["--seq", "32"], /--seq 32 exceeds the base model's maxSeqLen 16 \(.*base\.safetensors\)/],
      [["--bogus", "1"], /finetune: Unknown option '--bogus'/],
      [["--data", "iris"], /--data must be spam, names or a .jsonl, .csv or .txt file, got "iris"/],
      [["--backend", "tpu"], /--backend tpu is not available \(available: cpu, webgpu\)/],
      [["--steps", "0"], /--steps must be an integer ≥ 1, got "0"/],
      [["--resume"], /--resume: no .*checkpoint\.safetensors/],
      [["--targets", "nowhere"], /no module matched targetModules \["nowhere"\]/],
    ];
    for (const [flags, expected] of cases) {
      const args = [
        "--base",
        base,
        "--data",
        "names",
        "--method",
        "vera",
        "--out",
        `${dir}/bad`,
        "--backend",
        "cpu",
      ];
      const error = await finetuneCommand([...args, ...flags], QUIET).then(() => null, (e) => e);
      ok(error instanceof UsageError, `${flags}: ${error}`);
      match(error.message, expected);
      ok(!(await exists(`${dir}/bad`)), `${flags}: nothing written`);
    }
    await rejects(
      pretrainCommand(["--data", "names", "--out", `${dir}/x.safetensors`, "--heads", "3"], QUIET),
      /pretrain: gpt: 3 heads do not divide dModel 64/,
    );
    await rejects(pretrainCommand(["--data", "names"], QUIET), /pretrain: --out is required/);
    ok(!(await exists(`${dir}/x.safetensors`)));
  });

  await Deno.remove(dir, { recursive: true });
});
