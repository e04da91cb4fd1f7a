import assert from "node:assert/strict";
import {
  dropoutKeep,
  kaimingUniformBound,
  randomBits,
  threefry2x32,
  threefryKey,
  uniformSymmetric,
} from "../../prng/threefry.ts";

// Random123 kat_vectors for threefry2x32_20: counter, key → output.
const KAT: { counter: [number, number]; key: [number, number]; out: [number, number] }[] = [
  {
    counter: [0x00000000, 0x00000000],
    key: [0x00000000, 0x00000000],
    out: [0x6b200159, 0x99ba4efe],
  },
  {
    counter: [0xffffffff, 0xffffffff],
    key: [0xffffffff, 0xffffffff],
    out: [0x1cb996fc, 0xbb002be7],
  },
  {
    counter: [0x243f6a88, 0x85a308d3],
    key: [0x13198a2e, 0x03707344],
    out: [0xc4923a9c, 0x483df7a0],
  },
];

Deno.test("threefry2x32 matches the Random123 known-answer vectors", () => {
  for (const { counter, key, out } of KAT) assert.deepEqual(threefry2x32(key, counter), out);
});

Deno.test("threefry counters follow JAX's partitionable layout (counter (0, i))", () => {
  // jax.random.split(jax.random.PRNGKey(0), 3) with jax_threefry_partitionable=True
  // (the default since JAX 0.5) hashes counters (0, 0), (0, 1), (0, 2) under key [0, 0].
  const split = [[1797259609, 2579123966], [928981903, 3453687069], [4146024105, 2718843009]];
  split.forEach((pair, i) => assert.deepEqual(threefry2x32([0, 0], [0, i]), pair));
  // jax.random.bits(PRNGKey(0), (3,)) is the xor of each pair.
  assert.deepEqual([...randomBits(0, 0, 0, 3)], split.map(([a, b]) => (a ^ b) >>> 0));
  // Indices past 2^32 carry into the high counter word.
  const [hi0, hi1] = threefry2x32([5, 9], [1, 3]);
  assert.equal(randomBits(9, 5, 2 ** 32 + 3, 1)[0], (hi0 ^ hi1) >>> 0);
});

Deno.test("randomBits is deterministic and a pure function of (seed, stream, index)", () => {
  const whole = randomBits(123, 4, 0, 1000);
  assert.deepEqual(randomBits(123, 4, 0, 1000), whole);
  assert.deepEqual(randomBits(123, 4, 500, 500), whole.subarray(500));
  assert.deepEqual(threefryKey(123, 4), [4, 123]);
  const values = uniformSymmetric(99, 2, 300, 0.25);
  assert.deepEqual(uniformSymmetric(99, 2, 100, 0.25, 200), values.subarray(200));
});

Deno.test("distinct seeds and streams give different sequences", () => {
  const sequences = [[1, 0], [2, 0], [1, 1], [2, 1], [0, 1], [1, 2]].map(([seed, stream]) =>
    randomBits(seed, stream, 0, 64).join(",")
  );
  assert.equal(new Set(sequences).size, sequences.length);
  // Not merely shifted copies: no word of one stream appears in another.
  const a = new Set(randomBits(1, 0, 0, 4096));
  const shared = randomBits(1, 1, 0, 4096).filter((w) => a.has(w)).length;
  assert.ok(shared <= 1, `streams 0 and 1 share ${shared} words`);
});

Deno.test("uniformSymmetric: range, moments and exact rounding over 10^5 samples", () => {
  const n = 100_000;
  const bound = kaimingUniformBound(64); // sqrt(6/64) ≈ 0.306
  const values = uniformSymmetric(2024, 0, n, bound);
  const words = randomBits(2024, 0, 0, n);
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    assert.ok(v >= -bound && v < bound, `value ${v} at ${i} outside [-${bound}, ${bound})`);
    // (2u − 1) · bound with one f32 rounding, as docs/ARCHITECTURE.md §6 specifies.
    const u = (words[i] >>> 8) * 2 ** -24;
    assert.equal(v, Math.fround(Math.fround(2 * u - 1) * Math.fround(bound)));
    sum += v;
    sumSquares += v * v;
  }
  const mean = sum / n;
  const variance = sumSquares / n - mean * mean;
  const expectedVariance = (bound * bound) / 3;
  // Standard error of the mean is bound/sqrt(3n) ≈ 5.6e-4; allow 5 of them.
  assert.ok(Math.abs(mean) < 5 * bound / Math.sqrt(3 * n), `mean ${mean}`);
  // Var of v² is (4/45)·bound⁴, so the variance's standard error ≈ 0.3·bound²/sqrt(n).
  assert.ok(
    Math.abs(variance - expectedVariance) < 5 * 0.3 * bound * bound / Math.sqrt(n),
    `variance ${variance}, expected ${expectedVariance}`,
  );
});

