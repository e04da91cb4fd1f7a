// listBundle: a bundle is listed from its central directory, read from the
// end of the file with bounded reads; entry data is never read, and only
// regular files are opened.

import assert from "node:assert/strict";
import fc from "fast-check";
import { zipSync } from "fflate";
import {
  decodeBundle,
  encodeBundle,
  listBundle,
  readBundle,
  writeBundle,
} from "../../io/bundle.ts";
import { assertCleanRejection, withTempDir } from "./_helpers.ts";
import { writeStoredZip } from "./_zip_fixtures.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("listBundle lists what readBundle reads, for any bundle", async () => {
  await withTempDir(async (dir) => {
    const name = fc.stringMatching(/^[a-z0-9_]{1,8}(\/[a-z0-9_]{1,8}){0,2}(\.[a-z]{1,4})?$/)
      .filter((n) => n !== "manifest.json");
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(name, fc.uint8Array({ maxLength: 300 }), {
          maxKeys: 6,
          noNullPrototype: true,
        }),
        fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { noNullPrototype: true }),
        fc.constantFrom(0 as const, 6 as const),
        async (files, manifest, level) => {
          // A file that is also a folder of another ("a" and "a/b") is a valid zip but not a tree.
          const path = `${dir}/b.zip`;
          await Deno.writeFile(path, encodeBundle({ files, manifest }, { level }));
          const read = await readBundle(path);
          const listed = await listBundle(path);
          assert.deepEqual(listed.manifest, read.manifest);
          assert.deepEqual(
            listed.entries,
            Object.entries(read.files).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
              .map(([n, bytes]) => ({ name: n, bytes: bytes.length })),
          );
        },
      ),
      { numRuns: 40 },
    );
  });
});

Deno.test("listBundle reads the directory only, however large the entries", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/big.zip`;
    const big = 900_000_000;
    await writeStoredZip(path, [
      { name: "big.bin", hole: big },
      { name: "manifest.json", data: text('{"kind":"sparse"}') },
    ]);
    assert.ok((await Deno.stat(path)).size > big);
    const rss = Deno.memoryUsage().rss;
    const started = performance.now();
    const listed = await listBundle(path);
    assert.deepEqual(listed, {
      manifest: { kind: "sparse" },
      entries: [{ name: "big.bin", bytes: big }],
    });
    assert.ok(Deno.memoryUsage().rss - rss < 64 * 1024 ** 2, "the entry's data was not read");
    assert.ok(performance.now() - started < 5000, "listed without reading 900 MB");
  });
});

Deno.test("listBundle skips entry data but checks the directory and the manifest", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/b.zip`;
    // A corrupt entry: readBundle checks its CRC, a listing does not read it.
    await writeStoredZip(path, [
      { name: "a.txt", data: text("aaaa") },
      { name: "manifest.json", data: text("{}") },
    ]);
    const bytes = await Deno.readFile(path);
    bytes[30 + "a.txt".length] ^= 0xff;
    await Deno.writeFile(path, bytes);
    await assertCleanRejection(() => readBundle(path), /entry "a\.txt": CRC-32 mismatch/);
    assert.deepEqual((await listBundle(path)).entries, [{ name: "a.txt", bytes: 4 }]);

    const cases: [string, Uint8Array, RegExp][] = [
      ["not a zip", text("not a zip at all"), /not a zip archive: no end-of-central-directory/],
      ["empty", new Uint8Array(0), /not a zip archive/],
      ["no manifest", zipSync({ "a.txt": text("a") }), /no manifest\.json in the archive/],
      [
        "manifest not an object",
        zipSync({ "manifest.json": text("[1]") }),
        /must hold a JSON object/,
      ],
      ["unsafe name", zipSync({ "manifest.json": text("{}"), "../x": text("x") }), /unsafe path/],
      [
        "too many entries",
        encodeBundle({
          files: Object.fromEntries([...Array(1001)].map((_, i) => [`f${i}`, ""])),
          manifest: {},
        }),
        /1002 entries, more than the limit of 1000/,
      ],
    ];
    for (const [label, zip, pattern] of cases) {
      await Deno.writeFile(path, zip);
      const e = await assertCleanRejection(() => listBundle(path), pattern);
      assert.match(e.message, /^bundle: .*\(in .*b\.zip\)$/, label);
    }
    // A manifest whose CRC is wrong: the manifest is read, so it is checked.
    await writeBundle(path, { files: {}, manifest: { a: 1 } });
    const zip = await Deno.readFile(path);
    const view = new DataView(zip.buffer);
    const cd = view.getUint32(zip.length - 22 + 16, true);
    view.setUint32(cd + 16, 1, true);
    await Deno.writeFile(path, zip);
    await assertCleanRejection(() => listBundle(path), /manifest\.json": CRC-32 mismatch/);
  });
});

Deno.test("listBundle opens regular files only", async () => {
  await withTempDir(async (dir) => {
    await Deno.symlink("/dev/zero", `${dir}/zero.zip`);
    await assertCleanRejection(
      () => listBundle(`${dir}/zero.zip`),
      /zero\.zip is a character device, not a regular file/,
    );
    await Deno.mkdir(`${dir}/dir.zip`);
    await assertCleanRejection(() => listBundle(`${dir}/dir.zip`), /dir\.zip is a directory/);
  });
});

Deno.test("listBundle refuses what decodeBundle refuses, but for unread entry data", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/m.zip`;
    const zip = encodeBundle(
      { files: { "a.txt": "hello", "b/c.bin": new Uint8Array(40).fill(7) }, manifest: { k: [1] } },
      { level: 0 },
    );
    const error = async (fn: () => unknown) => {
      try {
        await fn();
        return undefined;
      } catch (e) {
        assert.equal((e as Error).constructor, Error, `a crash: ${(e as Error).stack}`);
        return (e as Error).message.replace(/ \(in [^)]*\)$/, "");
      }
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(zip.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        async (flips) => {
          const bad = zip.slice();
          for (const [at, x] of flips) bad[at] ^= x;
          await Deno.writeFile(path, bad);
          // Small limits: a flipped size field must be refused, not inflated into a gigabyte.
          const limits = { maxEntryBytes: 1 << 16, maxTotalBytes: 1 << 17 };
          const decoded = await error(() => decodeBundle(bad, limits));
          const listed = await error(() => listBundle(path, limits));
          if (listed !== undefined) assert.equal(listed, decoded);
          else if (decoded !== undefined) {
            assert.match(decoded, /^bundle: entry "(a\.txt|b\/c\.bin)": CRC-32 mismatch/);
          }
        },
      ),
      { numRuns: 300, seed: 20261204 },
    );
  });
});
