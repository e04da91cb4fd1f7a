import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { UsageError } from "../../cli/_args.ts";
import { finetuneCommand, pretrainCommand, type TrainCommandOptions } from "../../cli/train.ts";
import { GPT_METADATA_KEY } from "../../train/checkpoint.ts";
import { readSafetensors, writeSafetensors } from "../../io/safetensors.ts";
import { readPeft } from "../../adapters/peft_import.ts";
import { cpuRunner } from "../../train/runner.ts";
import { quietly } from "./_capture.ts";

const QUIET: TrainCommandOptions = { progress: "none" };

/** Runs a command with console.log/error captured; resolves to the printed stdout lines. */

/** Options whose CPU backend fails the `n`-th training step, like a process killed there. */
function crashingAtRun(n: number): TrainCommandOptions {
  let runs = 0;
  return {
    progress: "none",
    backends: {
      cpu: (graph) => {
        const inner = cpuRunner(graph);
        if (graph.meta.updates === undefined) return inner;
        return {
          ...inner,
          run: (inputs, o) =>
            ++runs === n ? Promise.reject(new Error("crash")) : inner.run(inputs, o),
        };
      },
    },
  };
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
        ...["--batch", "2", "--eval-limit", "4"],
        ...(more.includes("--r") ? [] : ["--r", "4"]),
        ...(more.includes("--steps") ? [] : ["--steps", "6"]),
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
    const records = await metricLines(run);
    // Step 0 is the untrained model's evaluation, so the curves start where training did.
    deepEqual(records.map((r) => r.step), [0, 1, 2, 3, 4, 5, 6]);
    const first = JSON.parse((await Deno.readTextFile(`${run}/metrics.jsonl`)).split("\n")[0]);
    deepEqual(Object.keys(first).sort(), ["eval_accuracy", "eval_loss", "step"]);
    equal(records[0].eval_accuracy, summary.accuracy.validation.before);
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
    const crashing = crashingAtRun(5);
    await rejects(finetune("lora2", "lora", [], crashing), /crash/);
    await rejects(finetune("lora2", "lora"), /already holds a run; pass --resume/);
    await finetune("lora2", "lora", ["--resume"]);
    deepEqual(await metricLines(`${dir}/lora2`), await metricLines(`${dir}/lora`));
    const summary = async (name: string) => {
      const s = JSON.parse(await Deno.readTextFile(`${dir}/${name}/summary.json`));
      return [s.accuracy, s.loss];
    };
    deepEqual(await summary("lora2"), await summary("lora"));
    // Killed after the last checkpoint, before adapter/ and summary.json: --resume finishes it.
    const adapterBefore = await Deno.readFile(`${dir}/lora2/adapter/adapter_model.safetensors`);
    await Deno.remove(`${dir}/lora2/adapter`, { recursive: true });
    await Deno.remove(`${dir}/lora2/summary.json`);
    await rejects(finetune("lora2", "lora"), /already holds a run; pass --resume/);
    await finetune("lora2", "lora", ["--resume"]);
    deepEqual(await Deno.readFile(`${dir}/lora2/adapter/adapter_model.safetensors`), adapterBefore);
    deepEqual(await summary("lora2"), await summary("lora"));
    deepEqual(await metricLines(`${dir}/lora2`), await metricLines(`${dir}/lora`));
    await rejects(
      finetune("lora2", "lora", ["--resume", "--seed", "1"]),
      /written by a different run \(seed/,
    );
  });

  await t.step("--resume --steps N extends a finished run; fewer steps are refused", async () => {
    await finetune("extend", "lora");
    await finetune("extend", "lora", ["--resume", "--steps", "9"]);
    const lines = await metricLines(`${dir}/extend`);
    deepEqual(lines.map((l) => l.step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    equal(lines[7].steps_before, 6);
    equal(lines[7].steps, 9);
    equal(JSON.parse(await Deno.readTextFile(`${dir}/extend/summary.json`)).steps, 9);
    await rejects(
      finetune("extend", "lora", ["--resume", "--steps", "8"]),
      /--steps 8 is less than the run's 9 steps/,
    );
  });

  await t.step("a torn last metrics line is dropped with a warning on --resume", async () => {
    const crashing = crashingAtRun(5);
    await rejects(finetune("torn", "lora", [], crashing), /crash/);
    await Deno.writeTextFile(`${dir}/torn/metrics.jsonl`, '{"step":5,"lo', { append: true });
    await finetune("torn", "lora", ["--resume"]);
    deepEqual(await metricLines(`${dir}/torn`), await metricLines(`${dir}/lora`));
    // A bad line that is not the last one is an error naming the file and the line.
    const text = await Deno.readTextFile(`${dir}/torn/metrics.jsonl`);
    await Deno.writeTextFile(`${dir}/torn/metrics.jsonl`, "{oops\n" + text);
    await rejects(
      finetune("torn", "lora", ["--resume"]),
      /torn\/metrics\.jsonl: line 1 is not valid JSON/,
    );
  });

  await t.step("a checkpoint without its data position or seed is refused", async () => {
    await finetune("nodata", "lora");
    const path = `${dir}/nodata/checkpoint.safetensors`;
    const file = await readSafetensors(path);
    for (const field of ["data", "rng"]) {
      const meta = JSON.parse(file.metadata["wgrad.checkpoint"]);
      meta[field] = null;
      const tensors = Object.fromEntries(
        [...file.tensors].map((
          [n, t],
        ) => [n, { dtype: "F32" as const, shape: t.shape, data: t.data }]),
      );
      await writeSafetensors(path, tensors, { "wgrad.checkpoint": JSON.stringify(meta) });
      await rejects(
        finetune("nodata", "lora", ["--resume", "--steps", "8"]),
        new RegExp(`checkpoint\\.safetensors is incomplete: its "${field}" field is empty`),
      );
    }
  });

  await t.step(
    "two finetunes into one --out: the second is refused while the first runs",
    async () => {
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => release = r);
      const slow: TrainCommandOptions = {
        progress: "none",
        backends: {
          cpu: (graph) => {
            const inner = cpuRunner(graph);
            if (graph.meta.updates === undefined) return inner;
            return { ...inner, run: async (inputs, o) => (await gate, inner.run(inputs, o)) };
          },
        },
      };
      const first = finetune("locked", "lora", [], slow);
      await new Promise((r) => setTimeout(r, 50));
      await rejects(
        finetune("locked", "lora"),
        /finetune: another wgrad run is writing to .*locked/,
      );
      release();
      await first;
      ok(await exists(`${dir}/locked/adapter/adapter_config.json`));
    },
  );

  await t.step("impossible sizes are refused from the shapes, before any allocation", async () => {
    const rss = Deno.memoryUsage().rss;
    await rejects(
      finetune("huge", "vera", ["--r", "1000000000"]),
      /finetune: this run needs at least .* GB \(params .*, random projections .* GB; largest tensor random projection \(stream \d\) \[.*1000000000.*\] .* GB\), more than the .* of memory available; lower --r/,
    );
    ok(Deno.memoryUsage().rss - rss < 256 * 1024 ** 2, "refused without allocating");
    ok(!(await exists(`${dir}/huge`)));
    // A base whose metadata claims a width its tensors do not have.
    const file = await readSafetensors(base);
    const meta = JSON.parse(file.metadata[GPT_METADATA_KEY]);
    const lying = `${dir}/lying.safetensors`;
    await writeSafetensors(
      lying,
      Object.fromEntries(
        [...file.tensors].map((
          [n, t],
        ) => [n, { dtype: "F32" as const, shape: t.shape, data: t.data }]),
      ),
      { [GPT_METADATA_KEY]: JSON.stringify({ ...meta, dModel: 1000000, heads: 1 }) },
    );
    await rejects(
      quietly(() =>
        finetuneCommand([
          ...["--base", lying, "--data", "names", "--method", "vera", "--out", `${dir}/lie`],
          ...["--backend", "cpu", "--steps", "1"],
        ], QUIET)
      ),
      /lying\.safetensors: bad "wgrad\.gpt" metadata: "dModel" is 1000000, more than the file's weight values/,
    );
    ok(Deno.memoryUsage().rss - rss < 256 * 1024 ** 2, "refused without allocating");
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
      [["--bogus", "1"], /finetune: unknown flag --bogus \(flags: --base, --data, /],
      [["--data", "iris"], /--data must be spam, names or a .jsonl, .csv or .txt file, got "iris"/],
      [["--backend", "tpu"], /--backend must be auto, webgpu, wasm, cpu; got "tpu"/],
      [["--steps", "0"], /--steps must be an integer ≥ 1, got 0/],
      [["--backend", "toString"], /--backend must be auto, webgpu, wasm, cpu; got "toString"/],
      [
        ["--backend", "constructor"],
        /--backend must be auto, webgpu, wasm, cpu; got "constructor"/,
      ],
      [["--steps", "1e1"], /--steps must be a decimal integer, got "1e1"/],
      [["--steps", "0x3"], /--steps must be a decimal integer, got "0x3"/],
      [["--steps", " 3 "], /--steps must be a decimal integer, got " 3 "/],
      [["--steps", "-2"], /--steps must be an integer ≥ 1, got -2/],
      [["--steps=-2"], /--steps must be an integer ≥ 1, got -2/],
      [["--lr", "-1"], /--lr must be a finite number > 0, got -1/],
      [["--lr", "0"], /--lr must be a finite number > 0, got 0/],
      [["--lr", "Infinity"], /--lr must be a decimal number, got "Infinity"/],
      [["--head-lr", "nan"], /--head-lr must be a decimal number, got "nan"/],
      [["--steps", "3", "--steps", "4"], /finetune: --steps is given more than once/],
      [["--out", "-x"], /--out needs a value; a value starting with "-" is written --out=VALUE/],
      [["--steps"], /finetune: --steps needs a value/],
      [["--resume"], /--resume: no .*checkpoint\.safetensors/],
      [["--targets", "nowhere"], /no module matched targetModules \["nowhere"\]/],
    ];
    const defaults: Record<string, string> = {
      base,
      data: "names",
      method: "vera",
      out: `${dir}/bad`,
      backend: "cpu",
    };
    for (const [flags, expected] of cases) {
      // A case's flags replace the defaults of the same name (a flag given twice is an error).
      const given = new Set(flags.filter((f) => f.startsWith("--")).map((f) => f.slice(2)));
      const args = Object.entries(defaults).filter(([k]) => !given.has(k))
        .flatMap(([k, v]) => [`--${k}`, v]);
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
    await rejects(
      pretrainCommand(["--data", "names", "--out", base, ...TINY], QUIET),
      /pretrain: --out .*base\.safetensors already exists; pass --force to replace it/,
    );
    ok(!(await exists(`${dir}/x.safetensors`)));
  });

  await Deno.remove(dir, { recursive: true });
});
