import assert from "node:assert/strict";
import { fnv1a32, splitBy, splitOf } from "../../data/split.ts";

Deno.test("split", async (t) => {
  await t.step("FNV-1a reference values", () => {
    assert.equal(fnv1a32(""), 0x811c9dc5);
    assert.equal(fnv1a32("a"), 0xe40c292c);
    assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  });

  await t.step("buckets are ≈80/10/10 and order independent", () => {
    const ids = Array.from({ length: 20000 }, (_, i) => `item-${i}`);
    const a = splitBy(ids, (s) => s);
    assert.ok(Math.abs(a.train.length / ids.length - 0.8) < 0.02);
    assert.ok(Math.abs(a.validation.length / ids.length - 0.1) < 0.02);
    assert.ok(Math.abs(a.test.length / ids.length - 0.1) < 0.02);
    const b = splitBy([...ids].reverse(), (s) => s);
    assert.deepEqual(new Set(b.test), new Set(a.test));
    for (const id of a.validation) assert.equal(splitOf(id), "validation");
  });
});
