/**
 * A run directory's exclusive lock: one training process writes to a run
 * directory at a time. The lock is an OS file lock (flock) on `.wgrad.lock`,
 * so it is released by the OS when the process dies — a killed run never
 * leaves a stale lock behind.
 *
 * @module
 */

/** The lock file's name inside a run directory. */
export const RUN_LOCK_FILE = ".wgrad.lock";

/** A held run-directory lock. */
export interface RunLock {
  /** Releases the lock (idempotent). */
  release(): void;
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
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${RUN_LOCK_FILE}`;
  const file = await Deno.open(path, { read: true, write: true, create: true });
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } finally {
    if (!locked) file.close();
  }
  if (!locked) {
    throw new Error(
      `${command}: another wgrad run is writing to ${dir} (it holds ${path}); ` +
        `wait for it to finish or choose another --out`,
    );
  }
  await file.truncate();
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      file.unlockSync();
      file.close();
    },
  };
}
