// merge and export never replace their inputs, never delete files they did not write, and replace
// an existing output only with --force.
import { deepEqual, equal, match } from "node:assert/strict";
import { runCli } from "./_capture.ts";
import { gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { lora } from "../../adapters/lora.ts";
import { exportPeft } from "../../adapters/peft.ts";
import { type TensorInput, writeSafetensors } from "../../io/safetensors.ts";

async function fixture(dir: string): Promise<{ base: string; adapter: string }> {
  const graph = gptGraph(
    { vocabSize: 7, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" },
    { batch: 1, seqLen: 4 },
  );
  const params = initParams(graph, { seed: 1 });
  const tensors: Record<string, TensorInput> = {};
  for (const p of graph.params) {
    tensors[p.name!] = { dtype: "F32", shape: p.shape, data: params[p.name!] };
  }
  const base = `${dir}/base.safetensors`;
  await writeSafetensors(base, tensors);
  const adapted = lora(graph, { r: 2, alpha: 2, targetModules: ["q_proj"] });
  const adapter = `${dir}/adapter`;
  await exportPeft(adapter, adapted.adapter, {
    ...params,
    ...initParams(adapted.graph, { seed: 2 }),
  });
  return { base, adapter };
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("merge --out naming an input is refused, however it is spelled", async () => {
  const dir = await Deno.makeTempDir();
  const { base, adapter } = await fixture(dir);
  const before = await Deno.readFile(base);
  await Deno.symlink(base, `${dir}/link.safetensors`);
  await Deno.link(base, `${dir}/hard.safetensors`);
  const spellings = [
    base,
    `${dir}/./base.safetensors`,
    `${dir}/adapter/../base.safetensors`,
    `${dir}/link.safetensors`,
    `${dir}/hard.safetensors`,
    `${adapter}/adapter_model.safetensors`,
    adapter,
  ];
  for (const out of spellings) {
    for (const force of [[], ["--force"]]) {
      const run = await runCli([
        ...["merge", "--backend", "cpu", "--base", base, "--adapter", adapter, "--out", out],
        ...force,
      ]);
      equal(run.code, 1, `${out} ${force}`);
      match(run.err[0], /^error: merge: --out .* would overwrite the --(base|adapter) input/, out);
    }
  }
  deepEqual(await Deno.readFile(base), before);
  deepEqual(await listDir(adapter), ["adapter_config.json", "adapter_model.safetensors"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("merge and export replace an existing output only with --force", async () => {
  const dir = await Deno.makeTempDir();
  const { base, adapter } = await fixture(dir);
  const merged = `${dir}/merged.safetensors`;
  const mergeArgs = ["merge", "--backend", "cpu", "--base", base, "--adapter", adapter];
  equal((await runCli([...mergeArgs, "--out", merged])).code, 0);
  const again = await runCli([...mergeArgs, "--out", merged]);
  equal(again.code, 1);
  match(again.err[0], /merged\.safetensors already exists; pass --force to replace it/);
  equal((await runCli([...mergeArgs, "--out", merged, "--force"])).code, 0);

  const compact = `${dir}/a.safetensors`;
  const exportArgs = ["export", "--adapter", adapter, "--format", "compact", "--out", compact];
  equal((await runCli(exportArgs)).code, 0);
  equal((await runCli(exportArgs)).code, 1);
  equal((await runCli([...exportArgs, "--force"])).code, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("export --out into a directory of the user's files deletes none of them", async () => {
  const dir = await Deno.makeTempDir();
  const { adapter } = await fixture(dir);
  const out = `${dir}/project`;
  await Deno.mkdir(`${out}/src`, { recursive: true });
  await Deno.writeTextFile(`${out}/notes.md`, "keep me");
  await Deno.writeTextFile(`${out}/src/main.py`, "print(1)");
  const args = ["export", "--adapter", adapter, "--format", "peft", "--out", out];
  const refused = await runCli(args);
  equal(refused.code, 1);
  match(refused.err[0], /^error: export: --out .*project already exists; pass --force/);
  deepEqual(await listDir(out), ["notes.md", "src"]);
  // With --force the adapter is written beside them; nothing of the user's is removed.
  const forced = await runCli([...args, "--force"]);
  equal(forced.code, 0, forced.err.join("\n"));
  deepEqual(await listDir(out), [
    "adapter_config.json",
    "adapter_model.safetensors",
    "notes.md",
    "src",
  ]);
  equal(await Deno.readTextFile(`${out}/notes.md`), "keep me");
  equal(await Deno.readTextFile(`${out}/src/main.py`), "print(1)");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a file output never replaces a directory (or the reverse), --force or not", async () => {
  const dir = await Deno.makeTempDir();
  const { base, adapter } = await fixture(dir);
  const folder = `${dir}/folder`;
  await Deno.mkdir(folder);
  await Deno.writeTextFile(`${folder}/keep.txt`, "keep");
  const file = `${dir}/file.bin`;
  await Deno.writeTextFile(file, "keep");
  const cases: [string[], RegExp][] = [
    [
      ["merge", "--backend", "cpu", "--base", base, "--adapter", adapter, "--out", folder],
      /folder is a directory; give a file name/,
    ],
    [
      ["export", "--adapter", adapter, "--format", "compact", "--out", folder],
      /folder is a directory; give a file name/,
    ],
    [
      ["export", "--adapter", adapter, "--format", "zip", "--out", folder],
      /folder is a directory; give a file name/,
    ],
    [
      ["export", "--adapter", adapter, "--format", "peft", "--out", file],
      /file\.bin is a file; give a directory name/,
    ],
  ];
  for (const [args, expected] of cases) {
    for (const force of [[], ["--force"]]) {
      const run = await runCli([...args, ...force]);
      equal(run.code, 1, `${args} ${force}`);
      deepEqual(run.out, []);
      match(run.err.join("\n"), expected);
    }
  }
  deepEqual(await listDir(folder), ["keep.txt"]);
  equal(await Deno.readTextFile(file), "keep");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("output names: 255 bytes work, longer ones are refused before any work", async () => {
  const dir = await Deno.makeTempDir();
  const { adapter } = await fixture(dir);
  for (const name of ["a".repeat(255), "é".repeat(127), "日".repeat(85)]) {
    const run = await runCli([
      "export",
      "--adapter",
      adapter,
      "--format",
      "compact",
      "--out",
      `${dir}/${name}`,
    ]);
    equal(run.code, 0, run.err.join("\n"));
  }
  for (const name of ["a".repeat(256), "é".repeat(128)]) {
    const run = await runCli([
      "export",
      "--adapter",
      adapter,
      "--format",
      "zip",
      "--out",
      `${dir}/${name}`,
    ]);
    equal(run.code, 1);
    match(run.err[0], /^error: export: the name of --out .* is 256 bytes long; at most 255 fit$/);
  }
  equal((await listDir(dir)).filter((n) => n.startsWith(".")).length, 0, "no temporary left");
  await Deno.remove(dir, { recursive: true });
});
