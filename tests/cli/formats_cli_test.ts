import { deepEqual, equal, match, ok } from "node:assert/strict";
import { runCli } from "./_capture.ts";
import { MALFORMED_CASES } from "../io/_malformed_cases.ts";
import { gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { vera } from "../../adapters/vera.ts";
import { exportPeft } from "../../adapters/peft.ts";
import { deltaWeight } from "../../adapters/merge.ts";
import { makeGraph } from "../../compiler/ir.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../../io/safetensors.ts";
import { readBundle } from "../../io/bundle.ts";

Deno.test("cli inspect: every malformed safetensors file is one error line and exit 1", async () => {
  const dir = await Deno.makeTempDir();
  for (const [i, [name, bytes]] of MALFORMED_CASES.entries()) {
    const path = `${dir}/case${i}.safetensors`;
    await Deno.writeFile(path, bytes);
    const run = await runCli(["inspect", path]);
    equal(run.code, 1, name);
    equal(run.err.length, 1, `${name}: ${run.err.join(" | ")}`);
    match(run.err[0], /^error: safetensors: /, name);
    ok(!run.err[0].includes("\n") && !/at .*\.ts:\d+/.test(run.err[0]), `${name}: no stack trace`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli merge, export and inspect on a real adapter", async () => {
  const dir = await Deno.makeTempDir();
  const base = gptGraph(
    { vocabSize: 11, maxSeqLen: 5, dModel: 8, heads: 2, layers: 2, head: "lm" },
    {
      batch: 1,
      seqLen: 5,
    },
  );
  const baseParams = initParams(base, { seed: 3 });
  const tensors: Record<string, TensorInput> = {};
  for (const p of base.params) {
    tensors[p.name!] = { dtype: "F32", shape: p.shape, data: baseParams[p.name!] };
  }
  await writeSafetensors(`${dir}/base.safetensors`, tensors);
  const { graph, adapter } = vera(base, { r: 4, targetModules: ["q_proj", "fc2"] });
  const params = { ...baseParams, ...initParams(graph, { seed: 3 }) };
  for (const k of Object.keys(params)) {
    if (k.endsWith("lambda_b")) {
      params[k] = params[k].map((_, i) => i / 10 - 0.3);
    }
  }
  await exportPeft(`${dir}/adapter`, adapter, params);

  const merged = await runCli([
    "merge",
    "--base",
    `${dir}/base.safetensors`,
    "--adapter",
    `${dir}/adapter`,
    "--out",
    `${dir}/merged.safetensors`,
    "--json",
  ]);
  equal(merged.code, 0, merged.err.join("\n"));
  const report = JSON.parse(merged.out.at(-1)!);
  equal(report.merged.length, 4);
  const file = await readSafetensors(`${dir}/merged.safetensors`);
  for (const t of adapter.targets) {
    const delta =
      evaluate(makeGraph({ inputs: [], outputs: { d: deltaWeight(adapter, t) } }), { params }).d
        .data;
    const w = file.tensors.get(t.weight)!.data as Float32Array;
    w.forEach((v, i) => {
      const want = baseParams[t.weight][i] + delta[i];
      ok(Math.abs(v - want) <= 1e-6 * Math.max(1, Math.abs(want)), `${t.weight}[${i}]`);
    });
  }
  for (const name of report.copied) deepEqual(file.tensors.get(name)!.data, baseParams[name]);
  // The default backend is webgpu; --backend cpu runs the f32 reference and agrees.
  const cpuOut = `${dir}/merged-cpu.safetensors`;
  const viaCpu = await runCli([
    "merge",
    "--backend",
    "cpu",
    "--base",
    `${dir}/base.safetensors`,
    "--adapter",
    `${dir}/adapter`,
    "--out",
    cpuOut,
  ]);
  equal(viaCpu.code, 0, viaCpu.err.join("\n"));
  const cpuFile = await readSafetensors(cpuOut);
  for (const t of adapter.targets) {
    const gpu = file.tensors.get(t.weight)!.data as Float32Array;
    const cpu = cpuFile.tensors.get(t.weight)!.data as Float32Array;
    cpu.forEach((v, i) => ok(Math.abs(gpu[i] - v) <= 1e-6 * Math.max(1, Math.abs(v)), t.weight));
  }

  for (const format of ["peft", "compact", "zip"]) {
    const out = `${dir}/export.${
      format === "zip" ? "zip" : format === "compact" ? "safetensors" : "dir"
    }`;
    const args = ["export", "--adapter", `${dir}/adapter`, "--format", format, "--out", out];
    if (format === "zip") args.push("--merged-base", `${dir}/base.safetensors`);
    const run = await runCli(args);
    equal(run.code, 0, `${format}: ${run.err.join("\n")}`);
    const inspected = await runCli(["inspect", out, "--json"]);
    equal(inspected.code, 0, inspected.err.join("\n"));
    ok(JSON.parse(inspected.out.at(-1)!).type);
  }
  const bundle = await readBundle(`${dir}/export.zip`);
  deepEqual(Object.keys(bundle.files).sort(), [
    "adapter/adapter_config.json",
    "adapter/adapter_model.safetensors",
    "merged.safetensors",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli bad input: one error line, exit 1, nothing written", async () => {
  const dir = await Deno.makeTempDir();
  const cases: [string[], RegExp][] = [
    [
      ["merge", "--base", `${dir}/none.safetensors`, "--adapter", dir, "--out", `${dir}/o`],
      /^error: /,
    ],
    [["merge", "--adapter", dir], /--base is required/],
    [
      ["export", "--adapter", dir, "--format", "tar", "--out", `${dir}/o`],
      /--format must be peft, compact or zip/,
    ],
    [["inspect"], /give exactly one file or directory/],
    [["inspect", dir], /cannot read adapter_config\.json/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["merge", "--nope"], /merge: unknown flag --nope \(flags: --base, /],
    [
      ["merge", "--backend", "tpu", "--base", `${dir}/b`, "--adapter", dir, "--out", `${dir}/o`],
      /merge: --backend must be auto, webgpu, wasm, cpu; got "tpu"/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const run = await runCli(args);
    equal(run.code, 1, args.join(" "));
    equal(run.err.length, 1, args.join(" "));
    match(run.err[0], /^error: /);
    match(run.err[0], pattern);
  }
  deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli as a process: exit code and no stack trace", async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../cli.ts", import.meta.url).pathname,
      "inspect",
      "/nonexistent.safetensors",
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stderr } = await cmd.output();
  equal(code, 1);
  const text = new TextDecoder().decode(stderr).trim();
  equal(text.split("\n").length, 1, text);
  match(text, /^error: /);
});

Deno.test("cli with no command prints the usage to stderr and exits 1; --help exits 0", async () => {
  const bare = await runCli([]);
  equal(bare.code, 1);
  deepEqual(bare.out, []);
  match(bare.err.join("\n"), /^wgrad — .*\n\nusage: deno task cli <command>/s);
  const help = await runCli(["--help"]);
  equal(help.code, 0);
  match(help.out.join("\n"), /usage: deno task cli <command>/);
});
