import assert from "node:assert/strict";
import { compile } from "../../backends/compile.ts";
import { readSafetensors } from "../../io/safetensors.ts";
import { lastNonPadIndex, loadModel } from "../../nn/families.ts";
import { fixtureDir, FIXTURES, lmLogits, maxAbsDiff, reference } from "./_hf_fixtures.ts";

Deno.test("HF families: logits match transformers on the CPU interpreter", async (t) => {
  for (const name of FIXTURES) {
    await t.step(name, async () => {
      const model = await loadModel(fixtureDir(name));
      const ref = await reference(name);
      const logits = await lmLogits(model, ref.logitsInput, "cpu");
      const diff = maxAbsDiff(logits, ref.logits);
      assert.ok(diff < 1e-4, `${name}: max abs diff ${diff}`);
    });
  }
});

Deno.test("HF families: logits match transformers on WebGPU", async (t) => {
  for (const name of FIXTURES) {
    await t.step(name, async () => {
      const model = await loadModel(fixtureDir(name));
      const ref = await reference(name);
      const logits = await lmLogits(model, ref.logitsInput, "webgpu");
      const diff = maxAbsDiff(logits, ref.logits);
      assert.ok(diff < 1e-4, `${name}: max abs diff ${diff}`);
    });
  }
});

Deno.test("HF families: sequence classification pools the last non-pad token like transformers", async (t) => {
  for (const name of FIXTURES) {
    await t.step(name, async () => {
      const model = await loadModel(fixtureDir(name));
      const ref = (await reference(name)).classification;
      const score = (await readSafetensors(`${fixtureDir(name)}/score.safetensors`)).tensors;
      const [b, t] = [ref.tokens.length, ref.tokens[0].length];
      const graph = model.family.graph(model.config, {
        batch: b,
        seqLen: t,
        task: "classification",
        numClasses: ref.numClasses,
      });
      assert.equal(model.family.classificationHead, "score");
      assert.equal(model.config.padTokenId, ref.padId);
      const exe = await compile(graph, { backend: "cpu" });
      const weights: Record<string, Float32Array> = {
        ...model.weights,
        "score.weight": score.get("score.weight")!.data as Float32Array,
      };
      exe.setParams(Object.fromEntries(graph.params.map((p) => [p.name!, weights[p.name!]])));
      const run = await exe.run({
        tokens: ref.tokens.flat(),
        labels: [0, 1],
        lastIndex: lastNonPadIndex(ref.tokens, model.config.padTokenId),
      });
      const diff = maxAbsDiff(await run.read("logits"), ref.logits);
      assert.ok(diff < 1e-4, `${name}: max abs diff ${diff}`);
    });
  }
});

Deno.test("HF families: tensor names and layouts are transformers'", async (t) => {
  await t.step("gpt2: Conv1D weights are transposed, the LM head is tied", async () => {
    const m = await loadModel(fixtureDir("tiny-gpt2"));
    assert.deepEqual(m.family.defaultTargets, ["c_attn"]);
    const g = m.family.graph(m.config, { batch: 1, seqLen: 2, task: "lm" });
    const names = g.params.map((p) => p.name!);
    assert.ok(names.includes("transformer.h.1.mlp.c_fc.weight"));
    assert.ok(!names.includes("lm_head.weight"));
    assert.deepEqual(g.params.find((p) => p.name === "transformer.h.0.attn.c_attn.weight")!.shape, [
      96,
      32,
    ]);
  });
  await t.step("llama: GQA k/v widths, untied lm_head; qwen2: tied, q/k/v biases", async () => {
    const llama = await loadModel(fixtureDir("tiny-llama"));
    const g = llama.family.graph(llama.config, { batch: 1, seqLen: 2, task: "lm" });
    const shape = (n: string) => g.params.find((p) => p.name === n)?.shape;
    assert.deepEqual(shape("model.layers.0.self_attn.k_proj.weight"), [16, 32]);
    assert.deepEqual(shape("lm_head.weight"), [376, 32]);
    assert.equal(llama.dtypes["model.norm.weight"], "F32");
    const qwen = await loadModel(fixtureDir("tiny-qwen2"));
    assert.equal(qwen.family.name, "llama");
    assert.equal(qwen.dtypes["model.embed_tokens.weight"], "BF16");
    const q = qwen.family.graph(qwen.config, { batch: 1, seqLen: 2, task: "lm" });
    const names = q.params.map((p) => p.name!);
    assert.ok(names.includes("model.layers.1.self_attn.v_proj.bias"));
    assert.ok(!names.includes("model.layers.1.self_attn.o_proj.bias"));
    assert.ok(!names.includes("lm_head.weight"));
  });
});

Deno.test("HF families: dropout on the residual branches takes a dropoutSeed input", async (t) => {
  for (const name of ["tiny-gpt2", "tiny-llama"]) {
    await t.step(name, async () => {
      const model = await loadModel(fixtureDir(name));
      const ref = await reference(name);
      const tokens = ref.logitsInput;
      const options = { batch: 1, seqLen: tokens.length, task: "lm" as const, dropout: 0.3 };
      const g = model.family.graph(model.config, options);
      assert.deepEqual(g.inputs.map((i) => i.name), ["tokens", "targets", "dropoutSeed"]);
      const exe = await compile(g, { backend: "cpu" });
      exe.setParams(Object.fromEntries(g.params.map((p) => [p.name!, model.weights[p.name!]])));
      const loss = async (seed: number) =>
        (await (await exe.run({ tokens, targets: tokens, dropoutSeed: [seed] })).read("loss"))[0];
      assert.equal(await loss(1), await loss(1));
      assert.notEqual(await loss(1), await loss(2));
      assert.throws(
        () => model.family.graph(model.config, { ...options, dropout: 1 }),
        /dropout must be in \[0, 1\)/,
      );
    });
  }
});
