import assert from "node:assert/strict";
import { loadModel } from "../../nn/families.ts";
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
