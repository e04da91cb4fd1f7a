/**
 * Bundles: one zip file (via fflate) holding a `manifest.json` and any other
 * files, such as safetensors weights and adapter configs. Writing is
 * deterministic and atomic; reading checks entry count, declared sizes,
 * names, CRCs and actual inflated sizes before trusting anything.
 *
 * @example Write and read a bundle
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { readBundle, writeBundle } from "./bundle.ts";
 * const path = await Deno.makeTempFile({ suffix: ".zip" });
 * await writeBundle(path, { files: { "notes.txt": "hi" }, manifest: { kind: "demo" } });
 * const bundle = await readBundle(path);
 * strictEqual(bundle.manifest.kind, "demo");
 * strictEqual(new TextDecoder().decode(bundle.files["notes.txt"]), "hi");
 * ```
 *
 * @module
 */

import { zipSync } from "npm:fflate@0.8.3";
import { writeFileAtomic } from "./atomic.ts";
import { readFileBounded, regularFileSize } from "./read_file.ts";
import { parseJsonStrict, toPlainJson } from "./_json_strict.ts";
import { checkRelativePath } from "./_paths.ts";
import { extractEntry, listZip, type ZipEntry, type ZipView } from "./_zip.ts";
import { listZipFile, readEntryData } from "./_zip_file.ts";

const MANIFEST = "manifest.json";
const GIB = 1024 ** 3;
/** Local zip timestamp written on every entry, so bytes do not depend on the clock. */
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);

/**
 * What {@linkcode writeBundle} stores: files by relative name (`/` for
 * folders; strings are stored as UTF-8) and a JSON-serialisable manifest.
 *
 * @example A bundle description
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { type BundleInput, decodeBundle, encodeBundle } from "./bundle.ts";
 * const input: BundleInput = { files: { "a/b.bin": new Uint8Array(3), "notes.txt": "hi" }, manifest: { version: 1 } };
 * const bundle = decodeBundle(encodeBundle(input));
 * deepStrictEqual(bundle.files["a/b.bin"], new Uint8Array(3));
 * deepStrictEqual(bundle.files["notes.txt"], new TextEncoder().encode("hi")); // strings come back as UTF-8
 * deepStrictEqual(bundle.manifest, { version: 1 });
 * ```
 */
export interface BundleInput {
  /** File contents by relative path; must not include `manifest.json`. */
  files: Record<string, Uint8Array | string>;
  /** Stored as `manifest.json` with keys sorted. */
  manifest: Record<string, unknown>;
}

/**
 * A bundle read back: every file except the manifest, and the parsed manifest.
 *
 * @example Look up a file
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeBundle, encodeBundle, type Bundle } from "./bundle.ts";
 * const bundle: Bundle = decodeBundle(encodeBundle({ files: { x: "1" }, manifest: {} }));
 * strictEqual(bundle.files.x.length, 1);
 * ```
 */
export interface Bundle {
  /** File contents by relative path. */
  files: Record<string, Uint8Array>;
  /** The parsed `manifest.json` (duplicate keys are rejected). */
  manifest: Record<string, unknown>;
}

/**
 * Limits enforced while reading, all checked against the sizes the archive
 * declares before anything is inflated, then against the real output.
 *
 * @example Tighten the limits for untrusted uploads
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { decodeBundle, encodeBundle, type BundleLimits } from "./bundle.ts";
 * const limits: BundleLimits = { maxEntries: 10, maxTotalBytes: 1 << 20 };
 * decodeBundle(encodeBundle({ files: {}, manifest: {} }), limits);
 * const big = encodeBundle({ files: { "w.bin": new Uint8Array(2 << 20) }, manifest: {} });
 * throws(() => decodeBundle(big, limits), /more than the total limit of 1048576 bytes/); // 2 MiB inflated
 * ```
 */
export interface BundleLimits {
  /** Most entries (files, manifest included); default 1000. */
  maxEntries?: number;
  /** Most uncompressed bytes over all entries; default 1 GiB. */
  maxTotalBytes?: number;
  /** Most uncompressed bytes in one entry; default 1 GiB. */
  maxEntryBytes?: number;
}

/**
 * Options for {@linkcode encodeBundle} and {@linkcode writeBundle}.
 *
 * @example Store without compression
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { encodeBundle } from "./bundle.ts";
 * const zip = encodeBundle({ files: { "w.bin": new Uint8Array(8) }, manifest: {} }, { level: 0 });
 * ok(zip.length > 8);
 * ```
 */
