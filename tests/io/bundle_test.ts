// Bundles: deterministic bytes, and a reader that checks limits and names
// before inflating and never trusts the sizes an archive declares.

import assert from "node:assert/strict";
import { zipSync } from "fflate";
import { decodeBundle, encodeBundle, readBundle, writeBundle } from "../../io/bundle.ts";
import { assertCleanError, assertCleanRejection, withTempDir } from "./_helpers.ts";

const text = (s: string) => new TextEncoder().encode(s);
const manifestBytes = text('{"kind":"test"}');

/** Central directory records of a zip without a comment: name and byte offset. */
function centralRecords(zip: Uint8Array): { name: string; at: number; local: number }[] {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const eocd = zip.length - 22;
  let at = view.getUint32(eocd + 16, true);
  const out = [];
  for (let i = 0; i < view.getUint16(eocd + 10, true); i++) {
    const n = view.getUint16(at + 28, true);
    const name = new TextDecoder().decode(zip.subarray(at + 46, at + 46 + n));
    out.push({ name, at, local: view.getUint32(at + 42, true) });
    at += 46 + n + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
  }
  return out;
}

/** Copy `zip` with a 2- or 4-byte field of the named entry's central record changed. */
function patchCentral(zip: Uint8Array, name: string, field: number, value: number, bytes = 4) {
  const copy = zip.slice();
  const record = centralRecords(copy).find((r) => r.name === name)!;
  const view = new DataView(copy.buffer);
  if (bytes === 4) view.setUint32(record.at + field, value, true);
  else view.setUint16(record.at + field, value, true);
  return copy;
}
const CRC = 16, USIZE = 24, FLAGS = 8, METHOD = 10;

