import assert from "node:assert/strict";
import fc from "fast-check";
import {
  classificationMetrics,
  formatClassificationMetrics,
  softmax,
} from "../../train/metrics_cls.ts";

Deno.test("classification metrics", async (t) => {
  await t.step("hand-computed three-class case", () => {
    // true:      a a a b b c
    // predicted: a a b b c c
    const m = classificationMetrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"]);
    assert.equal(m.accuracy, 4 / 6);
    assert.deepEqual(m.confusion, [[2, 1, 0], [0, 1, 1], [0, 0, 1]]);
    assert.deepEqual(m.perClass.map((c) => [c.precision, c.recall, c.support]), [
      [1, 2 / 3, 3],
      [0.5, 0.5, 2],
      [0.5, 1, 1],
    ]);
    const f1 = [0.8, 0.5, 2 / 3];
    m.perClass.forEach((c, i) => assert.ok(Math.abs(c.f1 - f1[i]) < 1e-12));
    assert.ok(Math.abs(m.macroF1 - (0.8 + 0.5 + 2 / 3) / 3) < 1e-12);
    assert.match(formatClassificationMetrics(m), /accuracy 66.7%/);
  });

  await t.step("a class never predicted or never present scores 0, not NaN", () => {
    const m = classificationMetrics([0, 0], [0, 0], ["x", "y"]);
    assert.deepEqual(m.perClass[1], { label: "y", precision: 0, recall: 0, f1: 0, support: 0 });
    assert.equal(m.macroF1, 0.5);
  });

  await t.step("invariants (property)", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 5 }).chain((k) =>
        fc.tuple(fc.constant(k), fc.array(fc.tuple(fc.nat(k - 1), fc.nat(k - 1)), { minLength: 1 }))
      ),
      ([k, pairs]) => {
        const labels = Array.from({ length: k }, (_, i) => `c${i}`);
        const m = classificationMetrics(pairs.map((p) => p[0]), pairs.map((p) => p[1]), labels);
        const total = m.confusion.flat().reduce((a, b) => a + b, 0);
        assert.equal(total, pairs.length);
        const diag = m.confusion.reduce((s, row, i) => s + row[i], 0);
        assert.equal(m.accuracy, diag / pairs.length);
        assert.ok(m.macroF1 >= 0 && m.macroF1 <= 1);
        assert.equal(m.perClass.reduce((s, c) => s + c.support, 0), pairs.length);
        // Perfect predictions score 1 on every present class.
        const perfect = classificationMetrics(
          pairs.map((p) => p[0]),
          pairs.map((p) => p[0]),
          labels,
        );
        for (const c of perfect.perClass) if (c.support > 0) assert.equal(c.f1, 1);
      },
    ));
  });

  await t.step("bad input", () => {
    assert.throws(() => classificationMetrics([0], [2], ["a", "b"]), /class 2 at example 0/);
    assert.throws(() => classificationMetrics([0], [], ["a"]), /1 labels but 0 predictions/);
    assert.throws(() => classificationMetrics([], [], ["a"]), /no examples/);
  });

  await t.step("softmax is stable for large logits", () => {
    const p = softmax([1000, 1000, -Infinity]);
    assert.deepEqual(p, [0.5, 0.5, 0]);
  });
});
