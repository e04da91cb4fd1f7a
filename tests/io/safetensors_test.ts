// Valid files, round trips, half-precision decoding and the streaming reader.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeSafetensors,
  encodeSafetensors,
  openSafetensors,
  parseHeader,
  readSafetensors,
  type SafetensorsDType,
  type TensorData,
  type TensorInput,
  writeSafetensors,
} from "../../io/safetensors.ts";
import { f16BitsToF32Bits, f32BitsToF16Bits } from "../../io/_dtypes.ts";
import { assertCleanError, assertCleanRejection, entry, rawFile, withTempDir } from "./_helpers.ts";

const ALL_DTYPES: SafetensorsDType[] = [
  "F64",
  "F32",
  "F16",
  "BF16",
  "I64",
  "I32",
  "I16",
  "I8",
  "U64",
  "U32",
  "U16",
  "U8",
  "BOOL",
];
const SIZE: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

// deno-fmt-ignore
const ARRAYS = {
  F64: Float64Array, F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I64: BigInt64Array,
  I32: Int32Array, I16: Int16Array, I8: Int8Array, U64: BigUint64Array, U32: Uint32Array,
  U16: Uint16Array, U8: Uint8Array, BOOL: Uint8Array,
} as const;

/** A tensor of `dtype` whose raw little-endian bytes are `raw`. F16/BF16 use raw bits. */
function fromRaw(dtype: SafetensorsDType, raw: Uint8Array): TensorData {
  const data = new ARRAYS[dtype](raw.slice().buffer);
  return dtype === "BOOL" ? (data as Uint8Array).map((b) => b & 1) : data;
}

const bytesOf = (d: TensorData) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
const f32FromBits = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];

Deno.test("valid edge cases are accepted", async (t) => {
  await t.step("a 0-rank tensor (shape [])", () => {
    const file = decodeSafetensors(
      rawFile(`{"s":${entry("F32", [], 0, 4)}}`, new Uint8Array(new Float32Array([2.5]).buffer)),
    );
    assert.deepEqual(file.tensors.get("s"), {
      dtype: "F32",
      shape: [],
      data: new Float32Array([2.5]),
    });
  });
  await t.step("empty tensors (a 0 dim, begin == end), first and last", () => {
    const header = `{"e":${entry("F32", [0, 3], 0, 0)},"a":${entry("U8", [2], 0, 2)},"z":${
      entry("I64", [4, 0], 2, 2)
    }}`;
    const file = decodeSafetensors(rawFile(header, new Uint8Array([7, 8])));
    assert.deepEqual(file.tensors.get("e"), {
      dtype: "F32",
      shape: [0, 3],
      data: new Float32Array(0),
    });
    assert.deepEqual(file.tensors.get("z")?.data, new BigInt64Array(0));
    assert.deepEqual(file.tensors.get("a")?.data, new Uint8Array([7, 8]));
  });
  await t.step("a high-rank empty tensor with huge dimensions", () => {
    const shape = [...Array(1000).fill(2 ** 52), 0];
    const file = decodeSafetensors(rawFile(`{"e":${entry("F64", shape, 0, 0)}}`));
    assert.equal(file.tensors.get("e")?.shape.length, 1001);
    assert.equal(file.tensors.get("e")?.data.length, 0);
  });
  await t.step("header padded with trailing spaces, and leading whitespace", () => {
    const file = decodeSafetensors(
      rawFile(` \n{"a":${entry("U8", [1], 0, 1)}}      \t\r\n`, new Uint8Array([9])),
    );
    assert.deepEqual(file.tensors.get("a")?.data, new Uint8Array([9]));
  });
  await t.step("metadata present, including awkward keys", () => {
    const file = decodeSafetensors(
      rawFile('{"__metadata__":{"format":"pt","__proto__":"x","é":"\\u00e9"}}'),
    );
    assert.equal(file.metadata.format, "pt");
    assert.equal(Object.getOwnPropertyDescriptor(file.metadata, "__proto__")?.value, "x");
    assert.equal(Object.getPrototypeOf(file.metadata), Object.prototype);
    assert.equal(file.metadata["é"], "é");
  });
  await t.step("zero tensors", () => {
    assert.equal(decodeSafetensors(rawFile("{}")).tensors.size, 0);
    assert.equal(decodeSafetensors(encodeSafetensors({})).tensors.size, 0);
  });
  await t.step("entries listed out of offset order, unaligned offsets", () => {
    const data = new Uint8Array(9);
    data[0] = 1;
    new DataView(data.buffer).setFloat64(1, Math.PI, true);
    const file = decodeSafetensors(
      rawFile(`{"d":${entry("F64", [1], 1, 9)},"b":${entry("BOOL", [1], 0, 1)}}`, data),
    );
    assert.deepEqual([...file.tensors.keys()], ["d", "b"]);
    assert.equal(file.tensors.get("d")?.data[0], Math.PI);
    assert.equal(file.tensors.get("d")?.data.byteOffset, 0);
  });
  await t.step("a subarray with a non-zero byteOffset decodes", () => {
    const inner = encodeSafetensors({
      x: { dtype: "I16", shape: [2], data: new Int16Array([-1, 3]) },
    });
    const padded = new Uint8Array(inner.length + 3);
    padded.set(inner, 3);
    assert.deepEqual(
      decodeSafetensors(padded.subarray(3)).tensors.get("x")?.data,
      new Int16Array([-1, 3]),
    );
  });
});

