// Malformed safetensors files shared by the reader's tests and the CLI's.
import { encodeSafetensors } from "../../io/safetensors.ts";
import { entry, rawFile } from "./_helpers.ts";

const f32 = (name: string, n: number, begin: number) =>
  `"${name}":${entry("F32", [n], begin, begin + 4 * n)}`;
const valid = encodeSafetensors({
  a: { dtype: "F32", shape: [4], data: new Float32Array([1, 2, 3, 4]) },
  b: { dtype: "I64", shape: [2], data: new BigInt64Array([5n, 6n]) },
});
const deep = "[".repeat(1000) + "]".repeat(1000);
const bytes = (...parts: (string | number[])[]) =>
  new Uint8Array(
    parts.flatMap((p) => typeof p === "string" ? [...new TextEncoder().encode(p)] : p),
  );

/** Malformed files: name, bytes, and the error the strict reader must give. */
export const MALFORMED_CASES: [string, Uint8Array, RegExp][] = [
  ["empty file", new Uint8Array(0), /file is 0 bytes, shorter than the 8-byte header length/],
  ["7-byte file", new Uint8Array(7), /file is 7 bytes, shorter than the 8-byte/],
  ["header length 0", rawFile("", 0, 0n), /header length at byte 0 is 0/],
  [
    "header length past the file",
    rawFile("{}", 0, 100n),
    /header length 100 .*exceeds the 2 bytes/,
  ],
  [
    "header length 2^64-1",
    rawFile("{}", 0, 2n ** 64n - 1n),
    /18446744073709551615 .*100000000-byte limit/,
  ],
  ["header length 2^63", rawFile("{}", 0, 2n ** 63n), /100000000-byte limit/],
  ["header length 100 MB + 1", rawFile("{}", 0, 100_000_001n), /100000001 .*100000000-byte limit/],
  [
    "truncated in the header",
    valid.subarray(0, 20),
    /header length \d+ at byte 0 exceeds the 12 bytes/,
  ],
  [
    "truncated in the data",
    valid.subarray(0, valid.length - 3),
    /tensor "a": data_offsets \[16, 32\] end past the data section \(29 bytes\)/,
  ],
  ["header is whitespace only", rawFile("        "), /empty JSON text at byte 16/],
  ["invalid UTF-8 byte", rawFile(bytes('{"a', [0xff], '":1}')), /invalid UTF-8 at byte 11/],
  ["overlong UTF-8", rawFile(bytes('{"', [0xc0, 0xaf], '":1}')), /invalid UTF-8 at byte 10/],
  ["UTF-8 surrogate", rawFile(bytes('{"', [0xed, 0xa0, 0x80], '":1}')), /invalid UTF-8 at byte 10/],
  ["not JSON", rawFile("{abc}"), /expected a string key, found 'a' at byte 9/],
  ["unterminated string", rawFile('{"abc'), /unterminated string at byte 9/],
  ["trailing comma", rawFile('{"a":{},}'), /expected a string key, found '}'/],
  [
    "NaN in shape",
    rawFile(`{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}`, 4),
    /NaN is not valid JSON at byte 37/,
  ],
  [
    "Infinity in offsets",
    rawFile(`{"a":${entry("F32", [1], 0, "Infinity")}}`, 4),
    /Infinity is not valid JSON/,
  ],
  [
    "-Infinity in shape",
    rawFile(`{"a":{"dtype":"F32","shape":[-Infinity],"data_offsets":[0,4]}}`),
    /Infinity is not valid JSON/,
  ],
  [
    "leading zeros",
    rawFile(`{"a":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}}`, 1),
    /leading zeros/,
  ],
  ["control character in a string", rawFile('{"a\tb":1}'), /unescaped control character in string/],
  ["lone surrogate escape", rawFile('{"\\ud800":1}'), /lone high surrogate/],
  ["garbage after the JSON", rawFile("{}x"), /unexpected 'x' after the JSON value at byte 10/],
  ["NUL padding", rawFile("{}\0\0\0\0\0\0"), /unexpected .* after the JSON value/],
  ["nesting bomb", rawFile(`{"__metadata__":${deep}}`), /nesting deeper than 64 levels/],
  ["top level is an array", rawFile("[]"), /header must be a JSON object, found array/],
  ["top level is a string", rawFile('"hi"'), /header must be a JSON object, found string "hi"/],
  [
    "duplicate top-level key",
    rawFile(`{${f32("a", 1, 0)},${f32("a", 1, 4)}}`, 8),
    /duplicate key "a" in object \/ at byte \d+/,
  ],
  [
    "duplicate nested key",
    rawFile(`{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, 4),
    /duplicate key "dtype" in object \/a at byte 28/,
  ],
  [
    "duplicate metadata key",
    rawFile('{"__metadata__":{"k":"1","k":"2"}}'),
    /duplicate key "k" in object \/__metadata__/,
  ],
  ["duplicate key, escaped spelling", rawFile('{"ab":{},"a\\u0062":{}}'), /duplicate key "ab"/],
  ["entry is an array", rawFile('{"w":[1,2]}'), /tensor "w": entry must be an object, found array/],
  ["entry is null", rawFile('{"w":null}'), /tensor "w": entry must be an object, found null/],
  [
    "missing dtype",
    rawFile('{"w":{"shape":[1],"data_offsets":[0,4]}}', 4),
    /tensor "w": missing field "dtype"/,
  ],
  [
    "missing shape",
    rawFile('{"w":{"dtype":"F32","data_offsets":[0,4]}}', 4),
    /tensor "w": missing field "shape"/,
  ],
  [
    "missing data_offsets",
    rawFile('{"w":{"dtype":"F32","shape":[1]}}', 4),
    /tensor "w": missing field "data_offsets"/,
  ],
  [
    "dtype is a number",
    rawFile(`{"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}`, 4),
    /tensor "w": dtype must be a string, found number 5/,
  ],
  [
    "unknown dtype",
    rawFile(`{"w":${entry("F8_E4M3", [1], 0, 1)}}`, 1),
    /tensor "w": unknown dtype "F8_E4M3"/,
  ],
  ["lowercase dtype", rawFile(`{"w":${entry("f32", [1], 0, 4)}}`, 4), /unknown dtype "f32"/],
  [
    "extra field",
    rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}`, 4),
    /tensor "w": unknown field "extra"/,
  ],
  [
    "shape is a number",
    rawFile(`{"w":${entry("F32", 1, 0, 4)}}`, 4),
    /tensor "w": shape must be an array, found number 1/,
  ],
  [
    "negative dimension",
    rawFile(`{"w":${entry("F32", [-1], 0, 4)}}`, 4),
    /tensor "w": shape\[0\] must be non-negative, found -1/,
  ],
  [
    "fractional dimension",
    rawFile(`{"w":${entry("F32", [1.5], 0, 4)}}`, 4),
    /shape\[0\] must be an integer, found 1.5/,
  ],
  [
    "exponent dimension",
    rawFile(`{"w":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}`, 4),
    /shape\[0\] must be an integer, found 1e0/,
  ],
  [
    "dimension as a string",
    rawFile(`{"w":${entry("F32", ["1"], 0, 4)}}`, 4),
    /shape\[0\] must be a non-negative integer, found string "1"/,
  ],
  [
    "dimension above 2^53",
    rawFile(`{"w":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,0]}}`),
    /shape\[0\] is 9007199254740993, larger than 2\^53/,
  ],
  [
    "element count wraps 2^64",
    rawFile(`{"w":${entry("U8", [2 ** 32, 2 ** 32], 0, 0)}}`),
    /shape \[4294967296,4294967296\] of U8 needs 18446744073709551616 bytes, larger than the whole data section/,
  ],
  [
    "byte count wraps 2^64",
    rawFile(`{"w":${entry("F32", [2 ** 31, 2 ** 31], 0, 0)}}`),
    /needs 18446744073709551616 bytes, larger than/,
  ],
  [
    "byte count wraps to the span",
    rawFile(`{"w":${entry("F64", [2 ** 61 / 2 ** 10, 2 ** 10, 1], 0, 0)}}`),
    /larger than the whole data section/,
  ],
  [
    "size disagrees with offsets",
    rawFile(`{"w":${entry("F32", [2, 2], 0, 8)}}`, 16),
    /tensor "w": shape \[2,2\] of F32 needs 16 bytes but data_offsets \[0, 8\] span 8/,
  ],
  [
    "begin after end",
    rawFile(`{"w":${entry("F32", [1], 8, 4)}}`, 8),
    /tensor "w": data_offsets \[8, 4\] has begin > end/,
  ],
  [
    "offsets out of range",
    rawFile(`{"w":${entry("F32", [1], 8, 12)}}`, 8),
    /tensor "w": data_offsets \[8, 12\] end past the data section \(8 bytes\)/,
  ],
  [
    "offsets far out of range",
    rawFile(`{"w":${entry("U8", [0], 2 ** 40, 2 ** 40)}}`),
    /end past the data section \(0 bytes\)/,
  ],
  [
    "one offset",
    rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4),
    /data_offsets must be an array \[begin, end\], found 1 items/,
  ],
  [
    "offsets as strings",
    rawFile(`{"w":${entry("F32", [1], '"0"', '"4"')}}`, 4),
    /data_offsets\[0\] must be a non-negative integer, found string "0"/,
  ],
  [
    "negative offset",
    rawFile(`{"w":${entry("U8", [0], -1, -1)}}`),
    /data_offsets\[0\] must be non-negative, found -1/,
  ],
  [
    "overlapping tensors",
    rawFile(`{${f32("a", 2, 0)},${f32("b", 2, 4)}}`, 12),
    /tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/,
  ],
  [
    "tensors sharing bytes",
    rawFile(`{${f32("a", 1, 0)},${f32("b", 1, 0)}}`, 4),
    /tensors "a" \[0, 4\] and "b" \[0, 4\] overlap/,
  ],
  [
    "hole between tensors",
    rawFile(`{${f32("a", 1, 0)},${f32("b", 1, 8)}}`, 12),
    /data bytes 4\.\.8 \(file offset \d+\) belong to no tensor: a hole before "b"/,
  ],
  ["hole at the start", rawFile(`{${f32("a", 1, 4)}}`, 8), /data bytes 0\.\.4 .*hole before "a"/],
  [
    "trailing bytes",
    rawFile(`{${f32("a", 1, 0)}}`, 9),
    /5 trailing bytes at file offset \d+ after tensor "a"/,
  ],
  ["trailing bytes, no tensors", rawFile("{}", 3), /3 trailing bytes at file offset 10;/],
  [
    "__metadata__ is an array",
    rawFile('{"__metadata__":["x"]}'),
    /__metadata__ must be an object, found array/,
  ],
  [
    "__metadata__ is null",
    rawFile('{"__metadata__":null}'),
    /__metadata__ must be an object, found null/,
  ],
  [
    "__metadata__ value not a string",
    rawFile('{"__metadata__":{"k":1}}'),
    /__metadata__\["k"\] must be a string, found number 1/,
  ],
  [
    "a megabyte-long number",
    rawFile(`{"w":{"dtype":"U8","shape":[${"9".repeat(1 << 20)}],"data_offsets":[0,0]}}`),
    /shape\[0\] is 9{40}\.\.\. \(1048576 characters\), larger than 2\^53/,
  ],
  [
    "100000 huge dimensions",
    rawFile(`{"w":${entry("U8", Array(100000).fill(2 ** 52), 0, 0)}}`),
    /shape \[(4503599627370496,){7}4503599627370496,\.\.\. \(100000 dims\)\] of U8 needs more than 2\^128 bytes, larger than the whole data section/,
  ],
  [
    "a long tensor name is shortened in messages",
    rawFile(`{"${"n".repeat(10000)}":[1]}`),
    /^safetensors: tensor "n{80}"\.\.\.: entry must be an object, found array/,
  ],
  [
    "empty tensor name",
    rawFile(`{"":${entry("F32", [1], 0, 4)}}`, 4),
    /a tensor has an empty name/,
  ],
];

/** Files whose header is valid and whose data is not: found by reading tensors, not headers. */
export const MALFORMED_DATA_CASES: [string, Uint8Array, RegExp][] = [
  [
    "a BOOL byte other than 0 or 1 (the writer refuses it too)",
    rawFile(`{"b":${entry("BOOL", [3], 0, 3)}}`, new Uint8Array([1, 0, 2])),
    /^safetensors: tensor "b": BOOL element 2 is 2, expected 0 or 1/,
  ],
];
