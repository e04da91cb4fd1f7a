import assert from "node:assert/strict";
import { lora } from "../../adapters/lora.ts";
import { exportPeft } from "../../adapters/peft.ts";
import { compile } from "../../backends/compile.ts";
import { mulberry32 } from "../../data/random.ts";
import { loadModel } from "../../nn/families.ts";
import { initParams } from "../../nn/init.ts";
import { runCli } from "./_capture.ts";
import { fixtureDir, reference } from "../nn/_hf_fixtures.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function cliProcess(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("cli generate", async (t) => {
  await t.step("--json prints exactly one JSON document; tokens stream to stderr", async () => {
    const dir = fixtureDir("tiny-llama");
    const ref = await reference("tiny-llama");
    const r = await cliProcess([
      "generate",
      "--base",
      dir,
      "--prompt",
      ref.prompt,
      "--max-new-tokens",
      "16",
      "--backend",
      "cpu",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.prompt_ids, ref.logitsInput);
    // Greedy stops at the end-of-sequence token; transformers' continuation has none before 16.
    assert.deepEqual(doc.ids, ref.greedy);
    assert.equal(doc.model.family, "llama");
    assert.ok(doc.tokens_per_s > 0);
    // snake_case, as every document the commands print.
    assert.deepEqual(Object.keys(doc).filter((k) => /[A-Z]/.test(k)), []);
    assert.ok(r.stderr.startsWith(doc.text));
  });
  await t.step("without --json the text streams to stdout", async () => {
    const r = await cliProcess([
      "generate",
      "--base",
      fixtureDir("tiny-gpt2"),
      "--prompt",
      "hello",
      "--max-new-tokens",
      "4",
      "--backend",
      "cpu",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^4 tokens, [\d.]+ tokens\/s \(cpu/m);
  });
  const errors: [string, string[], RegExp][] = [
    ["no --base", ["--prompt", "x"], /^error: generate: --base is required$/],
    ["no --prompt", ["--base", fixtureDir("tiny-gpt2")], /^error: generate: --prompt is required$/],
    [
      "bad backend",
      ["--base", "x", "--prompt", "x", "--backend", "tpu"],
      /--backend must be auto, webgpu, wasm, cpu; got "tpu"/,
    ],
    ["bad top-p", ["--base", "x", "--prompt", "x", "--top-p", "2"], /--top-p must be in \(0, 1\]/],
    ["missing model", ["--base", "nowhere", "--prompt", "x"], /^error: cannot read model nowhere/],
    ["too long", [
      "--base",
      fixtureDir("tiny-gpt2"),
      "--prompt",
      "x",
      "--max-new-tokens",
      "100",
      "--backend",
      "cpu",
    ], /exceeds the model's 32 positions/],
  ];
  for (const [what, args, pattern] of errors) {
    await t.step(what, async () => {
      const r = await runCli(["generate", ...args]);
      assert.equal(r.code, 1);
      assert.equal(r.err.length, 1);
      assert.match(r.err[0], pattern);
      assert.deepEqual(r.out, []);
    });
  }
});

Deno.test("cli generate --adapter: a PEFT LoRA adapter on a Llama model is applied", async () => {
  const model = await loadModel(fixtureDir("tiny-llama"));
  const ref = await reference("tiny-llama");
  const steps = 6;
  const adapted = (len: number) =>
    lora(model.family.graph(model.config, { batch: 1, seqLen: len, task: "lm" }), {
      r: 2,
      alpha: 4,
      targetModules: ["q_proj", "v_proj"],
    });
  const { graph, adapter } = adapted(ref.logitsInput.length);
  const random = mulberry32(5);
  const params: Record<string, Float32Array> = { ...initParams(graph), ...model.weights };
  for (const p of graph.params) {
    if (p.name!.includes(".lora_")) params[p.name!] = params[p.name!].map(() => random() - 0.5);
  }
  const dir = await Deno.makeTempDir();
  try {
    await exportPeft(`${dir}/adapter`, adapter, params, { graph });
    // The reference: greedy decoding through the adapted graph, recomputed over the whole sequence.
    const seq = [...ref.logitsInput];
    for (let i = 0; i < steps; i++) {
      const g = adapted(seq.length).graph;
      const exe = await compile(g, { backend: "cpu" });
      exe.setParams(Object.fromEntries(g.params.map((p) => [p.name!, params[p.name!]])));
      const logits = await (await exe.run({ tokens: seq, targets: seq.map(() => -1) })).read(
        "logits",
      );
      const v = model.config.vocabSize;
      const last = Array.from(logits.slice((seq.length - 1) * v, seq.length * v) as Float32Array);
      seq.push(last.indexOf(Math.max(...last)));
    }
    const r = await cliProcess([
      "generate",
      "--base",
      fixtureDir("tiny-llama"),
      "--adapter",
      `${dir}/adapter`,
      "--prompt",
      ref.prompt,
      "--max-new-tokens",
      String(steps),
      "--backend",
      "cpu",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const ids = JSON.parse(r.stdout).ids;
    assert.deepEqual(ids, seq.slice(ref.logitsInput.length));
    assert.notDeepEqual(ids, ref.greedy.slice(0, steps));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli generate --adapter: adapters made by PEFT give PEFT's greedy tokens", async (t) => {
  for (
    const [base, adapter] of [["tiny-gpt2", "tiny-gpt2-lora"], ["tiny-llama", "tiny-llama-lora"]]
  ) {
    await t.step(`${adapter} (fan_in_fan_out ${base === "tiny-gpt2"})`, async () => {
      const ref = JSON.parse(await Deno.readTextFile(`${fixtureDir(adapter)}/reference.json`));
      const r = await cliProcess([
        "generate",
        "--base",
        fixtureDir(base),
        "--adapter",
        fixtureDir(adapter),
        "--prompt",
        ref.prompt,
        "--max-new-tokens",
        String(ref.greedy.length),
        "--backend",
        "cpu",
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).ids, ref.greedy);
    });
  }
});
