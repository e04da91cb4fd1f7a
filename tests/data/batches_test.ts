import assert from "node:assert/strict";
import {
  type BatchState,
  ClassificationBatcher,
  classificationBatches,
  deriveSeed,
  LmBatcher,
  lmBatches,
  lmCorpus,
  mulberry32,
  permutation,
} from "../../data/batches.ts";
import { BOS, EOS, PAD } from "../../data/tokenizer.ts";
import { loadNames } from "../../data/names.ts";

const examples = Array.from({ length: 23 }, (_, i) => ({
  text: i % 5 === 0 ? "" : `example ${i} ${"é".repeat(i % 7)}`,
  label: i % 3 === 0 ? 1 : 0,
}));

// Collect the identifying content of the next n batches.
function take<T>(it: Iterator<T>, n: number): T[] {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const r = it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

Deno.test("PRNG and permutations", async (t) => {
  await t.step("mulberry32 is deterministic and in [0, 1)", () => {
    const a = mulberry32(123), b = mulberry32(123), c = mulberry32(124);
    const xa = Array.from({ length: 100 }, a);
    assert.deepEqual(xa, Array.from({ length: 100 }, b));
    assert.notDeepEqual(xa, Array.from({ length: 100 }, c));
    for (const x of xa) assert.ok(x >= 0 && x < 1);
    // Reference value of mulberry32(0)'s first draw.
    assert.equal(mulberry32(0)(), 1144304738 / 4294967296);
  });

  await t.step("permutation is a seeded permutation", () => {
    const p = permutation(50, 7);
    assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
    assert.deepEqual(p, permutation(50, 7));
    assert.notDeepEqual(p, permutation(50, 8));
    assert.notEqual(deriveSeed(1, 0), deriveSeed(1, 1));
    assert.notEqual(deriveSeed(1, 0), deriveSeed(2, 0));
  });
});

Deno.test("classification batches", async (t) => {
  const opts = { batchSize: 4, seqLen: 12, seed: 42, epochs: 3 };

  await t.step("shapes, padding, labels and lastIndex", () => {
    const enc = new TextEncoder();
    const batches = [...classificationBatches(examples, opts)];
    assert.equal(batches.length, 3 * Math.ceil(23 / 4));
    for (const b of batches) {
      const B = b.batchSize;
      assert.equal(b.tokens.length, B * 12);
      assert.equal(b.labels.length, B);
      assert.equal(b.lastIndex.length, B);
      for (let r = 0; r < B; r++) {
        const ex = examples[b.indices[r]];
        const bytes = enc.encode(ex.text).subarray(0, 12);
        const row = b.tokens.subarray(r * 12, (r + 1) * 12);
        assert.deepEqual([...row.subarray(0, bytes.length)], [...bytes]);
        assert.ok(row.subarray(bytes.length).every((x) => x === PAD));
        assert.equal(b.lengths[r], bytes.length);
        assert.equal(b.lastIndex[r], Math.max(0, bytes.length - 1));
        if (bytes.length) assert.notEqual(row[b.lastIndex[r]], PAD);
        assert.equal(b.labels[r], ex.label);
      }
    }
    // Each epoch visits every example exactly once.
    for (let e = 0; e < 3; e++) {
      const seen = batches.filter((b) => b.position.epoch === e).flatMap((b) => [...b.indices]);
      assert.deepEqual(seen.sort((x, y) => x - y), Array.from({ length: 23 }, (_, i) => i));
    }
    assert.equal(batches.at(-1)!.batchSize, 23 % 4);
  });

  await t.step("dropLast keeps shapes static; shuffle: false keeps order", () => {
    const it = classificationBatches(examples, { ...opts, dropLast: true, epochs: 1 });
    assert.equal(it.batchesPerEpoch, 5);
    const bs = [...it];
    assert.equal(bs.length, 5);
    for (const b of bs) assert.equal(b.batchSize, 4);
    const ordered = [...classificationBatches(examples, { ...opts, shuffle: false, epochs: 1 })];
    assert.deepEqual(ordered.flatMap((b) => [...b.indices]), examples.map((_, i) => i));
  });

  await t.step("deterministic for a seed, different for another, new order per epoch", () => {
    const a = [...classificationBatches(examples, opts)];
    const b = [...classificationBatches(examples, opts)];
    const c = [...classificationBatches(examples, { ...opts, seed: 43 })];
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.map((x) => [...x.indices]), c.map((x) => [...x.indices]));
    const perEpoch = (e: number) =>
      a.filter((x) => x.position.epoch === e).flatMap((x) => [...x.indices]);
    assert.notDeepEqual(perEpoch(0), perEpoch(1));
  });

  await t.step("resume from state equals the uninterrupted run", () => {
    const full = [...classificationBatches(examples, opts)];
    for (const k of [0, 1, 5, 6, 7, 12, full.length - 1, full.length]) {
      const it = classificationBatches(examples, opts);
      const head = take(it, k);
      const saved: BatchState = JSON.parse(JSON.stringify(it.state));
      const resumed = ClassificationBatcher.fromState(examples, opts, saved);
      assert.deepEqual([...head, ...resumed], full, `resume after ${k} batches`);
      // Seed may also come from the state alone.
      const { seed: _seed, ...noSeed } = opts;
      const resumed2 = ClassificationBatcher.fromState(examples, noSeed, saved);
      assert.deepEqual([...resumed2], full.slice(k));
    }
    const it = classificationBatches(examples, opts);
    take(it, 7);
    assert.deepEqual(it.state, { epoch: 1, index: 1, seed: 42 });
    assert.throws(() => ClassificationBatcher.fromState(examples, { ...opts, seed: 1 }, it.state));
    assert.throws(() =>
      ClassificationBatcher.fromState(examples, opts, { epoch: 0, index: 99, seed: 42 })
    );
  });

  await t.step("edge cases", () => {
    assert.equal([...classificationBatches([], opts)].length, 0);
    assert.throws(() => classificationBatches(examples, { ...opts, batchSize: 0 }));
    assert.throws(() => classificationBatches([{ text: "a", label: 0.5 }], opts));
  });
});