Deno.test("F16 and BF16 decode exactly to known values", async (t) => {
  const decode = (dtype: "F16" | "BF16", bits: number[]) =>
    decodeSafetensors(
      encodeSafetensors({ h: { dtype, shape: [bits.length], data: new Uint16Array(bits) } }),
    )
      .tensors.get("h")!.data as Float32Array;
  await t.step("F16", () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x8001, -(2 ** -24)],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    const got = decode("F16", cases.map((c) => c[0]));
    cases.forEach(([, want], i) =>
      assert.equal(got[i], want, `bits 0x${cases[i][0].toString(16)}`)
    );
    const signed = decode("F16", [0x8000, 0x7e00, 0xfe01, 0x7c01]);
    assert.ok(Object.is(signed[0], -0));
    for (const v of signed.subarray(1)) assert.ok(Number.isNaN(v));
    const nanBits = new Uint32Array(signed.buffer);
    assert.equal(nanBits[1], 0x7fc00000);
    assert.equal(nanBits[2], 0xffc02000); // sign and payload kept
    assert.equal(nanBits[3], 0x7f802000); // signalling NaN payload kept
  });
  await t.step("BF16", () => {
    const cases: [number, number][] = [
      [0x3f80, 1],
      [0xc049, -3.140625],
      [0x7f7f, 3.3895313892515355e38],
      [0x0080, 2 ** -126],
      [0x0001, 2 ** -133],
      [0x007f, 127 * 2 ** -133],
      [0x7f80, Infinity],
      [0xff80, -Infinity],
    ];
    const got = decode("BF16", cases.map((c) => c[0]));
    cases.forEach(([, want], i) =>
      assert.equal(got[i], want, `bits 0x${cases[i][0].toString(16)}`)
    );
    assert.ok(Number.isNaN(decode("BF16", [0x7fc0])[0]));
  });
  await t.step("all 65536 F16 and BF16 bit patterns survive decode then encode", () => {
    const every = new Uint16Array(65536).map((_, i) => i);
    for (const dtype of ["F16", "BF16"] as const) {
      const widened = decodeSafetensors(
        encodeSafetensors({ h: { dtype, shape: [65536], data: every } }),
      );
      const again = encodeSafetensors({
        h: { dtype, shape: [65536], data: widened.tensors.get("h")!.data },
      });
      assert.deepEqual(again, encodeSafetensors({ h: { dtype, shape: [65536], data: every } }));
    }
  });
});

