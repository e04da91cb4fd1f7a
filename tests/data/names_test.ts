import assert from "node:assert/strict";
import { femaleNames, loadNames, maleNames } from "../../data/names.ts";
import { splitOf } from "../../data/split.ts";

Deno.test("first-names loaders", async (t) => {
  await t.step("raw lists", () => {
    assert.equal(femaleNames().length, 4951);
    assert.equal(maleNames().length, 3898);
    assert.equal(femaleNames()[0], "Aaren");
    assert.equal(maleNames()[0], "Aaron");
    assert.equal(femaleNames(), femaleNames(), "cached");
  });

  await t.step("split: union, deduplicated, disjoint, ≈80/10/10, deterministic", () => {
    const { train, validation, test } = loadNames();
    const all = [...train, ...validation, ...test];
    assert.equal(all.length, new Set([...femaleNames(), ...maleNames()]).size);
    assert.equal(new Set(all).size, all.length);
    assert.ok(Math.abs(train.length / all.length - 0.8) < 0.03);
    assert.ok(Math.abs(validation.length / all.length - 0.1) < 0.03);
    assert.ok(Math.abs(test.length / all.length - 0.1) < 0.03);
    for (const n of test) assert.equal(splitOf(n), "test");
    assert.deepEqual(loadNames(), { train, validation, test });
    for (const n of all) assert.ok(n.length > 0 && !/\s/.test(n));
  });

  await t.step("female / male selections", () => {
    const f = loadNames({ which: "female" });
    const m = loadNames({ which: "male" });
    assert.equal(f.train.length + f.validation.length + f.test.length, new Set(femaleNames()).size);
    assert.equal(m.train.length + m.validation.length + m.test.length, new Set(maleNames()).size);
    // A name's split does not depend on which list it came from.
    const fTest = new Set(f.test);
    for (const n of m.train) assert.ok(!fTest.has(n));
  });
});
