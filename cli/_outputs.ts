/**
 * Checks on a command's output path before anything is computed: an output
 * never replaces one of the command's inputs (whatever path spells it), and
 * an existing output is replaced only with `--force`.
 */
import { basename, dirname, join, resolve } from "node:path";
import { RUN_FILES } from "../train/run_dir.ts";
import { UsageError } from "./_args.ts";

/** The path with every symlink resolved; for a path that does not exist yet, its parent's. */
async function canonicalPath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    const parent = dirname(resolve(path));
    const real = await Deno.realPath(parent).catch(() => parent);
    return join(real, basename(path));
  }
}

/** Device and inode of an existing path, so hard links count as the same file. */
async function identity(path: string): Promise<string | undefined> {
  const stat = await Deno.stat(path).catch(() => null);
  return stat?.ino != null ? `${stat.dev}:${stat.ino}` : undefined;
}

function contains(dir: string, path: string): boolean {
  return path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

// Most file systems limit one name to 255 bytes; a longer one would only fail after the work.
const MAX_NAME_BYTES = 255;

/** Throws a UsageError when the last name of `out` is too long for a file system. */
export function checkNameLength(command: string, out: string): void {
  const bytes = new TextEncoder().encode(basename(out)).length;
  if (bytes > MAX_NAME_BYTES) {
    throw new UsageError(
      `${command}: the name of --out ${out} is ${bytes} bytes long; at most ${MAX_NAME_BYTES} fit`,
    );
  }
}

/**
 * Throws a UsageError when `out` is, contains or lies inside one of `inputs` (flag name → path),
 * when it exists and `force` is not set, or when it is of the other `kind` (a directory where a
 * file is written, or the reverse: that is never replaced, `force` or not).
 */
export async function checkOutput(
  command: string,
  out: string,
  inputs: Readonly<Record<string, string | undefined>>,
  force: boolean,
  kind: "file" | "dir" = "file",
): Promise<void> {
  checkNameLength(command, out);
  const target = await canonicalPath(out);
  const targetId = await identity(out);
  for (const [flag, input] of Object.entries(inputs)) {
    if (input === undefined) continue;
    const source = await canonicalPath(input);
    const same = targetId !== undefined && targetId === await identity(input);
    if (same || contains(source, target) || contains(target, source)) {
      throw new UsageError(
        `${command}: --out ${out} would overwrite the ${flag} input ${input}; write to another path`,
      );
    }
  }
  const existing = await Deno.stat(out).catch(() => undefined);
  if (existing !== undefined && existing.isDirectory !== (kind === "dir")) {
    throw new UsageError(
      kind === "file"
        ? `${command}: --out ${out} is a directory; give a file name`
        : `${command}: --out ${out} is a file; give a directory name`,
    );
  }
  if (!force && await Deno.lstat(out).then(() => true, () => false)) {
    throw new UsageError(
      `${command}: --out ${out} already exists; pass --force to replace it`,
    );
  }
}

/**
 * Throws a UsageError when run directory `out` is one of `inputs` (flag name → path) or would
 * write over one: an input that is, or lies inside, a file or folder the run writes.
 */
export async function checkRunInputs(
  out: string,
  inputs: Readonly<Record<string, string | undefined>>,
): Promise<void> {
  const dir = await canonicalPath(out);
  for (const [flag, input] of Object.entries(inputs)) {
    if (input === undefined) continue;
    const source = await canonicalPath(input);
    const outputs = RUN_FILES.map((name) => join(dir, name));
    const sourceId = await identity(input);
    const ids = await Promise.all([out, ...outputs].map(identity));
    const same = sourceId !== undefined && ids.includes(sourceId); // hard links too
    if (same || contains(source, dir) || outputs.some((path) => contains(path, source))) {
      throw new UsageError(
        `finetune: --out ${out} would overwrite the ${flag} input ${input}; write to another path`,
      );
    }
  }
}
