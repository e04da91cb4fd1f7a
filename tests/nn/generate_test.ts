import assert from "node:assert/strict";
import fc from "fast-check";
import { compile } from "../../backends/compile.ts";
import { loadModel } from "../../nn/families.ts";
import { generate, pickToken } from "../../nn/generate.ts";
import { fixtureDir, FIXTURES, reference } from "./_hf_fixtures.ts";

for (const backend of ["cpu", "webgpu"] as const) {
  Deno.test(`generate (${backend}): greedy with the KV cache equals transformers for 16 tokens`, async (t) => {
    for (const name of FIXTURES) {
      await t.step(name, async () => {
        const model = await loadModel(fixtureDir(name));
        const ref = await reference(name);
        const r = await generate(model, {
          prompt: "",
          promptIds: ref.logitsInput,
          maxNewTokens: 16,
          temperature: 0,
          stopAtEos: false,
          backend,
        });
        assert.deepEqual(r.ids, ref.greedy);
      });
    }
  });
}

Deno.test("pickToken", async (t) => {
  const logitsArb = fc.array(fc.float({ min: -10, max: 10, noNaN: true }), {
    minLength: 1,
    maxLength: 20,
  });
  await t.step("temperature 0 is the first argmax", () => {
    fc.assert(fc.property(logitsArb, (logits) => {
      const max = Math.max(...logits);
      assert.equal(pickToken(logits, { temperature: 0 }, Math.random), logits.indexOf(max));
    }));
  });
  await t.step("samples stay among the top-k tokens", () => {
    fc.assert(
      fc.property(logitsArb, fc.integer({ min: 1, max: 5 }), fc.double({ min: 0, max: 0.999 }), (
        logits,
        k,
        u,
      ) => {
        const id = pickToken(logits, { temperature: 1, topK: k }, () => u);
        const larger = logits.filter((l, i) => l > logits[id] || (l === logits[id] && i < id));
        assert.ok(larger.length < k);
      }),
    );
  });
  await t.step("a tiny top-p keeps only the most likely token", () => {
    fc.assert(fc.property(logitsArb, fc.double({ min: 0, max: 0.999 }), (logits, u) => {
      const max = Math.max(...logits);
      const id = pickToken(logits, { temperature: 0.7, topP: 1e-9 }, () => u);
      assert.equal(id, logits.indexOf(max));
    }));
  });
});

Deno.test("generate: streaming, seeds and limits", async (t) => {
  const model = await loadModel(fixtureDir("tiny-llama"));
  await t.step("streamed pieces add up to the text", async () => {
    const pieces: string[] = [];
    const r = await generate(model, {
      prompt: "hello world",
      maxNewTokens: 12,
      temperature: 1,
      seed: 3,
      backend: "cpu",
      onToken: (text) => pieces.push(text),
    });
    assert.equal(pieces.join(""), r.text);
    assert.equal(r.promptIds[0], model.tokenizer.bosId);
  });
  await t.step("the same seed gives the same sample", async () => {
    const run = (seed: number) =>
      generate(model, { prompt: "the", maxNewTokens: 10, temperature: 1.5, seed, backend: "cpu" });
    assert.deepEqual((await run(7)).ids, (await run(7)).ids);
  });
  await t.step("too many tokens for the model's positions is an error", async () => {
    await assert.rejects(
      generate(model, { prompt: "the", maxNewTokens: 40, temperature: 0, backend: "cpu" }),
      /exceeds the model's 32 positions/,
    );
  });
});

Deno.test("generate: the wgrad-gpt family's cached decoding equals its training graph", async () => {
  const model = await loadModel("models/gpt-spam-2L-d64-t128.safetensors");
  const prompt = [...model.tokenizer.encode("Subject: free money")];
  const steps = 8;
  const r = await generate(model, {
    prompt: "",
    promptIds: prompt,
    maxNewTokens: steps,
    temperature: 0,
    backend: "cpu",
  });
  const seq = [...prompt];
  for (let i = 0; i < steps; i++) {
    const g = model.family.graph(model.config, { batch: 1, seqLen: seq.length, task: "lm" });
    const exe = await compile(g, { backend: "cpu" });
    exe.setParams(Object.fromEntries(g.params.map((p) => [p.name!, model.weights[p.name!]])));
    const logits = await (await exe.run({ tokens: seq, targets: seq.map(() => -1) })).read(
      "logits",
    );
    const v = model.config.vocabSize;
    const last = Array.from(logits.slice((seq.length - 1) * v) as Float32Array);
    seq.push(last.indexOf(Math.max(...last)));
  }
  assert.deepEqual(r.ids, seq.slice(prompt.length));
});

Deno.test("generate: greedy decoding stops after the end-of-sequence token", async () => {
  const model = await loadModel(fixtureDir("tiny-gpt2"));
  const ref = await reference("tiny-gpt2");
  // Pretend the 3rd greedy token is the end-of-sequence token.
  const eos = ref.greedy[2];
  const tokenizer = { ...model.tokenizer, eosId: eos };
  const r = await generate({ ...model, tokenizer }, {
    prompt: "",
    promptIds: ref.logitsInput,
    maxNewTokens: 16,
    temperature: 0,
    backend: "cpu",
  });
  assert.deepEqual(r.ids, ref.greedy.slice(0, ref.greedy.indexOf(eos) + 1));
});
