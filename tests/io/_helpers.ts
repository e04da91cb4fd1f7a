// Shared helpers for the io tests.

import assert from "node:assert/strict";

/** Run `fn`, require a deliberate rejection: a plain Error (not a TypeError or
 * RangeError from a crash) whose message matches `pattern`. */
export function assertCleanError(fn: () => unknown, pattern: RegExp): Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  return checkCaught(caught, pattern);
}

/** Async variant of {@linkcode assertCleanError}. */
export async function assertCleanRejection(
  fn: () => Promise<unknown>,
  pattern: RegExp,
): Promise<Error> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  return checkCaught(caught, pattern);
}

function checkCaught(caught: unknown, pattern: RegExp): Error {
  assert.ok(caught !== undefined, `expected an error matching ${pattern}, but none was thrown`);
  assert.ok(caught instanceof Error, `expected an Error, got ${String(caught)}`);
  assert.equal(
    caught.constructor,
    Error,
    `expected a plain Error, got ${caught.constructor.name} (a crash?): ${caught.message}`,
  );
  assert.match(caught.message, pattern);
  return caught;
}

/** Bytes of a safetensors file with a raw header text and optional forced length. */
export function rawFile(
  header: string | Uint8Array,
  data: Uint8Array | number = 0,
  headerLength?: bigint,
): Uint8Array {
  const h = typeof header === "string" ? new TextEncoder().encode(header) : header;
  const d = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** JSON text of one tensor entry. */
export function entry(dtype: string, shape: unknown, begin: unknown, end: unknown): string {
  return `{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},` +
    `"data_offsets":[${begin},${end}]}`;
}

/** A fresh temporary directory removed when `fn` finishes. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_io_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
