// finetune and pretrain never overwrite without --force, never delete files they did not write,
// never strand a run (a killed process leaves no stale lock), and refuse bad runs before any work.
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { finetuneCommand, pretrainCommand, type TrainCommandOptions } from "../../cli/train.ts";
import { readSafetensors, writeSafetensors } from "../../io/safetensors.ts";
import { cpuRunner } from "../../train/runner.ts";
import { runCli } from "./_capture.ts";

const QUIET: TrainCommandOptions = { progress: "none" };
const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);
const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
const steps = async (dir: string) =>
  (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).step
  );

async function quietly<T>(run: () => Promise<T>): Promise<T> {
  const { log, error } = console;
  console.log = console.error = () => {};
  try {
    return await run();
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** A cpu backend whose training steps wait for `gate` (to hold a run open). */
function gated(gate: Promise<void>): TrainCommandOptions {
  return {
    progress: "none",
    backends: {
      cpu: (graph) => {
        const inner = cpuRunner(graph);
        if (graph.meta.updates === undefined) return inner;
        return { ...inner, run: async (inputs, o) => (await gate, inner.run(inputs, o)) };
      },
    },
  };
}

const TINY = ["--layers", "1", "--d-model", "8", "--heads", "2", "--seq", "16", "--batch", "2"];
const PRETRAIN = ["--data", "names", ...TINY, "--steps", "2", "--eval-batches", "1"];

Deno.test("finetune and pretrain outputs", async (t) => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  await quietly(() => pretrainCommand([...PRETRAIN, "--out", base, "--backend", "cpu"], QUIET));
  const finetune = (out: string, more: string[] = [], options = QUIET) =>
    quietly(() =>
      finetuneCommand([
        ...["--base", base, "--data", "names", "--method", "lora", "--out", out],
        ...["--r", "2", "--batch", "2", "--eval-limit", "4", "--log-every", "1"],
        ...(more.includes("--steps") ? [] : ["--steps", "4"]),
        ...["--save-every", "2", "--backend", "cpu", ...more],
      ], options)
    );

  await t.step("an --out holding other files is refused; --force keeps them", async () => {
    const out = `${dir}/mine`;
    await Deno.mkdir(`${out}/sub`, { recursive: true });
    await Deno.writeTextFile(`${out}/notes.txt`, "mine");
    await Deno.writeTextFile(`${out}/sub/data.csv`, "1,2");
    await rejects(finetune(out), /--out .*mine is not empty \(it holds "(notes\.txt|sub)"\)/);
    deepEqual(names(out), ["notes.txt", "sub"], "nothing written");
    await finetune(out, ["--force"]);
    equal(await Deno.readTextFile(`${out}/notes.txt`), "mine");
    equal(await Deno.readTextFile(`${out}/sub/data.csv`), "1,2");
    ok(await exists(`${out}/adapter/adapter_model.safetensors`));
    equal(await exists(`${out}/.wgrad.lock`), false, "the lock is gone after the run");
  });

  await t.step("a finished run is kept unless --force, which starts it over", async () => {
    const out = `${dir}/again`;
    await finetune(out);
    const before = await Deno.readFile(`${out}/checkpoint.safetensors`);
    await rejects(finetune(out), /already holds a run; pass --resume to continue it, --force/);
    deepEqual(await Deno.readFile(`${out}/checkpoint.safetensors`), before);
    await finetune(out, ["--force", "--steps", "3"]);
    deepEqual(await steps(out), [0, 1, 2, 3], "the new run's metrics only (0: before training)");
    // Resuming a finished run finishes nothing new but rewrites its outputs.
    await Deno.remove(`${out}/summary.json`);
    await finetune(out, ["--resume", "--steps", "3"]);
    ok(await exists(`${out}/summary.json`));
  });

  await t.step("--out that is a file, below a file, or an input is refused", async () => {
    await rejects(finetune(base), /would overwrite the --base input/);
    await Deno.writeTextFile(`${dir}/plain`, "x");
    await rejects(finetune(`${dir}/plain`), /--out .*plain exists and is not a directory/);
    await rejects(finetune(`${dir}/plain/run`), /a folder above it is a file, not a folder/);
    // The base where the run would write its checkpoint (same file, or a hard link to it).
    await Deno.mkdir(`${dir}/holds`);
    await Deno.link(base, `${dir}/holds/checkpoint.safetensors`);
    const linked = `${dir}/holds/checkpoint.safetensors`;
    await rejects(
      finetuneCommand(
        ["--base", linked, "--data", "names", "--method", "lora", "--out", base],
        QUIET,
      ),
      /--out .*base\.safetensors would overwrite the --base input .*holds\/checkpoint/,
    );
    await rejects(
      finetuneCommand([
        "--base",
        linked,
        "--data",
        "names",
        "--method",
        "lora",
        "--out",
        `${dir}/holds`,
      ]),
      /--out .*holds would overwrite the --base input .*holds\/checkpoint\.safetensors/,
    );
    await Deno.remove(linked);
    await Deno.symlink(base, linked);
    await rejects(
      finetuneCommand([
        "--base",
        base,
        "--data",
        "names",
        "--method",
        "lora",
        "--out",
        `${dir}/holds`,
      ]),
      /--out .*holds would overwrite the --base input/,
    );
    equal((await readSafetensors(base)).tensors.size > 0, true);
    await rejects(finetune(`${dir}/${"n".repeat(256)}`), /is 256 bytes long; at most 255 fit/);
  });

  await t.step("a run that fails before writing leaves no directory behind", async () => {
    const broken: TrainCommandOptions = {
      progress: "none",
      backends: { cpu: () => Promise.reject(new Error("no device")) },
    };
    await rejects(finetune(`${dir}/failed`, [], broken), /no device/);
    equal(await exists(`${dir}/failed`), false);
  });

  await t.step("a checkpoint without its config or step is refused, naming the field", async () => {
    const out = `${dir}/fields`;
    await finetune(out);
    const path = `${out}/checkpoint.safetensors`;
    const file = await readSafetensors(path);
    const tensors = Object.fromEntries(
      [...file.tensors].map((
        [n, t],
      ) => [n, { dtype: "F32" as const, shape: t.shape, data: t.data }]),
    );
    const cases: [string, unknown, RegExp][] = [
      ["config", null, /checkpoint\.safetensors is incomplete: its "config" field is empty/],
      ["step", "4", /checkpoint\.safetensors: its "step" field must be an integer ≥ 0, got "4"/],
      ["step", undefined, /its "step" field must be an integer ≥ 0, got undefined/],
    ];
    for (const [field, value, expected] of cases) {
      const meta = JSON.parse(file.metadata["wgrad.checkpoint"]);
      meta[field] = value;
      await writeSafetensors(path, tensors, { "wgrad.checkpoint": JSON.stringify(meta) });
      await rejects(finetune(out, ["--resume"]), expected);
    }
    const { [[...file.tensors.keys()][0]]: _dropped, ...fewer } = tensors;
    await writeSafetensors(path, fewer, { "wgrad.checkpoint": file.metadata["wgrad.checkpoint"] });
    await rejects(finetune(out, ["--resume"]), /is incomplete: it has no tensor "/);
  });

  await t.step("a finetune killed mid-run (SIGKILL) resumes: no stale lock", async () => {
    const out = `${dir}/killed`;
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const args = ["--base", base, "--data", "names", "--method", "lora", "--out", out, "--r", "2"];
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", cli, "finetune", ...args, "--batch", "2", "--steps", "200"]
        .concat(["--save-every", "2", "--log-every", "1", "--eval-limit", "4", "--backend", "cpu"]),
      stdout: "null",
      stderr: "null",
    }).spawn();
    const started = Date.now();
    while (!(await exists(`${out}/checkpoint.safetensors`)) && Date.now() - started < 60_000) {
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGKILL");
    const status = await child.status;
    ok(!status.success, "killed before it finished");
    await finetune(out, ["--resume", "--steps", "200"]);
    const logged = await steps(out);
    deepEqual(logged, Array.from({ length: 201 }, (_, i) => i), "each step exactly once");
    ok(await exists(`${out}/adapter/adapter_config.json`));
  });

  await t.step("pretrain: one writer per --out; a directory or huge model is refused", async () => {
    const out = `${dir}/p.safetensors`;
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => open = r);
    const first = quietly(() =>
      pretrainCommand([...PRETRAIN, "--out", out, "--backend", "cpu"], gated(gate))
    );
    await new Promise((r) => setTimeout(r, 50));
    await rejects(
      pretrainCommand([...PRETRAIN, "--out", out, "--backend", "cpu"], QUIET),
      /pretrain: another wgrad run is writing to .*p\.safetensors/,
    );
    open();
    await first;
    ok(await exists(out));
    deepEqual(names(dir).filter((n) => n.includes("p.safetensors")), ["p.safetensors"]);
    await rejects(
      pretrainCommand([...PRETRAIN, "--out", dir, "--backend", "cpu", "--force"], QUIET),
      /pretrain: --out .* is a directory; give a file name/,
    );
    await rejects(
      pretrainCommand(["--data", "names", "--out", `${dir}/h`, "--layers", "100000"], QUIET),
      /about 4\.9e\+9 parameters, needing .* GB with its gradients and optimizer state, more than the .* of memory available; lower --layers/,
    );
    await rejects(
      pretrainCommand(["--data", "names", "--out", `${dir}/h`, "--batch", "10000000"], QUIET),
      /--batch 10000000 × --seq 64 needs about .* lower --batch or --seq/,
    );
    const replaced = await Deno.stat(out);
    await quietly(() =>
      pretrainCommand([...PRETRAIN, "--out", out, "--backend", "cpu", "--force"])
    );
    ok((await Deno.stat(out)).mtime! >= replaced.mtime!);
    equal(await exists(`${dir}/h`), false);
  });

  await t.step("switch flags take no value; demo checks --backend before any output", async () => {
    const json = await runCli(["inspect", base, "--json=false"]);
    equal(json.code, 1);
    deepEqual(json.err, ["error: inspect: --json is a switch and takes no value"]);
    for (const command of ["finetune", "pretrain", "demo"]) {
      const stray = await runCli([command, "--steps", "3", "4"]);
      equal(stray.code, 1);
      deepEqual(stray.err, [
        `error: ${command}: unexpected argument "4" (values are given as --flag VALUE)`,
      ]);
    }
    const demo = await runCli(["demo", "--backend", "toString"]);
    equal(demo.code, 1);
    deepEqual(demo.out, []);
    match(
      demo.err.join("\n"),
      /^error: demo: --backend must be auto \| webgpu \| wasm \| cpu, got "toString"$/,
    );
  });

  await t.step("--json: stdout holds exactly one JSON document", async () => {
    const runs = [
      ["pretrain", ...PRETRAIN, "--out", `${dir}/j.safetensors`, "--backend", "cpu", "--json"],
      ["finetune", "--base", base, "--data", "names", "--method", "vera", "--r", "2"]
        .concat(["--out", `${dir}/j`, "--steps", "2", "--batch", "2", "--eval-limit", "2"])
        .concat(["--backend", "cpu", "--json"]),
    ];
    for (const args of runs) {
      const run = await runCli(args);
      equal(run.code, 0, run.err.join("\n"));
      equal(run.out.length, 1, run.out.join("\n"));
      equal(typeof JSON.parse(run.out[0]), "object");
    }
  });

  await Deno.remove(dir, { recursive: true });
});