export interface BundleWriteOptions {
  /** Deflate level 0 (store) to 9; default 6. */
  level?: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;
}

/** Recursively sort object keys; reject what JSON cannot represent faithfully. */
function canonical(value: unknown, path: string): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`bundle: manifest${path} is ${value}, not JSON`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => canonical(v, `${path}[${i}]`));
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      Object.defineProperty(out, key, {
        value: canonical((value as Record<string, unknown>)[key], `${path}.${key}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  throw new Error(`bundle: manifest${path} is a ${typeof value}, not JSON-serialisable`);
}

/**
 * Build the zip bytes of a bundle. Output depends only on the input: fixed
 * timestamps (1980-01-01), entries sorted by name (JavaScript object order
 * puts integer-like names such as "7" first), manifest keys sorted.
 *
 * @example Identical input gives identical bytes
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { encodeBundle } from "./bundle.ts";
 * const a = encodeBundle({ files: { "x.txt": "x" }, manifest: { n: 1 } });
 * const b = encodeBundle({ files: { "x.txt": "x" }, manifest: { n: 1 } });
 * deepStrictEqual(a, b);
 * ```
 */
export function encodeBundle(input: BundleInput, options: BundleWriteOptions = {}): Uint8Array {
  const { files, manifest } = input;
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw new Error("bundle: manifest must be a plain object");
  }
  const names = Object.keys(files).sort();
  const zippable: Record<string, Uint8Array> = {};
  for (const name of names) {
    checkRelativePath(name, "bundle");
    if (name === MANIFEST) throw new Error(`bundle: "${MANIFEST}" is reserved for the manifest`);
    // fflate builds a plain object of entries, where "__proto__" would vanish.
    if (name === "__proto__") throw new Error(`bundle: file name "__proto__" is not supported`);
    const data = files[name];
    zippable[name] = typeof data === "string" ? new TextEncoder().encode(data) : data;
  }
  const json = JSON.stringify(canonical(manifest, ""), null, 2) + "\n";
  zippable[MANIFEST] = new TextEncoder().encode(json);
  return zipSync(zippable, { level: options.level ?? 6, mtime: FIXED_MTIME });
}

/**
 * Encode a bundle (see {@linkcode encodeBundle}) and write it atomically.
 *
 * @example Save a bundle
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { readBundle, writeBundle } from "./bundle.ts";
 * const path = await Deno.makeTempFile({ suffix: ".zip" });
 * await writeBundle(path, { files: { "readme.txt": "weights inside" }, manifest: { format: 1 } });
 * const bundle = await readBundle(path);
 * strictEqual(new TextDecoder().decode(bundle.files["readme.txt"]), "weights inside");
 * deepStrictEqual(bundle.manifest, { format: 1 });
 * ```
 */
export async function writeBundle(
  path: string,
  input: BundleInput,
  options?: BundleWriteOptions,
): Promise<void> {
  await writeFileAtomic(path, encodeBundle(input, options));
}

function resolveLimits(limits: BundleLimits = {}) {
  return {
    maxEntries: limits.maxEntries ?? 1000,
    maxTotalBytes: limits.maxTotalBytes ?? GIB,
    maxEntryBytes: limits.maxEntryBytes ?? GIB,
  };
}

/**
 * Validate and unpack bundle bytes. Throws an Error, naming the entry, for:
 * too many entries, declared sizes over the limits, unsafe names (`..`,
 * absolute paths, backslashes), duplicates, encryption, unknown compression,
 * data that inflates past or short of its declared size, CRC mismatches and
 * a missing or invalid `manifest.json`.
 *
 * @example Decode with limits
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeBundle, encodeBundle } from "./bundle.ts";
 * const zip = encodeBundle({ files: { "a.txt": "a" }, manifest: { ok: true } });
 * deepStrictEqual(decodeBundle(zip, { maxEntries: 2 }).manifest, { ok: true });
 * ```
 */
function manifestEntryOf(entries: readonly ZipEntry[]): ZipEntry {
  const entry = entries.find((e) => e.name === MANIFEST);
  if (!entry) throw new Error(`bundle: no ${MANIFEST} in the archive`);
  return entry;
}

function parseManifest(bytes: Uint8Array | ZipView, entry: ZipEntry): Record<string, unknown> {
  const manifest = toPlainJson(
    parseJsonStrict(extractEntry(bytes, entry), { label: `bundle: ${MANIFEST}` }),
  );
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw new Error(`bundle: ${MANIFEST} must hold a JSON object`);
  }
  return manifest as Record<string, unknown>;
}

export function decodeBundle(bytes: Uint8Array, limits?: BundleLimits): Bundle {
  const entries = listZip(bytes, resolveLimits(limits));
  const manifestEntry = manifestEntryOf(entries);
  const manifest = parseManifest(bytes, manifestEntry);
  const files: Record<string, Uint8Array> = {};
  for (const entry of entries) {
    if (entry === manifestEntry) continue;
    Object.defineProperty(files, entry.name, {
      value: extractEntry(bytes, entry),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { files, manifest };
}

/**
 * What {@linkcode listBundle} reports: the manifest and each other entry's
 * name and declared size, in name order.
 *
 * @example A listing
 * ```ts
 * import type { BundleListing } from "./bundle.ts";
 * const listing: BundleListing = { manifest: {}, entries: [{ name: "w.bin", bytes: 8 }] };
 * ```
 */
export interface BundleListing {
  /** The parsed `manifest.json`. */
  manifest: Record<string, unknown>;
  /** Every entry except the manifest, by name, with its uncompressed size. */
  entries: { name: string; bytes: number }[];
}

/**
 * List a bundle file without reading its entries' data: only the central
 * directory (found from the end of the file), the local headers and the
 * manifest are read, each read bounded, so listing a large bundle costs
 * about the size of its directory. The directory and the manifest are
 * checked as {@linkcode decodeBundle} checks them; other entries' data is not
 * read, so their CRCs are not checked. Only regular files are read.
 *
 * @example List a bundle
 * ```ts
 * import assert from "node:assert/strict";
 * import { listBundle, writeBundle } from "./bundle.ts";
 * const path = await Deno.makeTempFile({ suffix: ".zip" });
 * await writeBundle(path, { files: { "w.bin": new Uint8Array(8) }, manifest: { kind: "demo" } });
 * const listing = await listBundle(path);
 * assert.deepEqual(listing, { manifest: { kind: "demo" }, entries: [{ name: "w.bin", bytes: 8 }] });
 * ```
 */
export async function listBundle(
  path: string | URL,
  limits?: BundleLimits,
): Promise<BundleListing> {
  const size = await regularFileSize(path, "bundle");
  const file = await Deno.open(path, { read: true });
  try {
    const { entries, parts } = await listZipFile(file, size, resolveLimits(limits));
    const manifestEntry = manifestEntryOf(entries);
    await readEntryData(file, parts, manifestEntry);
    return {
      manifest: parseManifest(parts, manifestEntry),
      entries: entries.filter((e) => e !== manifestEntry)
        .map((e) => ({ name: e.name, bytes: e.size }))
        .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    };
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("bundle:")) {
      throw new Error(`${e.message} (in ${path})`, { cause: e });
    }
    throw e;
  } finally {
    file.close();
  }
}

/**
 * Read a bundle from a path (or take its bytes) and unpack it with
 * {@linkcode decodeBundle}. A file larger than the total limit plus 64 MiB of
 * zip overhead is refused before it is read.
 *
 * @example Read a bundle file
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { readBundle, writeBundle } from "./bundle.ts";
 * const path = await Deno.makeTempFile({ suffix: ".zip" });
 * await writeBundle(path, { files: {}, manifest: { name: "empty" } });
 * strictEqual((await readBundle(path)).manifest.name, "empty");
 * ```
 */
export async function readBundle(
  source: string | URL | Uint8Array,
  limits?: BundleLimits,
): Promise<Bundle> {
  if (source instanceof Uint8Array) return decodeBundle(source, limits);
  const maxFile = resolveLimits(limits).maxTotalBytes + 64 * 1024 ** 2;
  const bytes = await readFileBounded(source, maxFile, "bundle:").catch((e: Error) => {
    throw new Error(e.message.startsWith("bundle:") ? e.message : `bundle: ${e.message}`);
  });
  try {
    return decodeBundle(bytes, limits);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("bundle:")) {
      throw new Error(`${e.message} (in ${source})`, { cause: e });
    }
    throw e;
  }
}