Deno.test("language-model batches", async (t) => {
  const texts = loadNames().train.slice(0, 400);
  const opts = { batchSize: 8, seqLen: 16, seed: 3 };

  await t.step("corpus layout", () => {
    assert.deepEqual([...lmCorpus(["ab", "", "c"])], [BOS, 97, 98, EOS, BOS, EOS, BOS, 99, EOS]);
  });

  await t.step("shapes and next-token targets from contiguous windows", () => {
    const corpus = lmCorpus(texts);
    const s = Array.from(corpus).join(",");
    const it = lmBatches(texts, opts);
    assert.equal(it.corpusLength, corpus.length);
    assert.equal(it.done, false);
    for (const b of take(it, it.batchesPerEpoch + 3)) {
      assert.equal(b.tokens.length, 8 * 16);
      assert.equal(b.targets.length, 8 * 16);
      for (let r = 0; r < 8; r++) {
        const x = b.tokens.subarray(r * 16, (r + 1) * 16);
        const y = b.targets.subarray(r * 16, (r + 1) * 16);
        assert.deepEqual([...x.subarray(1)], [...y.subarray(0, 15)]);
        assert.ok(s.includes([...x, y[15]].join(",")), "window is contiguous in the corpus");
      }
    }
  });

  await t.step("an epoch covers disjoint windows", () => {
    const it = lmBatches(texts, { ...opts, epochs: 1 });
    const starts = new Set<string>();
    const bs = [...it];
    assert.equal(bs.length, it.batchesPerEpoch);
    const windows = bs.flatMap((b) =>
      Array.from({ length: 8 }, (_, r) => b.tokens.subarray(r * 16, r * 16 + 16).join(","))
    );
    for (const w of windows) starts.add(w);
    assert.ok(starts.size >= windows.length - 2); // names repeat rarely
  });

  await t.step("deterministic, seed-dependent, resumable", () => {
    const a = take(lmBatches(texts, opts), 30);
    assert.deepEqual(a, take(lmBatches(texts, opts), 30));
    assert.notDeepEqual(
      a.map((b) => b.tokens),
      take(lmBatches(texts, { ...opts, seed: 4 }), 30).map((b) => b.tokens),
    );
    for (const k of [0, 3, 13, 14, 15, 29]) {
      const it = lmBatches(texts, opts);
      const head = take(it, k);
      const resumed = LmBatcher.fromState(texts, opts, JSON.parse(JSON.stringify(it.state)));
      assert.deepEqual([...head, ...take(resumed, 30 - k)], a, `resume after ${k}`);
    }
  });

  await t.step("too small a corpus is an error", () => {
    assert.throws(() => lmBatches(["ab"], { batchSize: 2, seqLen: 8 }), RangeError);
  });
});
