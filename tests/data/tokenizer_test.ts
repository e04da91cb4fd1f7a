import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BOS,
  CLS,
  decode,
  encode,
  EOS,
  PAD,
  truncateUtf8,
  utf8Bytes,
  vocabSize,
} from "../../data/tokenizer.ts";

Deno.test("tokenizer", async (t) => {
  await t.step("constants", () => {
    assert.deepEqual([PAD, BOS, EOS, CLS, vocabSize], [256, 257, 258, 259, 260]);
  });

  await t.step("encode gives UTF-8 bytes", () => {
    assert.deepEqual([...encode("aé€😀")], [...new TextEncoder().encode("aé€😀")]);
    assert.equal(encode("").length, 0);
  });

  await t.step("round trip on arbitrary unicode (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 64 }), (s) => {
        const ids = encode(s, { maxLength: 4 * 64 + 2, addBos: true, addEos: true, pad: true });
        assert.equal(ids.length, 4 * 64 + 2);
        assert.equal(ids[0], BOS);
        assert.equal(decode(ids), s);
        for (const id of ids) assert.ok(id >= 0 && id < vocabSize);
      }),
      { numRuns: 300 },
    );
  });

  await t.step("truncation keeps a prefix of the bytes (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 40 }),
        fc.integer({ min: 0, max: 48 }),
        (s, maxLength) => {
          const bytes = utf8Bytes(s);
          const ids = encode(s, { maxLength });
          assert.equal(ids.length, Math.min(maxLength, bytes.length));
          assert.deepEqual([...ids], [...bytes.subarray(0, maxLength)]);
          const cut = truncateUtf8(s, maxLength);
          assert.ok(s.startsWith(cut));
          assert.ok(utf8Bytes(cut).length <= maxLength);
          // Maximal: the next code point would not fit.
          const rest = [...s.slice(cut.length)];
          if (rest.length) assert.ok(utf8Bytes(cut + rest[0]).length > maxLength);
        },
      ),
      { numRuns: 300 },
    );
  });

  await t.step("padding and special tokens", () => {
    assert.deepEqual([...encode("hi", { maxLength: 5, pad: true })], [104, 105, PAD, PAD, PAD]);
    assert.deepEqual(
      [...encode("hi", { maxLength: 6, addBos: true, addEos: true, pad: true })],
      [BOS, 104, 105, EOS, PAD, PAD],
    );
    assert.throws(() => encode("hi", { pad: true }));
  });

  await t.step("truncation modes keep BOS/EOS", () => {
    assert.deepEqual(
      [...encode("abcdef", { maxLength: 4, addBos: true, addEos: true })],
      [BOS, 97, 98, EOS],
    );
    assert.deepEqual(
      [...encode("abcdef", { maxLength: 4, addBos: true, addEos: true, truncate: "start" })],
      [BOS, 101, 102, EOS],
    );
    assert.deepEqual([...encode("abcdef", { maxLength: 3, truncate: "end" })], [97, 98, 99]);
    assert.throws(() => encode("abcdef", { maxLength: 3, truncate: "error" }), RangeError);
    assert.deepEqual([...encode("abc", { maxLength: 1, addBos: true, addEos: true })], [BOS]);
  });

  await t.step("decode skips specials and replaces broken bytes", () => {
    assert.equal(decode([BOS, 104, PAD, CLS, 105, EOS]), "hi");
    // "é" is C3 A9; a lone C3 is invalid UTF-8.
    assert.equal(decode([0x61, 0xc3]), "a\uFFFD");
    assert.throws(() => decode([260]), RangeError);
    assert.throws(() => decode([-1]), RangeError);
  });
});
