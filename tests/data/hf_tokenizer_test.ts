import assert from "node:assert/strict";
import { byteTokenizer, loadHfTokenizer, tokenizerFromJson } from "../../data/hf_tokenizer.ts";
import { fixtureDir, FIXTURES, reference } from "../nn/_hf_fixtures.ts";

Deno.test("tokenizer.json: ids equal Python tokenizers' on the fixed corpus", async (t) => {
  for (const name of FIXTURES) {
    await t.step(name, async () => {
      const tok = await loadHfTokenizer(fixtureDir(name));
      const ref = await reference(name);
      for (const c of ref.corpus) {
        assert.deepEqual(tok.encode(c.text), c.ids, `ids of ${JSON.stringify(c.text)}`);
        assert.deepEqual(
          tok.encode(c.text, { addSpecialTokens: false }),
          c.idsNoSpecial,
          `bare ids of ${JSON.stringify(c.text)}`,
        );
        assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded);
      }
    });
  }
});

Deno.test("tokenizer.json: special ids come from tokenizer_config.json", async () => {
  const llama = await loadHfTokenizer(fixtureDir("tiny-llama"));
  assert.deepEqual([llama.bosId, llama.eosId, llama.padId], [1, 2, 2]);
  assert.equal(llama.encode("a")[0], 1); // the post-processor prepends <s>
  const gpt2 = await loadHfTokenizer(fixtureDir("tiny-gpt2"));
  assert.equal(gpt2.eosId, 0);
  assert.equal(gpt2.vocabSize, 300);
});

Deno.test("tokenizer.json: bad files are errors naming the file", async (t) => {
  await t.step("not a tokenizer", () => {
    assert.throws(() => tokenizerFromJson({ version: "1.0" }, {}, "x/tokenizer.json"), {
      message: 'x/tokenizer.json: not a tokenizer.json (no "model" object)',
    });
  });
  await t.step("invalid JSON", async () => {
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "{ nope");
    await assert.rejects(loadHfTokenizer(dir), /tokenizer\.json: invalid JSON/);
    await Deno.remove(dir, { recursive: true });
  });
});

Deno.test("byteTokenizer round-trips UTF-8", () => {
  const t = byteTokenizer();
  for (const s of ["", "a b", "🤗 naïve", "\t\n  "]) assert.equal(t.decode(t.encode(s)), s);
});