Deno.test("bundles round-trip files and manifest", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/b.zip`;
    const weights = new Uint8Array(1000).map((_, i) => i & 0xff);
    const manifest = { name: "demo", version: 2, nested: { list: [1, "two", null, true] } };
    await writeBundle(path, {
      files: { "w/model.safetensors": weights, "notes.txt": "héllo" },
      manifest,
    });
    for (const source of [path, await Deno.readFile(path)]) {
      const bundle = await readBundle(source);
      assert.deepEqual(bundle.manifest, manifest);
      assert.deepEqual(Object.keys(bundle.files).sort(), ["notes.txt", "w/model.safetensors"]);
      assert.deepEqual(bundle.files["w/model.safetensors"], weights);
      assert.equal(new TextDecoder().decode(bundle.files["notes.txt"]), "héllo");
    }
    const stored = decodeBundle(
      encodeBundle({ files: { a: "x".repeat(100) }, manifest: {} }, { level: 0 }),
    );
    assert.equal(new TextDecoder().decode(stored.files.a), "x".repeat(100));
  });
});

Deno.test("bundle bytes are deterministic", async () => {
  const input = () => ({
    files: { "b.txt": "b", "a/c.bin": new Uint8Array([1, 2]) },
    manifest: { z: 1, a: [2] },
  });
  const reordered = {
    files: { "a/c.bin": new Uint8Array([1, 2]), "b.txt": "b" },
    manifest: { a: [2], z: 1 },
  };
  assert.deepEqual(encodeBundle(input()), encodeBundle(input()));
  assert.deepEqual(encodeBundle(reordered), encodeBundle(input()));
  await withTempDir(async (dir) => {
    await writeBundle(`${dir}/1.zip`, input());
    await writeBundle(`${dir}/2.zip`, input());
    assert.deepEqual(await Deno.readFile(`${dir}/1.zip`), await Deno.readFile(`${dir}/2.zip`));
  });
  // Every entry carries the fixed DOS timestamp 1980-01-01 00:00, not the clock.
  const zip = encodeBundle(input());
  const view = new DataView(zip.buffer);
  for (const r of centralRecords(zip)) {
    assert.equal(view.getUint16(r.at + 12, true), 0, `${r.name} time`);
    assert.equal(view.getUint16(r.at + 14, true), (1 << 5) | 1, `${r.name} date`);
    assert.equal(view.getUint16(r.local + 10, true), 0);
    assert.equal(view.getUint16(r.local + 12, true), (1 << 5) | 1);
  }
  const names = centralRecords(zip).map((r) => r.name);
  assert.deepEqual(names, ["a/c.bin", "b.txt", "manifest.json"]);
  const manifest = decodeBundle(encodeBundle(input())).manifest;
  assert.deepEqual(Object.keys(manifest), ["a", "z"]);
});

Deno.test("entry count and size limits are enforced before inflating", async (t) => {
  await t.step("too many entries", () => {
    const files: Record<string, Uint8Array> = { "manifest.json": manifestBytes };
    for (let i = 0; i < 1000; i++) files[`f${i}`] = new Uint8Array(0);
    const zip = zipSync(files, { level: 0 });
    assertCleanError(
      () => decodeBundle(zip),
      /^bundle: archive has 1001 entries, more than the limit of 1000$/,
    );
    assert.equal(Object.keys(decodeBundle(zip, { maxEntries: 1001 }).files).length, 1000);
    assertCleanError(
      () => decodeBundle(zip, { maxEntries: 3 }),
      /1001 entries, more than the limit of 3/,
    );
  });
  await t.step("a highly compressible entry over the per-entry limit (zip bomb)", () => {
    const zip = zipSync({ "manifest.json": manifestBytes, "bomb.bin": new Uint8Array(64 << 20) }, {
      level: 9,
    });
    assert.ok(zip.length < 200_000, `bomb is ${zip.length} bytes`);
    assertCleanError(
      () => decodeBundle(zip, { maxEntryBytes: 1 << 20 }),
      /entry "bomb.bin" declares 67108864 bytes, more than the per-entry limit of 1048576/,
    );
  });
  await t.step("entries over the total limit", () => {
    const files: Record<string, Uint8Array> = { "manifest.json": manifestBytes };
    for (let i = 0; i < 5; i++) files[`part${i}`] = new Uint8Array(300_000);
    assertCleanError(
      () => decodeBundle(zipSync(files), { maxTotalBytes: 1_000_000 }),
      /entries declare more than the total limit of 1000000 bytes \(reached at entry "part3"\)/,
    );
  });
  await t.step("a declared size near 4 GiB is refused without allocating it", () => {
    const zip = patchCentral(
      zipSync({ "manifest.json": manifestBytes, "x": new Uint8Array(10) }),
      "x",
      USIZE,
      0xfffffff0,
    );
    assertCleanError(
      () => decodeBundle(zip),
      /entry "x" declares 4294967280 bytes, more than the per-entry limit/,
    );
  });
  await t.step("a declared size that lies low is caught while inflating", () => {
    const zip = patchCentral(
      zipSync({ "manifest.json": manifestBytes, "x": new Uint8Array(1 << 20) }),
      "x",
      USIZE,
      100,
    );
    assertCleanError(
      () => decodeBundle(zip),
      /entry "x" inflates to more than its declared 100 bytes/,
    );
  });
  await t.step("a declared size that lies high is caught", () => {
    const zip = patchCentral(
      zipSync({ "manifest.json": manifestBytes, "x": new Uint8Array(100) }),
      "x",
      USIZE,
      200,
    );
    assertCleanError(
      () => decodeBundle(zip),
      /entry "x" inflates to 100 bytes, not the declared 200/,
    );
  });
  await t.step("the file-size guard in readBundle", async () => {
    await withTempDir(async (dir) => {
      await Deno.writeFile(`${dir}/big.zip`, new Uint8Array(0));
      await Deno.truncate(`${dir}/big.zip`, (64 << 20) + 1); // sparse: cheap to create
      await assertCleanRejection(
        () => readBundle(`${dir}/big.zip`, { maxTotalBytes: 0 }),
        /big\.zip is 67108865 bytes, more than the 67108864-byte limit/,
      );
    });
  });
});

Deno.test("unsafe entry names are rejected", () => {
  const unsafe: [string, RegExp][] = [
    ["../evil.txt", /unsafe path "\.\.\/evil\.txt": '\.\.' segment \(path traversal\)/],
    ["a/../../evil.txt", /path traversal/],
    ["/etc/passwd", /unsafe path "\/etc\/passwd": absolute path/],
    ["C:/Windows/x", /drive letter/],
    ["a\\..\\b", /backslash/],
    ["a//b", /empty or '\.' segment/],
    ["./a", /empty or '\.' segment/],
    ["bad\u0001name", /control character/],
    ["../", /path traversal/],
  ];
  for (const [name, pattern] of unsafe) {
    const zip = zipSync({
      "manifest.json": manifestBytes,
      [name]: new Uint8Array(name.endsWith("/") ? 0 : 1),
    });
    const e = assertCleanError(() => decodeBundle(zip), pattern);
    assert.match(e.message, /^bundle: /);
    assertCleanError(() => encodeBundle({ files: { [name]: "x" }, manifest: {} }), pattern);
  }
});

Deno.test("structurally bad archives are rejected with clear errors", () => {
  const good = zipSync({
    "manifest.json": manifestBytes,
    "a.txt": text("aaaa"),
    "b.txt": text("bbbb"),
  });
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "not a zip",
      text("hello, this is not a zip archive at all"),
      /not a zip archive: no end-of-central-directory record/,
    ],
    ["empty", new Uint8Array(0), /not a zip archive/],
    ["truncated", good.subarray(0, good.length - 10), /not a zip archive/],
    [
      "central directory cut",
      good.subarray(good.length - 30),
      /central directory .* runs past its end record|missing or truncated/,
    ],
    ["no manifest", zipSync({ "a.txt": text("a") }), /no manifest\.json in the archive/],
    [
      "manifest with duplicate keys",
      zipSync({ "manifest.json": text('{"a":1,"a":2}') }),
      /manifest\.json: duplicate key "a" in object \/ at byte 7/,
    ],
    [
      "manifest not JSON",
      zipSync({ "manifest.json": text("{nope") }),
      /manifest\.json: expected a string key/,
    ],
    [
      "manifest is an array",
      zipSync({ "manifest.json": text("[1]") }),
      /manifest\.json must hold a JSON object/,
    ],
    ["CRC mismatch", patchCentral(good, "a.txt", CRC, 12345), /entry "a\.txt": CRC-32 mismatch/],
    ["encrypted", patchCentral(good, "a.txt", FLAGS, 1, 2), /entry "a\.txt" is encrypted/],
    [
      "unknown method",
      patchCentral(good, "a.txt", METHOD, 12, 2),
      /entry "a\.txt" uses compression method 12/,
    ],
    [
      "local header moved",
      patchCentral(good, "a.txt", 42, 5),
      /entry "a\.txt": no local header at byte 5/,
    ],
    [
      "local header of another entry",
      patchCentral(good, "b.txt", 42, centralRecords(good)[1].local),
      /entry "b\.txt": local header at byte \d+ names a different file/,
    ],
    [
      "entries overlap",
      patchCentral(
        good,
        "a.txt",
        20,
        centralRecords(good)[2].local - centralRecords(good)[1].local - 30,
      ),
      /entries "a\.txt" and "b\.txt" overlap/,
    ],
  ];
  for (const [label, zip, pattern] of cases) {
    const e = assertCleanError(() => decodeBundle(zip), pattern);
    assert.match(e.message, /^bundle: /, label);
  }
  // Two entries with one name: rename "b.txt" to "a.txt" in both headers.
  const dup = good.slice();
  const b = centralRecords(dup).find((r) => r.name === "b.txt")!;
  dup[b.at + 46] = 0x61;
  dup[b.local + 30] = 0x61;
  assertCleanError(() => decodeBundle(dup), /entry "a\.txt" appears twice/);
});

Deno.test("the writer rejects bad input", () => {
  assertCleanError(
    () => encodeBundle({ files: { "manifest.json": "{}" }, manifest: {} }),
    /"manifest\.json" is reserved/,
  );
  assertCleanError(
    () => encodeBundle({ files: {}, manifest: [] as unknown as Record<string, unknown> }),
    /manifest must be a plain object/,
  );
  assertCleanError(
    () => encodeBundle({ files: {}, manifest: { x: NaN } }),
    /manifest\.x is NaN, not JSON/,
  );
  assertCleanError(
    () => encodeBundle({ files: {}, manifest: { f: () => 1 } }),
    /manifest\.f is a function/,
  );
  assertCleanError(
    () => encodeBundle({ files: {}, manifest: { d: new Date(0) } }),
    /manifest\.d is a object/,
  );
});
