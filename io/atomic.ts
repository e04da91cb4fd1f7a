/**
 * Atomic file and directory writes: data goes to a temporary sibling, is
 * flushed to disk, then renamed over the target, so readers and crashes see
 * either the old contents or the complete new ones.
 *
 * @example Replace a file atomically
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { writeFileAtomic } from "./atomic.ts";
 * const path = await Deno.makeTempFile();
 * await writeFileAtomic(path, "hello\n");
 * strictEqual(await Deno.readTextFile(path), "hello\n");
 * ```
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { checkRelativePath } from "./_paths.ts";

// Most file systems limit one name to 255 bytes.
const MAX_NAME_BYTES = 255;

/** The longest prefix of `text` whose UTF-8 encoding fits in `bytes` (never splitting a character). */
function utf8Prefix(text: string, bytes: number): string {
  const encoder = new TextEncoder();
  let out = "", used = 0;
  for (const ch of text) {
    const size = encoder.encode(ch).length;
    if (used + size > bytes) break;
    out += ch;
    used += size;
  }
  return out;
}

/**
 * A hidden name beside `path`: `.` + `path`'s name + `suffix`, with the name shortened (never
 * splitting a character) so the whole stays within the 255 bytes most file systems allow.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hiddenSibling } from "./atomic.ts";
 * assert.equal(hiddenSibling("runs/base.safetensors", ".lock"), "runs/.base.safetensors.lock");
 * const long = hiddenSibling(`runs/${"é".repeat(127)}`, ".lock");
 * assert.ok(new TextEncoder().encode(long.slice("runs/".length)).length <= 255);
 * ```
 */
export function hiddenSibling(path: string, suffix: string): string {
  const room = MAX_NAME_BYTES - 1 - new TextEncoder().encode(suffix).length; // 1 for the "."
  return join(dirname(path), `.${utf8Prefix(basename(path), room)}${suffix}`);
}

/** A hidden temporary name beside `path`, shortened so it fits wherever `path`'s own name fits. */
function tempSibling(path: string, kind: string): string {
  return hiddenSibling(path, `.${crypto.randomUUID().slice(0, 8)}.${kind}`);
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}

async function writeAndSync(path: string, bytes: Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
}

/** Flush a directory entry (the rename) to disk; not all platforms allow it. */
async function syncDir(dir: string): Promise<void> {
  let handle: Deno.FsFile | undefined;
  try {
    handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch {
    // Directories cannot be opened or fsynced on some systems (Windows).
  } finally {
    handle?.close();
  }
}

/**
 * Write `data` to `path` atomically: a temporary file in the same directory
 * is written, fsynced and renamed over `path`. On failure the temporary file
 * is removed and `path` is left untouched.
 *
 * @example Write bytes
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { writeFileAtomic } from "./atomic.ts";
 * const path = await Deno.makeTempFile();
 * await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
 * deepStrictEqual(Array.from(await Deno.readFile(path)), [1, 2, 3]);
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temp = tempSibling(path, "tmp");
  try {
    await writeAndSync(temp, toBytes(data));
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
  await syncDir(dirname(path));
}

/** Options of {@link writeDirAtomic}. */
export interface WriteDirOptions {
  /**
   * Top-level names an earlier write of the same kind may have left (besides the names in
   * `files`): an existing directory holding only these is replaced wholesale.
   */
  readonly owned?: readonly string[];
  /**
   * An existing directory holding anything else is refused, unless `keepOthers` is set: then
   * `files` are written into it one by one (each atomically) and every other entry is kept.
   */
  readonly keepOthers?: boolean;
}

/** The first top-level entry of `dir` that is neither in `files` nor `owned`. */
async function foreignEntry(
  dir: string,
  files: Record<string, unknown>,
  owned: readonly string[],
): Promise<string | undefined> {
  const ours = new Set([...Object.keys(files).map((name) => name.split("/")[0]), ...owned]);
  for await (const entry of Deno.readDir(dir)) {
    if (!ours.has(entry.name)) return entry.name;
  }
  return undefined;
}

/**
 * Create or replace directory `dir` holding exactly `files` (relative names,
 * `/` for subfolders). Files are written into a temporary sibling directory
 * and fsynced; the directory is then renamed into place. Replacing an
 * existing directory moves the old one aside first, so there is a brief
 * moment where `dir` is absent, but never one where it is partly written.
 * A directory holding anything this write does not own is never deleted:
 * it is refused, or with `keepOthers` written into file by file.
 *
 * @example Write an adapter directory
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeDirAtomic } from "./atomic.ts";
 * const dir = `${await Deno.makeTempDir()}/adapter`;
 * const files = { "adapter_config.json": "{}", "weights/a.bin": new Uint8Array(4) };
 * await writeDirAtomic(dir, files);
 * assert.equal(await Deno.readTextFile(`${dir}/adapter_config.json`), "{}");
 * await writeDirAtomic(dir, files); // its own earlier output: replaced
 * await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
 * await assert.rejects(writeDirAtomic(dir, files), /notes\.txt/); // never deleted
 * ```
 */
export async function writeDirAtomic(
  dir: string,
  files: Record<string, Uint8Array | string>,
  options: WriteDirOptions = {},
): Promise<void> {
  const existing = await Deno.lstat(dir).catch(() => null);
  if (existing && !existing.isDirectory) {
    throw new Error(`writeDirAtomic: ${dir} exists and is not a directory`);
  }
  for (const name of Object.keys(files)) checkRelativePath(name, `writeDirAtomic(${dir})`);
  if (existing) {
    const foreign = await foreignEntry(dir, files, options.owned ?? []);
    if (foreign !== undefined) {
      if (!options.keepOthers) {
        throw new Error(
          `${dir} already exists and holds "${foreign}", which this write did not create; ` +
            `choose another output or pass --force to write into it (other files are kept)`,
        );
      }
      for (const [name, data] of Object.entries(files)) {
        const target = join(dir, name);
        await Deno.mkdir(dirname(target), { recursive: true });
        await writeFileAtomic(target, data);
      }
      return;
    }
  }
  const temp = tempSibling(dir, "tmp");
  await Deno.mkdir(temp);
  try {
    for (const [name, data] of Object.entries(files)) {
      const target = join(temp, name);
      await Deno.mkdir(dirname(target), { recursive: true });
      await writeAndSync(target, toBytes(data));
    }
    await syncDir(temp);
    if (!existing) {
      await Deno.rename(temp, dir);
    } else {
      const old = tempSibling(dir, "old");
      await Deno.rename(dir, old);
      try {
        await Deno.rename(temp, dir);
      } catch (e) {
        await Deno.rename(old, dir);
        throw e;
      }
      await Deno.remove(old, { recursive: true });
    }
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
  await syncDir(dirname(dir));
}
