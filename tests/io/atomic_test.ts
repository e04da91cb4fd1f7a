// Atomic writes: the target holds the old or the complete new contents, and
// no temporary files are left behind, whether the write succeeds or fails.

import assert from "node:assert/strict";
import { writeDirAtomic, writeFileAtomic } from "../../io/atomic.ts";
import { assertCleanRejection, withTempDir } from "./_helpers.ts";

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("writeFileAtomic creates and replaces files without leftovers", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/out.bin`;
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));
    await writeFileAtomic(path, "replaced");
    assert.equal(await Deno.readTextFile(path), "replaced");
    await writeFileAtomic(path, new Uint8Array(0));
    assert.equal((await Deno.stat(path)).size, 0);
    assert.deepEqual(await listDir(dir), ["out.bin"]);
  });
});

Deno.test("writeFileAtomic writes large data completely", async () => {
  await withTempDir(async (dir) => {
    const data = new Uint8Array(5 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    await writeFileAtomic(`${dir}/big`, data);
    assert.deepEqual(await Deno.readFile(`${dir}/big`), data);
  });
});

Deno.test("writeFileAtomic failures leave the target and directory untouched", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      () => writeFileAtomic(`${dir}/missing/out.bin`, "x"),
      Deno.errors.NotFound,
    );
    // Renaming a file over a non-empty directory fails after the temp file is written.
    await Deno.mkdir(`${dir}/target`);
    await Deno.writeTextFile(`${dir}/target/keep.txt`, "keep");
    await assert.rejects(() => writeFileAtomic(`${dir}/target`, "x"));
    assert.equal(await Deno.readTextFile(`${dir}/target/keep.txt`), "keep");
    assert.deepEqual(await listDir(dir), ["target"]);
  });
});

Deno.test("writeDirAtomic creates a directory with nested files", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/adapter`;
    await writeDirAtomic(out, { "config.json": '{"r":4}', "weights/a.bin": new Uint8Array([9]) });
    assert.equal(await Deno.readTextFile(`${out}/config.json`), '{"r":4}');
    assert.deepEqual(await Deno.readFile(`${out}/weights/a.bin`), new Uint8Array([9]));
    assert.deepEqual(await listDir(dir), ["adapter"]);
  });
});

Deno.test("writeDirAtomic replaces an existing directory wholesale", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/model`;
    await writeDirAtomic(out, { "old.txt": "old", "sub/x": "x" });
    // What an earlier write of the same kind left is this write's to replace.
    await writeDirAtomic(out, { "new.txt": "new" }, { owned: ["old.txt", "sub"] });
    assert.deepEqual(await listDir(out), ["new.txt"]);
    assert.deepEqual(await listDir(dir), ["model"]);
    await writeDirAtomic(out, {}, { owned: ["new.txt"] });
    assert.deepEqual(await listDir(out), []);
  });
});

Deno.test("writeDirAtomic never deletes files it did not write", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/mine`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(`${out}/thesis.tex`, "years of work");
    await Deno.mkdir(`${out}/data`);
    await assertCleanRejection(
      () => writeDirAtomic(out, { "adapter_config.json": "{}" }),
      /mine already exists and holds "(thesis\.tex|data)", which this write did not create; .*--force/,
    );
    assert.deepEqual(await listDir(out), ["data", "thesis.tex"]);
    // keepOthers (the commands' --force) writes into it and keeps everything else.
    await writeDirAtomic(out, { "adapter_config.json": "{}", "w/a.bin": "1" }, {
      keepOthers: true,
    });
    assert.deepEqual(await listDir(out), ["adapter_config.json", "data", "thesis.tex", "w"]);
    assert.equal(await Deno.readTextFile(`${out}/thesis.tex`), "years of work");
    // A directory of only this write's own names is still replaced wholesale.
    await writeDirAtomic(`${dir}/own`, { "a.txt": "1", "b.txt": "2" });
    await writeDirAtomic(`${dir}/own`, { "a.txt": "3", "b.txt": "4" });
    assert.equal(await Deno.readTextFile(`${dir}/own/a.txt`), "3");
  });
});

Deno.test("writeDirAtomic rejects unsafe names and non-directory targets", async () => {
  await withTempDir(async (dir) => {
    for (
      const name of ["../escape.txt", "/abs.txt", "a/../../b", "a//b", "./a", "C:/x", "a\\b", ""]
    ) {
      await assertCleanRejection(
        () => writeDirAtomic(`${dir}/out`, { [name]: "x" }),
        /writeDirAtomic\(.*\): unsafe path/,
      );
    }
    await Deno.writeTextFile(`${dir}/file`, "f");
    await assertCleanRejection(
      () => writeDirAtomic(`${dir}/file`, {}),
      /exists and is not a directory/,
    );
    assert.deepEqual(await listDir(dir), ["file"]);
    assert.equal(await Deno.readTextFile(`${dir}/file`), "f");
  });
});

Deno.test("writeDirAtomic failing midway keeps the old directory", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/keep`;
    await writeDirAtomic(out, { "a.txt": "a" });
    // "x" as a file and "x/y" as a file inside it cannot both exist.
    await assert.rejects(() => writeDirAtomic(out, { "x": "1", "x/y": "2" }));
    assert.deepEqual(await listDir(out), ["a.txt"]);
    assert.deepEqual(await listDir(dir), ["keep"]);
  });
});

Deno.test("atomic writes work for names up to the 255-byte limit, ASCII or not", async () => {
  await withTempDir(async (dir) => {
    for (const name of ["a".repeat(255), "é".repeat(127), `${"漢".repeat(83)}.bin`]) {
      await writeFileAtomic(`${dir}/${name}`, "x");
      assert.equal(await Deno.readTextFile(`${dir}/${name}`), "x");
      const sibling = `${dir}/d${name.slice(1)}`; // a directory name of the same length
      await writeDirAtomic(sibling, { f: "y" });
      assert.equal(await Deno.readTextFile(`${sibling}/f`), "y");
    }
    assert.equal((await listDir(dir)).filter((n) => n.startsWith(".")).length, 0);
  });
});
