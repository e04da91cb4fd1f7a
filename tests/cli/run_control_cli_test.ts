// How a user steers a run: --config files, Ctrl-C and the printed --resume command, pretrain's run
// directory, --json purity and no-command usage. The Ctrl-C case runs cli.ts as a real process
// (`deno test` handles SIGINT itself).
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { finetuneCommand, pretrainCommand, type TrainCommandOptions } from "../../cli/train.ts";
import { main } from "../../cli/main.ts";
import { quietly } from "./_capture.ts";

const QUIET: TrainCommandOptions = { progress: "none" };
const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const TINY = ["--layers", "1", "--d-model", "8", "--heads", "2", "--seq", "16", "--batch", "2"];
const PRETRAIN = ["--data", "names", ...TINY, "--steps", "4", "--eval-batches", "1"];
const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);
const steps = async (dir: string) =>
  (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).step as number
  );

Deno.test("cli run control", async (t) => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;

  await t.step("pretrain writes metrics and a plot to its run directory, from step 0", async () => {
    await quietly(() => pretrainCommand([...PRETRAIN, "--out", base, "--backend", "cpu"], QUIET));
    deepEqual(await steps(`${dir}/base-run`), [0, 1, 4]);
    ok((await Deno.readTextFile(`${dir}/base-run/loss.svg`)).startsWith("<svg"));
    ok(!(await exists(`${dir}/base-run/checkpoint.safetensors`)), "the model file holds it now");
  });

  await t.step("pretrain never overwrites without --force", async () => {
    const before = await Deno.readFile(base);
    await rejects(
      quietly(() => pretrainCommand([...PRETRAIN, "--out", base, "--backend", "cpu"], QUIET)),
      /already exists; pass --force/,
    );
    const other = `${dir}/other.safetensors`;
    await rejects(
      quietly(() =>
        pretrainCommand(
          [...PRETRAIN, "--out", other, "--run-dir", `${dir}/base-run`, "--backend", "cpu"],
          QUIET,
        )
      ),
      /--run-dir .*base-run is not empty/,
    );
    deepEqual(await Deno.readFile(base), before);
    await quietly(() =>
      pretrainCommand([...PRETRAIN, "--out", base, "--backend", "cpu", "--force"], QUIET)
    );
  });

  await t.step(
    "--config holds any flag; the command line wins; unknown keys are errors",
    async () => {
      const config = `${dir}/run.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          base,
          data: "names",
          method: "lora",
          r: 2,
          steps: 9,
          batch: 2,
          "eval-limit": 4,
          "log-every": 1,
          backend: "cpu",
          dropout: 0.1,
          rslora: true,
          "rank-pattern": { q_proj: 4 }, // a JSON-valued flag, written as JSON
        }),
      );
      const out = `${dir}/configured`;
      await quietly(() =>
        finetuneCommand(["--config", config, "--out", out, "--steps", "3"], QUIET)
      );
      const summary = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
      equal(summary.steps, 3, "--steps on the command line wins over the file's 9");
      equal(summary.dropout, 0.1);
      equal(summary.adapter_config.use_rslora, true);
      deepEqual(summary.adapter_config.rank_pattern, { q_proj: 4 });
      // One naming style: every key of summary.json is snake_case, nested ones too.
      const keys = (v: unknown): string[] =>
        v !== null && typeof v === "object" && !Array.isArray(v)
          ? Object.entries(v).flatMap(([k, x]) => [k, ...keys(x)])
          : Array.isArray(v)
          ? v.flatMap(keys)
          : [];
      const camel = keys(summary).filter((k) => /[A-Z]/.test(k));
      deepEqual(camel, []);
      equal(summary.base, base, "the base as it was given");
      await Deno.writeTextFile(config, JSON.stringify({ stepz: 3 }));
      await rejects(
        finetuneCommand(["--config", config, "--out", `${dir}/x`], QUIET),
        /--config .*run\.json: unknown key "stepz"/,
      );
      await Deno.writeTextFile(config, JSON.stringify({ rslora: "yes" }));
      await rejects(
        finetuneCommand(["--config", config, "--out", `${dir}/x`], QUIET),
        /"rslora" must be true or false/,
      );
    },
  );

  await t.step("adapter targeting and the optimizer are flags", async () => {
    const out = `${dir}/targeted`;
    await quietly(() =>
      finetuneCommand([
        ...["--base", base, "--data", "names", "--method", "lora", "--r", "2", "--out", out],
        ...["--batch", "2", "--steps", "2", "--eval-limit", "4", "--backend", "cpu"],
        ...["--target-layers", "0", "--layers-pattern", "layers", "--exclude-modules", "v_proj"],
        ...["--optimizer", "sgd", "--momentum", "0.9", "--warmup", "0", "--clip-norm", "0"],
      ], QUIET)
    );
    const summary = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
    // q_proj of layer 0 only (r·(in + out) = 2·(8 + 8)) plus the classifier head (8·2 + 2).
    equal(summary.trainable_params, 2 * (8 + 8) + (8 * 2 + 2));
    equal(summary.optimizer, "sgd");
    deepEqual(summary.adapter_config.layers_to_transform, [0]);
    deepEqual(summary.adapter_config.exclude_modules, ["v_proj"]);
    await rejects(
      finetuneCommand([
        "--base",
        base,
        "--data",
        "names",
        "--method",
        "lora",
        "--out",
        `${dir}/y`,
        "--betas",
        "0.9",
      ], QUIET),
      /--betas must be two numbers B1,B2/,
    );
  });

  await t.step("Ctrl-C saves a checkpoint and prints the exact command that resumes", async () => {
    const out = "interrupted";
    const args = [
      ...["--base", base, "--data", "names", "--method", "vera", "--r", "2", "--out", out],
      ...["--batch", "2", "--steps", "600", "--log-every", "20", "--eval-limit", "4"],
      ...["--backend", "cpu"],
    ];
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "finetune", ...args],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Interrupt once training is under way (a step line has been printed).
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    while (!/step 20\/600/.test(stderr)) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += value;
    }
    child.kill("SIGINT");
    for (let r = await reader.read(); !r.done; r = await reader.read()) stderr += r.value;
    const status = await child.status;
    await child.stdout.cancel();
    equal(status.code, 130, stderr);
    const stopped = stderr.match(/interrupted at step (\d+); checkpoint saved to (\S+)/);
    ok(stopped, stderr);
    equal(stopped[2], `${out}/checkpoint.safetensors`);
    const command = stderr.match(/resume with:\n {2}(.*)\n/)?.[1];
    ok(command, stderr);
    equal(command, `deno run -A ${CLI} finetune ${args.join(" ")} --resume`);
    // The printed command, run as printed, finishes the run from where it stopped.
    const resumed = await new Deno.Command("sh", {
      args: ["-c", command.replace(/^deno /, `'${Deno.execPath()}' `)],
      cwd: dir,
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(resumed.stderr);
    equal(resumed.code, 0, log);
    match(log, new RegExp(`resuming from step ${stopped[1]} of 600`));
    const logged = await steps(`${dir}/${out}`);
    equal(new Set(logged).size, logged.length, "each step logged once");
    equal(logged.at(-1), 600);
    ok(await exists(`${dir}/${out}/adapter/adapter_config.json`));
  });

  await t.step("no command: usage on stderr and exit status 1", async () => {
    const lines: string[] = [];
    const error = console.error;
    console.error = (l: string) => lines.push(l);
    try {
      equal(await main([]), 1);
    } finally {
      console.error = error;
    }
    match(lines.join("\n"), /^wgrad .*\n\nusage: deno task cli <command>/);
  });

  await Deno.remove(dir, { recursive: true });
});
