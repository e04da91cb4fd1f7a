import assert from "node:assert/strict";
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
