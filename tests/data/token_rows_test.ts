import assert from "node:assert/strict";
import fc from "fast-check";
import { byteTokenizer as bytes } from "../../data/hf_tokenizer.ts";
import {
  classificationRows,
  lmRows,
  RowBatcher,
  rowEvalBatches,
  type RowTokenizer,
} from "../../data/token_rows.ts";

// A word-level tokenizer with no BOS (like GPT-2) and a small vocabulary.
const words: RowTokenizer = {
  encode: (text) => text.split(" ").filter((w) => w).map((w) => w.length),
  vocabSize: 20,
  eosId: 0,
};

const byteTokenizer = bytes();

Deno.test("token rows", async (t) => {
  await t.step("LM: loss on the completion (and EOS) only, long documents windowed", () => {
    const [row] = lmRows([{ prompt: "aa bbb", completion: "c dddd" }], words, 8);
    assert.deepEqual(row.tokens, [2, 3, 1, 4]);
    assert.deepEqual(row.targets, [-1, 1, 4, 0]);
    // Windows of seqLen+1 overlapping by one cover every target exactly once.
    const text = Array.from({ length: 23 }, (_, i) => "x".repeat(1 + i % 9)).join(" ");
    const rows = lmRows([{ prompt: "", completion: text }], words, 5);
    const counted = rows.flatMap((r) => r.targets!.filter((v) => v >= 0));
    assert.deepEqual(counted, [...words.encode(text).slice(1), 0]);
    for (const r of rows) assert.ok(r.tokens.length <= 5);
  });

  await t.step("LM windows count each completion token once (property)", () => {
    fc.assert(fc.property(
      fc.string({ maxLength: 12 }),
      fc.string({ minLength: 1, maxLength: 30 }),
      fc.integer({ min: 1, max: 9 }),
      (prompt, completion, seqLen) => {
        const rows = lmRows([{ prompt, completion }], byteTokenizer, seqLen);
        const counted = rows.flatMap((r) => r.targets!.filter((v) => v >= 0));
        // With no prompt (and no BOS) the first token has nothing to be predicted from.
        const expected = byteTokenizer.encode(completion).slice(prompt === "" ? 1 : 0);
        assert.deepEqual(counted, [...expected, byteTokenizer.eosId]);
      },
    ));
  });

  await t.step("classification rows are cut to seqLen and never empty", () => {
    const rows = classificationRows(
      [{ text: "a bb ccc", label: 2 }, { text: " ", label: 0 }],
      words,
      2,
    );
    assert.deepEqual(rows, [{ tokens: [1, 2], label: 2 }, { tokens: [0], label: 0 }]);
  });

  await t.step("batches: fewer rows than the batch wrap around; resumable", () => {
    const rows = classificationRows(
      [{ text: "a", label: 0 }, { text: "bb ccc", label: 1 }],
      words,
      4,
    );
    const opts = { batchSize: 3, seqLen: 4, padId: 7, seed: 5 };
    const it = new RowBatcher(rows, opts);
    const first = it.next().value!;
    assert.equal(first.tokens.length, 12);
    assert.deepEqual(new Set(first.labels), new Set([0, 1]));
    for (let i = 0; i < 3; i++) it.next();
    const resumed = RowBatcher.fromState(rows, opts, it.state);
    assert.deepEqual(resumed.next().value, it.next().value);
  });

  await t.step("eval batches pad the last batch and report real rows", () => {
    const rows = lmRows(
      [{ prompt: "", completion: "a b" }, { prompt: "", completion: "ccc" }],
      words,
      4,
    );
    const batches = [...rowEvalBatches(rows, { batchSize: 3, seqLen: 4, padId: 9 })];
    assert.equal(batches.length, 1);
    assert.equal(batches[0].rows, 2);
    assert.deepEqual(
      [...batches[0].feeds.tokens],
      [1, 1, 9, 9, 3, 9, 9, 9, 9, 9, 9, 9],
    );
    assert.deepEqual([...batches[0].feeds.targets].filter((v) => v >= 0), [1, 0, 0]);
  });
});