Deno.test("F32 to F16 rounds to nearest, ties to even", () => {
  assert.equal(f32BitsToF16Bits(0x477fe000), 0x7bff); // 65504, the largest finite half
  assert.equal(f32BitsToF16Bits(0x477fefff), 0x7bff); // just below the 65520 midpoint
  assert.equal(f32BitsToF16Bits(0x477ff000), 0x7c00); // 65520 ties to even: infinity
  assert.equal(f32BitsToF16Bits(new Uint32Array(new Float32Array([65520]).buffer)[0]), 0x7c00);
  assert.equal(f32BitsToF16Bits(new Uint32Array(new Float32Array([2 ** -25]).buffer)[0]), 0);
  assert.equal(f32BitsToF16Bits(new Uint32Array(new Float32Array([3 * 2 ** -25]).buffer)[0]), 2);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (x) => {
      const value = f32FromBits(x);
      fc.pre(Number.isFinite(value));
      const h = f32BitsToF16Bits(x);
      const got = f32FromBits(f16BitsToF32Bits(h));
      if (Math.abs(value) >= 65520) {
        return Math.abs(got) === Infinity && Math.sign(got) === Math.sign(value);
      }
      const err = Math.abs(got - value);
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7c00) === 0x7c00 || (n & 0x8000) !== (h & 0x8000)) continue;
        const other = Math.abs(f32FromBits(f16BitsToF32Bits(n)) - value);
        if (other < err || (other === err && (h & 1) === 1)) return false;
      }
      return true;
    }),
    { numRuns: 20000 },
  );
});

Deno.test("write then read is bit-identical for every dtype", async () => {
  const tensors: Record<string, TensorInput> = {};
  for (const [i, dtype] of ALL_DTYPES.entries()) {
    const raw = new Uint8Array(6 * SIZE[dtype]).map((_, k) => (k * 37 + i * 11 + 3) & 0xff);
    tensors[`t.${dtype}`] = { dtype, shape: [2, 3], data: fromRaw(dtype, raw) };
  }
  await withTempDir(async (dir) => {
    const path = `${dir}/all.safetensors`;
    await writeSafetensors(path, tensors, { note: "all dtypes" });
    const bytes = await Deno.readFile(path);
    assert.deepEqual(bytes, encodeSafetensors(tensors, { note: "all dtypes" }));
    const back = await readSafetensors(path);
    assert.deepEqual(back.metadata, { format: "pt", note: "all dtypes" });
    for (const [name, t] of Object.entries(tensors)) {
      const got = back.tensors.get(name)!;
      assert.equal(got.dtype, t.dtype);
      assert.deepEqual(got.shape, [2, 3]);
      const want = encodeSafetensors({ x: t });
      assert.deepEqual(encodeSafetensors({ x: got }), want, name);
      if (t.dtype !== "F16" && t.dtype !== "BF16") {
        assert.deepEqual(bytesOf(got.data), bytesOf(t.data), name);
      }
    }
    assert.deepEqual(encodeSafetensors(back.tensors, back.metadata), bytes);
  });
});

