/**
 * Run outputs that one process owns at a time. A run directory (finetune) or an
 * output file (pretrain) is guarded by an exclusive OS file lock (flock), which
 * the OS drops when the process dies — a killed run never leaves a stale lock.
 * The lock file is removed on release; a process that locked a lock file that
 * was removed meanwhile notices (the path no longer names its file) and retries.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { hiddenSibling } from "../io/atomic.ts";

/** The lock file's name inside a run directory. */
export const RUN_LOCK_FILE = ".wgrad.lock";

/** What a finetune run writes into its directory (besides {@link RUN_LOCK_FILE}). */
export const RUN_FILES: readonly string[] = [
  "checkpoint.safetensors",
  "metrics.jsonl",
  "loss.svg",
  "summary.json",
  "adapter",
];

/** A held lock. */
export interface RunLock {
  /** Removes the lock file and releases the lock (idempotent). */
  release(): void;
}

const sameFile = (a: Deno.FileInfo, b: Deno.FileInfo) => a.dev === b.dev && a.ino === b.ino;

/** Takes the exclusive lock of `lockPath`, or throws naming `target` when another run holds it. */
async function lockFile(lockPath: string, target: string, command: string): Promise<RunLock> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const file = await Deno.open(lockPath, { read: true, write: true, create: true });
    let ok = false;
    try {
      if (!(await file.tryLock(true))) {
        throw new Error(
          `${command}: another wgrad run is writing to ${target} (it holds ${lockPath}); ` +
            `wait for it to finish or choose another --out`,
        );
      }
      // The holder before us may have removed the file between our open and our lock.
      const now = await Deno.stat(lockPath).catch(() => undefined);
      if (now === undefined || !sameFile(now, await file.stat())) continue;
      await file.truncate();
      await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
      ok = true;
    } finally {
      if (!ok) file.close();
    }
    let held = true;
    return {
      release() {
        if (!held) return;
        held = false;
        // Removed while still locked, so no other process can lock this file afterwards.
        try {
          Deno.removeSync(lockPath);
        } catch { /* already gone: nothing to clean */ }
        file.unlockSync();
        file.close();
      },
    };
  }
  throw new Error(`${command}: cannot lock ${lockPath}: it keeps being replaced`);
}

async function statOrUndefined(
  path: string,
  command = "wgrad",
): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof Deno.errors.NotADirectory) {
      throw new Error(`${command}: --out ${path}: a folder above it is a file, not a folder`);
    }
    throw new Error(`${command}: cannot read --out ${path}: ${(e as Error).message}`);
  }
}

/**
 * Creates `dir` if needed and takes its exclusive lock, or throws naming the directory when
 * another process (or another run in this process) holds it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockRunDir } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = await lockRunDir(dir, "finetune");
 * await assert.rejects(lockRunDir(dir, "finetune"), /another wgrad run is writing to/);
 * lock.release();
 * (await lockRunDir(dir, "finetune")).release();
 * ```
 */
export async function lockRunDir(dir: string, command: string): Promise<RunLock> {
  const info = await statOrUndefined(dir, command);
  if (info !== undefined && !info.isDirectory) {
    throw new Error(`${command}: --out ${dir} exists and is not a directory`);
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new Error(
      `${command}: cannot create the --out directory ${dir}: ${(e as Error).message}`,
    );
  }
  return await lockFile(`${dir}/${RUN_LOCK_FILE}`, dir, command);
}

/**
 * Takes the exclusive lock of an output file (a hidden `.NAME.lock` beside it), creating its
 * folder if needed; throws when another run is writing the same file, or when `path` is a folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockOutputFile } from "./run_dir.ts";
 * const out = `${await Deno.makeTempDir()}/base.safetensors`;
 * const lock = await lockOutputFile(out, "pretrain");
 * await assert.rejects(lockOutputFile(out, "pretrain"), /another wgrad run is writing to/);
 * lock.release();
 * ```
 */
export async function lockOutputFile(path: string, command: string): Promise<RunLock> {
  const info = await statOrUndefined(path, command);
  if (info?.isDirectory) {
    throw new Error(`${command}: --out ${path} is a directory; give a file name`);
  }
  if (basename(path) === "" || path.endsWith("/")) {
    throw new Error(`${command}: --out ${path} names a directory; give a file name`);
  }
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
  } catch (e) {
    throw new Error(
      `${command}: cannot create the folder of --out ${path}: ${(e as Error).message}`,
    );
  }
  return await lockFile(hiddenSibling(path, ".wgrad.lock"), path, command);
}

/** A locked run directory, as {@link openRunDir} found it. */
export interface RunDir extends RunLock {
  /** Whether it holds a checkpoint to resume. */
  readonly hasCheckpoint: boolean;
  /**
   * Releases the lock after a failure before anything was written: a directory this call
   * created is removed again (when it is still empty).
   */
  abandon(): Promise<void>;
}

/**
 * Locks run directory `dir` and checks it suits the run: `resume` needs its checkpoint; a new run
 * needs a directory that is new or empty, unless `force` — then the files of an earlier run are
 * removed (`adapter/` is replaced when the run ends) and every other file is kept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRunDir } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
 * await assert.rejects(openRunDir(dir, "finetune", {}), /notes\.txt.*--force/);
 * const run = await openRunDir(dir, "finetune", { force: true });
 * assert.equal(run.hasCheckpoint, false);
 * run.release();
 * assert.equal(await Deno.readTextFile(`${dir}/notes.txt`), "mine");
 * ```
 */
export async function openRunDir(
  dir: string,
  command: string,
  options: { readonly resume?: boolean; readonly force?: boolean },
): Promise<RunDir> {
  const created = (await statOrUndefined(dir, command)) === undefined;
  const lock = await lockRunDir(dir, command);
  const abandon = async () => {
    lock.release();
    if (created) await Deno.remove(dir).catch(() => {}); // only succeeds while empty
  };
  try {
    const checkpoint = `${dir}/checkpoint.safetensors`;
    const hasCheckpoint = (await statOrUndefined(checkpoint)) !== undefined;
    if (options.resume && !hasCheckpoint) {
      throw new Error(`${command}: --resume: no ${checkpoint} to continue`);
    }
    if (!options.resume && !options.force) {
      if (hasCheckpoint) {
        throw new Error(
          `${command}: ${dir} already holds a run; pass --resume to continue it, --force to ` +
            `start it over, or choose another --out`,
        );
      }
      for await (const entry of Deno.readDir(dir)) {
        if (entry.name === RUN_LOCK_FILE) continue;
        throw new Error(
          `${command}: --out ${dir} is not empty (it holds "${entry.name}"); pass --force to ` +
            `write the run into it (files that are not the run's are kept) or choose another --out`,
        );
      }
    }
    if (!options.resume && options.force) {
      // An earlier run's files would otherwise mix with this one's (a stale checkpoint could be
      // resumed later); they are wgrad's own names, so nothing else is touched.
      for (const name of RUN_FILES.filter((n) => n !== "adapter")) {
        const path = `${dir}/${name}`;
        const info = await Deno.lstat(path).catch(() => undefined);
        if (info?.isFile) await Deno.remove(path);
      }
    }
    return { hasCheckpoint: options.resume === true, release: lock.release, abandon };
  } catch (e) {
    await abandon();
    throw e;
  }
}
