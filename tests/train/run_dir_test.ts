// A run's output is written by one process at a time, a killed holder never blocks a later run,
// and a run directory's files that are not the run's are never deleted.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import fc from "fast-check";
import {
  lockOutputFile,
  lockRunDir,
  openRunDir,
  RUN_FILES,
  RUN_LOCK_FILE,
} from "../../train/run_dir.ts";

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);
const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

/** Starts a process that takes the lock and reports it, then waits to be killed. */
async function holder(kind: "dir" | "file", path: string): Promise<Deno.ChildProcess> {
  const module = new URL("../../train/run_dir.ts", import.meta.url).href;
  const take = kind === "dir" ? "lockRunDir" : "lockOutputFile";
  const code = `import { ${take} } from "${module}";
await ${take}(${JSON.stringify(path)}, "test");
console.log("locked");
setInterval(() => {}, 1000);`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  equal(new TextDecoder().decode(value).trim(), "locked");
  return child;
}

Deno.test("run directory locks", async (t) => {
  const root = await Deno.makeTempDir();

  await t.step("a second lock is refused until the first is released", async () => {
    const dir = `${root}/run`;
    const lock = await lockRunDir(dir, "finetune");
    ok(await exists(`${dir}/${RUN_LOCK_FILE}`));
    await rejects(lockRunDir(dir, "finetune"), /finetune: another wgrad run is writing to .*run/);
    lock.release();
    lock.release(); // idempotent
    equal(await exists(`${dir}/${RUN_LOCK_FILE}`), false, "the lock file is removed");
    (await lockRunDir(dir, "finetune")).release();
  });

  await t.step("a killed holder leaves no stale lock (dir and file)", async () => {
    for (const [kind, path] of [["dir", `${root}/killed`], ["file", `${root}/k.safetensors`]]) {
      const child = await holder(kind as "dir" | "file", path);
      const take = kind === "dir" ? lockRunDir : lockOutputFile;
      await rejects(take(path, "pretrain"), /another wgrad run is writing to/);
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel();
      (await take(path, "pretrain")).release(); // the OS dropped the dead process's lock
    }
  });

  await t.step("an output file's lock: folders refused, long names fit", async () => {
    await rejects(lockOutputFile(root, "pretrain"), /is a directory; give a file name/);
    await rejects(lockOutputFile(`${root}/new/`, "pretrain"), /names a directory/);
    await Deno.writeTextFile(`${root}/plain`, "x");
    await rejects(
      lockOutputFile(`${root}/plain/x.safetensors`, "pretrain"),
      /a folder above it is a file/,
    );
    const long = `${root}/${"é".repeat(127)}`; // 254 bytes: the lock's own name must be shortened
    const a = await lockOutputFile(long, "pretrain");
    await rejects(lockOutputFile(long, "pretrain"), /another wgrad run/);
    a.release();
    deepEqual((await names(root)).filter((n) => n.includes("é")), []);
  });

  await t.step("openRunDir: a new run needs a new or empty directory", async () => {
    const dir = `${root}/fresh`;
    const run = await openRunDir(dir, "finetune", {});
    equal(run.hasCheckpoint, false);
    await run.abandon();
    equal(await exists(dir), false, "a directory it created is removed when abandoned");
    await Deno.writeTextFile(`${root}/file`, "x");
    await rejects(openRunDir(`${root}/file`, "finetune", {}), /exists and is not a directory/);
    await rejects(openRunDir(`${root}/none`, "finetune", { resume: true }), /--resume: no .*none/);
    equal(await exists(`${root}/none`), false);
  });

  await t.step("openRunDir: an earlier run needs --resume or --force", async () => {
    const dir = `${root}/earlier`;
    await Deno.mkdir(`${dir}/adapter`, { recursive: true });
    for (const name of RUN_FILES.filter((n) => n !== "adapter")) {
      await Deno.writeTextFile(`${dir}/${name}`, "old");
    }
    await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
    await rejects(openRunDir(dir, "finetune", {}), /already holds a run; pass --resume/);
    const resumed = await openRunDir(dir, "finetune", { resume: true });
    equal(resumed.hasCheckpoint, true);
    await resumed.abandon();
    equal(await exists(dir), true, "an existing directory is never removed");
    const forced = await openRunDir(dir, "finetune", { force: true });
    forced.release();
    deepEqual(await names(dir), ["adapter", "notes.txt"], "stale run files gone, others kept");
  });

  await t.step("property: --force never deletes a file that is not the run's", async () => {
    const name = fc.stringMatching(/^[a-z0-9._-]{1,12}$/).filter((n) =>
      n !== "." && n !== ".." && !RUN_FILES.includes(n) && n !== RUN_LOCK_FILE
    );
    let i = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(name, { minLength: 1, maxLength: 5 }), async (foreign) => {
        const dir = `${root}/p${i++}`;
        await Deno.mkdir(dir);
        for (const n of foreign) await Deno.writeTextFile(`${dir}/${n}`, n);
        await Deno.writeTextFile(`${dir}/checkpoint.safetensors`, "old");
        await rejects(openRunDir(dir, "finetune", {}), /already holds a run/);
        await Deno.remove(`${dir}/checkpoint.safetensors`);
        await rejects(openRunDir(dir, "finetune", {}), /is not empty \(it holds "/);
        (await openRunDir(dir, "finetune", { force: true })).release();
        deepEqual(await names(dir), [...foreign].sort());
        for (const n of foreign) equal(await Deno.readTextFile(`${dir}/${n}`), n);
      }),
      { numRuns: 25 },
    );
  });

  await Deno.remove(root, { recursive: true });
});