Deno.test("the header layout matches the Rust crate", () => {
  const bytes = encodeSafetensors({
    "b": { dtype: "U8", shape: [1], data: new Uint8Array([1]) },
    "a": { dtype: "U8", shape: [1], data: new Uint8Array([2]) },
    "w": { dtype: "F32", shape: [1], data: new Float32Array([1]) },
    "i": { dtype: "I64", shape: [], data: new BigInt64Array([1n]) },
    "10": { dtype: "F32", shape: [1], data: new Float32Array([2]) },
  }, { z: "1", a: "2" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.equal(
    text.trimEnd(),
    '{"__metadata__":{"a":"2","format":"pt","z":"1"},' +
      '"i":{"dtype":"I64","shape":[],"data_offsets":[0,8]},' +
      '"10":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
      '"w":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},' +
      '"a":{"dtype":"U8","shape":[1],"data_offsets":[16,17]},' +
      '"b":{"dtype":"U8","shape":[1],"data_offsets":[17,18]}}',
  );
  assert.match(text, /^[^ ]* *$/);
  assert.deepEqual(parseHeader(bytes, bytes.length).tensors.map((t) => t.name), [
    "i",
    "10",
    "w",
    "a",
    "b",
  ]);
});

Deno.test("the writer rejects inconsistent tensors", () => {
  const bad: [string, Record<string, TensorInput>, RegExp][] = [
    [
      "wrong length",
      { x: { dtype: "F32", shape: [3], data: new Float32Array(2) } },
      /shape \[3\] has 3 elements, data has 2/,
    ],
    [
      "wrong array",
      { x: { dtype: "F64", shape: [1], data: new Float32Array(1) } },
      /dtype F64 needs a Float64Array, got Float32Array/,
    ],
    ["bad dim", { x: { dtype: "U8", shape: [-1], data: new Uint8Array(0) } }, /bad shape/],
    [
      "bool values",
      { x: { dtype: "BOOL", shape: [2], data: new Uint8Array([0, 2]) } },
      /BOOL element 1 is 2/,
    ],
    [
      "empty name",
      { "": { dtype: "U8", shape: [0], data: new Uint8Array(0) } },
      /invalid tensor name/,
    ],
    [
      "reserved name",
      { __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } },
      /invalid tensor name/,
    ],
    [
      "lone surrogate",
      { "\ud800": { dtype: "U8", shape: [0], data: new Uint8Array(0) } },
      /invalid tensor name/,
    ],
  ];
  for (const [label, tensors, pattern] of bad) {
    assertCleanError(() => encodeSafetensors(tensors), pattern);
    assert.ok(label);
  }
  assertCleanError(
    () => encodeSafetensors({}, { k: 1 as unknown as string }),
    /metadata "k" must be a well-formed string/,
  );
});

Deno.test("openSafetensors streams tensors one at a time", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/s.safetensors`;
    await writeSafetensors(path, {
      big: { dtype: "F32", shape: [1000], data: new Float32Array(1000).map((_, i) => i) },
      small: { dtype: "U16", shape: [2], data: new Uint16Array([1, 65535]) },
    });
    const file = await openSafetensors(path);
    try {
      assert.deepEqual(file.header.tensors.map((t) => t.name), ["big", "small"]);
      assert.deepEqual((await file.read("small")).data, new Uint16Array([1, 65535]));
      assert.equal((await file.read("big")).data[999], 999);
      await assertCleanRejection(
        () => file.read("nope"),
        /tensor "nope" not found \(has: big, small\)/,
      );
    } finally {
      file.close();
    }
  });
});

const dtypeArb = fc.constantFrom(...ALL_DTYPES);
const tensorArb = fc
  .tuple(dtypeArb, fc.array(fc.nat({ max: 4 }), { maxLength: 3 }))
  .chain(([dtype, shape]) => {
    const count = shape.reduce((a, b) => a * b, 1);
    return fc.uint8Array({ minLength: count * SIZE[dtype], maxLength: count * SIZE[dtype] })
      .map((raw) => ({ dtype, shape, data: fromRaw(dtype, raw) }));
  });
const nameArb = fc.string({ minLength: 1, maxLength: 6, unit: "grapheme" })
  .filter((s) => s !== "__metadata__");

Deno.test("property: random tensors round-trip bit-identically", () => {
  fc.assert(
    fc.property(
      fc.dictionary(nameArb, tensorArb, { maxKeys: 6 }),
      fc.dictionary(nameArb, fc.string({ unit: "grapheme" }), { maxKeys: 3 }),
      (tensors, metadata) => {
        const bytes = encodeSafetensors(tensors, metadata);
        const back = decodeSafetensors(bytes);
        assert.deepEqual([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
        for (const [name, t] of Object.entries(tensors)) {
          const got = back.tensors.get(name)!;
          assert.equal(got.dtype, t.dtype);
          assert.deepEqual(got.shape, t.shape);
        }
        assert.deepEqual(encodeSafetensors(back.tensors, back.metadata), bytes);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("property: corrupted files never crash the reader", () => {
  const good = encodeSafetensors({
    a: { dtype: "F16", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    b: { dtype: "I32", shape: [3], data: new Int32Array([1, -2, 3]) },
  }, { k: "v" });
  const corruptions = fc.oneof(
    fc.nat({ max: good.length }).map((n) => good.slice(0, n)),
    fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 255 })), {
      minLength: 1,
      maxLength: 4,
    })
      .map((edits) => {
        const copy = good.slice();
        for (const [at, value] of edits) copy[at] = value;
        return copy;
      }),
    fc.json().map((json) => rawFile(json, 16)),
  );
  fc.assert(
    fc.property(corruptions, (bytes) => {
      try {
        decodeSafetensors(bytes);
      } catch (e) {
        assert.equal((e as Error).constructor, Error, String(e));
        assert.match((e as Error).message, /^safetensors: /);
      }
    }),
    { numRuns: 2000 },
  );
});
