/**
 * Bounded reads of regular files. A path that names a device, a FIFO or a
 * socket (directly or through a symlink) is refused before it is opened —
 * opening a FIFO blocks until a writer appears, and `/dev/zero` never ends —
 * and no read goes past `maxBytes`, whatever the file claims.
 *
 * @module
 */

/** What a path is, in words, for errors. */
function kindOf(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/**
 * Throws unless `path` (links followed) is a regular file; returns its size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { regularFileSize } from "./read_file.ts";
 * await assert.rejects(regularFileSize("/dev/zero", "model"), /\/dev\/zero is a character device, not a regular file/);
 * ```
 */
export async function regularFileSize(path: string | URL, what: string): Promise<number> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    // Keep the OS error's class (Deno.errors.NotFound, PermissionDenied, ...) for callers.
    const Kind = (e instanceof Error ? e.constructor : Error) as ErrorConstructor;
    throw new Kind(`cannot read ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!info.isFile) throw new Error(`${what} ${path} is ${kindOf(info)}, not a regular file`);
  return info.size;
}

/**
 * Reads a whole regular file of at most `maxBytes` bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readFileBounded } from "./read_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hello");
 * assert.equal(new TextDecoder().decode(await readFileBounded(path, 100, "note")), "hello");
 * await assert.rejects(readFileBounded(path, 3, "note"), /is 5 bytes, more than the 3-byte limit/);
 * ```
 */
export async function readFileBounded(
  path: string | URL,
  maxBytes: number,
  what: string,
): Promise<Uint8Array> {
  const size = await regularFileSize(path, what);
  if (size > maxBytes) {
    throw new Error(`${what} ${path} is ${size} bytes, more than the ${maxBytes}-byte limit`);
  }
  const file = await Deno.open(path, { read: true });
  try {
    // Read one byte past the size seen: a file that grew since is refused, not read on and on.
    const out = new Uint8Array(size + 1);
    let filled = 0;
    while (filled < out.length) {
      const got = await file.read(out.subarray(filled));
      if (got === null) break;
      filled += got;
    }
    if (filled > size) throw new Error(`${what} ${path} grew while it was being read`);
    return out.subarray(0, filled);
  } finally {
    file.close();
  }
}

/** {@link readFileBounded} as UTF-8 text. */
export async function readTextBounded(
  path: string | URL,
  maxBytes: number,
  what: string,
): Promise<string> {
  return new TextDecoder().decode(await readFileBounded(path, maxBytes, what));
}
