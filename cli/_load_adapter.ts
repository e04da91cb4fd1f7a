/** Reading an adapter for merge, export and generation: one check against the base, shared. */
import { decodeSafetensors } from "../io/safetensors.ts";
import { peftSource, readPeft } from "../adapters/peft_import.ts";
import { adapterFromCompact } from "../adapters/compact.ts";
import { resolveAdapter, type ResolvedAdapter, type ResolveOptions } from "../adapters/resolve.ts";
import { readFileBounded } from "../io/read_file.ts";
import { UsageError } from "./_args.ts";

// A compact adapter holds vectors only; a file past this size is not one.
const COMPACT_LIMIT = 1024 ** 3;

/** Whether `path` is a directory; a path that cannot be opened is a usage error naming it. */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    throw new UsageError(`cannot open ${path}: ${(e as Error).message}`);
  }
}

/**
 * Loads an adapter (PEFT directory or compact file) and checks it whole against a base model's
 * stored weight shapes (or, without `weights`, against itself) — the one check merge and export
 * share.
 */
export async function loadAdapter(
  path: string,
  weights?: Record<string, number[]>,
  options: ResolveOptions = {},
): Promise<ResolvedAdapter & { shapes: Record<string, readonly number[]> }> {
  if (await isDirectory(path)) {
    const files = await readPeft(path);
    return { ...resolveAdapter(peftSource(files, path), weights, options), shapes: files.shapes };
  }
  const bytes = await readFileBounded(path, COMPACT_LIMIT, "adapter");
  const resolved = adapterFromCompact(bytes, weights ?? {}, path, options);
  return { ...resolved, shapes: compactShapes(bytes) };
}

/** Tensor shapes of a compact file (already checked by `adapterFromCompact`). */
function compactShapes(bytes: Uint8Array): Record<string, readonly number[]> {
  const file = decodeSafetensors(bytes);
  return Object.fromEntries([...file.tensors].map(([name, t]) => [name, t.shape]));
}