Deno.test("uniformSymmetric never reaches +bound and reaches exactly -bound", () => {
  // The largest u is 1 - 2^-24, so 2u − 1 = 1 - 2^-23; times any bound it rounds below bound.
  for (const bound of [1, 1.5, 0.1, 3.4e38, kaimingUniformBound(3)]) {
    const b = Math.fround(bound);
    assert.ok(Math.fround((1 - 2 ** -23) * b) < b, `bound ${bound}`);
    assert.equal(Math.fround(-1 * b), -b);
  }
});

Deno.test("kaimingUniformBound is sqrt(6 / fanIn) rounded to f32", () => {
  assert.equal(kaimingUniformBound(6), 1);
  assert.equal(kaimingUniformBound(24), 0.5);
  assert.equal(kaimingUniformBound(768), Math.fround(Math.sqrt(6 / 768)));
  assert.equal(kaimingUniformBound(768), new Float32Array([Math.sqrt(6 / 768)])[0]);
});

Deno.test("dropoutKeep keeps u >= p and drops about p of the elements", () => {
  const words = randomBits(5, 7, 0, 20_000);
  let kept = 0;
  for (let i = 0; i < words.length; i++) {
    const keep = dropoutKeep(5, 7, i, 0.3);
    assert.equal(keep, (words[i] >>> 8) * 2 ** -24 >= Math.fround(0.3));
    if (keep) kept++;
  }
  // Binomial(20000, 0.7): standard deviation ≈ 65.
  assert.ok(Math.abs(kept - 14_000) < 5 * 65, `kept ${kept} of 20000`);
  assert.equal(dropoutKeep(5, 7, 0, 0), true);
  assert.equal(dropoutKeep(5, 7, 0, 1), false);
});

Deno.test("argument validation names the argument and the bad value", () => {
  const throwsRange = (fn: () => unknown, pattern: RegExp) => assert.throws(fn, pattern);
  throwsRange(() => randomBits(-1, 0, 0, 1), /seed must be an integer in \[0, 2\^32\), got -1/);
  throwsRange(() => randomBits(2 ** 32, 0, 0, 1), /seed must be .* got 4294967296/);
  throwsRange(() => randomBits(1.5, 0, 0, 1), /seed must be .* got 1.5/);
  throwsRange(() => randomBits(0, NaN, 0, 1), /stream must be .* got NaN/);
  throwsRange(() => randomBits(0, 0, -1, 1), /start must be a non-negative safe integer, got -1/);
  throwsRange(() => randomBits(0, 0, 0, 0.5), /count must be .* got 0.5/);
  throwsRange(() => randomBits(0, 0, 2 ** 53 - 1, 2), /start \+ count must be at most 2\^53/);
  throwsRange(() => uniformSymmetric(0, 0, 1, 0), /bound must be a finite number > 0, got 0/);
  throwsRange(() => uniformSymmetric(0, 0, 1, Infinity), /bound must be .* got Infinity/);
  throwsRange(() => uniformSymmetric(0, 0, 1, -1), /bound must be .* got -1/);
  throwsRange(() => kaimingUniformBound(0), /fanIn must be a positive integer, got 0/);
  throwsRange(() => kaimingUniformBound(2.5), /fanIn must be a positive integer, got 2.5/);
  throwsRange(() => dropoutKeep(0, 0, 0, 1.5), /p must be in \[0, 1\], got 1.5/);
  throwsRange(() => dropoutKeep(0, 0, 0, NaN), /p must be in \[0, 1\], got NaN/);
  throwsRange(() => dropoutKeep(0, 0, -3, 0.5), /index must be .* got -3/);
  throwsRange(() => threefry2x32([0, 2 ** 32], [0, 0]), /key\[1\] must be an integer/);
  assert.throws(
    () => threefry2x32([0] as unknown as [number, number], [0, 0]),
    /key must be a pair \[u32, u32\]/,
  );
});
