// A small, defensive reader for the zip central directory. fflate's
// `unzipSync` trusts the archive (it allocates the declared size, ignores
// CRCs, does not check names), so bundles are listed and checked here first:
// entry count, declared sizes, names, overlaps, all before any inflation.

import { inflateSync } from "npm:fflate@0.8.3";
import { checkRelativePath } from "./_paths.ts";

/** One file entry from the central directory, checked against the archive bounds. */
export interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
  dataStart: number;
}

/** Limits applied while listing; see `BundleLimits` in bundle.ts. */
export interface ZipLimits {
  maxEntries: number;
  maxEntryBytes: number;
  maxTotalBytes: number;
}

const EOCD_SIG = 0x06054b50, CENTRAL_SIG = 0x02014b50, LOCAL_SIG = 0x04034b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const nameDecoder = new TextDecoder("utf-8", { fatal: true });

function fail(message: string): never {
  throw new Error(`bundle: ${message}`);
}

/**
 * What the listing reads from: a whole archive in memory, or the parts of a
 * file that were read (`SparseZip`). Offsets are archive offsets.
 */
export interface ZipView {
  readonly byteLength: number;
  getUint16(at: number, littleEndian: true): number;
  getUint32(at: number, littleEndian: true): number;
  subarray(begin: number, end: number): Uint8Array;
}

function memoryView(bytes: Uint8Array): ZipView {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    byteLength: bytes.byteLength,
    getUint16: (at) => view.getUint16(at, true),
    getUint32: (at) => view.getUint32(at, true),
    subarray: (begin, end) => bytes.subarray(begin, end),
  };
}

/**
 * The parts of a zip file read so far, at their offsets. Reading a range
 * that was not read is a bug in the caller, reported as such, never a
 * silent zero.
 */
export class SparseZip implements ZipView {
  readonly byteLength: number;
  #parts: { at: number; bytes: Uint8Array }[] = [];

  constructor(size: number) {
    this.byteLength = size;
  }

  /** Records `bytes` as the content at offset `at`. */
  add(at: number, bytes: Uint8Array): void {
    this.#parts.push({ at, bytes });
  }

  subarray(begin: number, end: number): Uint8Array {
    for (const { at, bytes } of this.#parts) {
      if (begin >= at && end <= at + bytes.length) return bytes.subarray(begin - at, end - at);
    }
    throw new Error(`bundle: internal: bytes [${begin}, ${end}) were not read`);
  }

  getUint16(at: number): number {
    const b = this.subarray(at, at + 2);
    return b[0] | (b[1] << 8);
  }

  getUint32(at: number): number {
    const b = this.subarray(at, at + 4);
    return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  }
}

/** Where the end-of-central-directory record starts; `view` must hold the last 64 KiB + 22 bytes. */
export function findEndRecord(view: ZipView): number {
  const last = view.byteLength - 22;
  for (let at = last; at >= 0 && at >= last - 0xffff; at--) {
    if (
      view.getUint32(at, true) === EOCD_SIG &&
      at + 22 + view.getUint16(at + 20, true) === view.byteLength
    ) {
      return at;
    }
  }
  return fail(`not a zip archive: no end-of-central-directory record (${view.byteLength} bytes)`);
}

/** Where the central directory lies and how many entries it lists, checked against the limits. */
function readEndRecord(view: ZipView, limits: ZipLimits) {
  const eocd = findEndRecord(view);
  const count = view.getUint16(eocd + 10, true);
  const cdSize = view.getUint32(eocd + 12, true);
  const cdOffset = view.getUint32(eocd + 16, true);
  const zip64 = count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff ||
    (eocd >= 20 && view.getUint32(eocd - 20, true) === ZIP64_LOCATOR_SIG);
  if (zip64) fail("ZIP64 archives are not supported");
  if (view.getUint16(eocd + 4, true) !== 0 || view.getUint16(eocd + 8, true) !== count) {
    fail("multi-disk archives are not supported");
  }
  if (count > limits.maxEntries) {
    fail(`archive has ${count} entries, more than the limit of ${limits.maxEntries}`);
  }
  if (cdOffset + cdSize > eocd) {
    fail(
      `central directory [${cdOffset}, ${
        cdOffset + cdSize
      }) runs past its end record at byte ${eocd}`,
    );
  }
  return { count, cdOffset, cdEnd: cdOffset + cdSize };
}

/** One central directory record as read, before any check of what it declares. */
interface CentralRecord {
  readonly name: string;
  readonly nameAt: number;
  readonly nameLength: number;
  readonly flags: number;
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
  /** Where the next record starts. */
  readonly next: number;
}

/** Reads record `i` at `at`; it must lie within the central directory and name itself in UTF-8. */
function readCentralRecord(view: ZipView, at: number, i: number, cdEnd: number): CentralRecord {
  if (at + 46 > cdEnd || view.getUint32(at, true) !== CENTRAL_SIG) {
    fail(`central directory entry ${i} at byte ${at} is missing or truncated`);
  }
  const nameLength = view.getUint16(at + 28, true);
  const next = at + 46 + nameLength + view.getUint16(at + 30, true) +
    view.getUint16(at + 32, true);
  if (next > cdEnd) fail(`central directory entry ${i} at byte ${at} is truncated`);
  const nameAt = at + 46;
  let name: string;
  try {
    name = nameDecoder.decode(view.subarray(nameAt, nameAt + nameLength));
  } catch {
    return fail(`entry ${i} at byte ${at} has a name that is not valid UTF-8`);
  }
  return {
    name,
    nameAt,
    nameLength,
    flags: view.getUint16(at + 8, true),
    method: view.getUint16(at + 10, true),
    crc: view.getUint32(at + 16, true),
    compressedSize: view.getUint32(at + 20, true),
    size: view.getUint32(at + 24, true),
    localOffset: view.getUint32(at + 42, true),
    next,
  };
}

const entryLabel = (name: string) => `entry ${JSON.stringify(name)}`;

/**
 * Checks what a record declares (not encrypted, a supported method, sizes
 * within the limits) and returns the declared total so far, `total` included.
 */
function checkDeclared(record: CentralRecord, limits: ZipLimits, total: number): number {
  const { method, size, compressedSize } = record;
  const where = entryLabel(record.name);
  if (record.flags & 1) fail(`${where} is encrypted`);
  if (method !== 0 && method !== 8) {
    fail(
      `${where} uses compression method ${method}; only stored (0) and deflate (8) are supported`,
    );
  }
  if (size > limits.maxEntryBytes) {
    fail(
      `${where} declares ${size} bytes, more than the per-entry limit of ${limits.maxEntryBytes}`,
    );
  }
  total += size;
  if (total > limits.maxTotalBytes) {
    fail(
      `entries declare more than the total limit of ${limits.maxTotalBytes} bytes (reached at ${where})`,
    );
  }
  if (method === 0 && compressedSize !== size) {
    fail(`${where} is stored but its sizes differ (${compressedSize} vs ${size})`);
  }
  return total;
}

/** The entry of a record whose local header names the same file and whose data ends in bounds. */
function locateEntry(view: ZipView, record: CentralRecord, cdOffset: number): ZipEntry {
  const { name, nameAt, nameLength, method, crc, compressedSize, size, localOffset } = record;
  const where = entryLabel(name);
  if (localOffset + 30 > cdOffset || view.getUint32(localOffset, true) !== LOCAL_SIG) {
    fail(`${where}: no local header at byte ${localOffset}`);
  }
  const localName = localOffset + 30;
  const localNameLength = view.getUint16(localOffset + 26, true);
  const dataStart = localName + localNameLength + view.getUint16(localOffset + 28, true);
  const centralName = view.subarray(nameAt, nameAt + nameLength);
  const sameName = localNameLength === nameLength &&
    view.subarray(localName, localName + nameLength).every((b, k) => b === centralName[k]);
  if (!sameName) fail(`${where}: local header at byte ${localOffset} names a different file`);
  if (dataStart + compressedSize > cdOffset) {
    fail(`${where}: data runs past the central directory`);
  }
  return { name, method, crc, compressedSize, size, localOffset, dataStart };
}

function checkNoOverlap(entries: readonly ZipEntry[]) {
  const byOffset = [...entries].sort((a, b) => a.localOffset - b.localOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    if (prev.dataStart + prev.compressedSize > byOffset[i].localOffset) {
      fail(`entries ${JSON.stringify(prev.name)} and ${JSON.stringify(byOffset[i].name)} overlap`);
    }
  }
}

/**
 * List and validate the entries of a zip archive without inflating anything.
 * Directory entries (names ending in "/", empty) are skipped.
 */
export function listZip(bytes: Uint8Array | ZipView, limits: ZipLimits): ZipEntry[] {
  const view = bytes instanceof Uint8Array ? memoryView(bytes) : bytes;
  const { count, cdOffset, cdEnd } = readEndRecord(view, limits);
  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  let total = 0;
  let at = cdOffset;
  for (let i = 0; i < count; i++) {
    const record = readCentralRecord(view, at, i, cdEnd);
    at = record.next;
    if (record.name.endsWith("/") && record.size === 0) {
      checkRelativePath(record.name.slice(0, -1), "bundle");
      continue; // a directory marker carries no data
    }
    checkRelativePath(record.name, "bundle");
    if (seen.has(record.name)) fail(`${entryLabel(record.name)} appears twice`);
    seen.add(record.name);
    total = checkDeclared(record, limits, total);
    entries.push(locateEntry(view, record, cdOffset));
  }
  checkNoOverlap(entries);
  return entries;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3), as stored in zip headers. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Inflate one listed entry. The output buffer is bounded by the declared
 * size (plus one byte to detect streams that lie and inflate further), and
 * the result must match the declared size and CRC.
 */
export function extractEntry(bytes: Uint8Array | ZipView, entry: ZipEntry): Uint8Array {
  const where = `entry ${JSON.stringify(entry.name)}`;
  const raw = bytes.subarray(entry.dataStart, entry.dataStart + entry.compressedSize);
  let out: Uint8Array;
  if (entry.method === 0) {
    out = raw.slice();
  } else {
    if (raw.length === 0) fail(`${where}: empty deflate stream`);
    try {
      out = inflateSync(raw, { out: new Uint8Array(entry.size + 1) });
    } catch (e) {
      return fail(`${where}: corrupt deflate data (${e instanceof Error ? e.message : e})`);
    }
    if (out.length > entry.size) {
      fail(`${where} inflates to more than its declared ${entry.size} bytes`);
    }
    if (out.length < entry.size) {
      fail(`${where} inflates to ${out.length} bytes, not the declared ${entry.size}`);
    }
    out = out.subarray(0, entry.size); // hide the spare byte (the buffer keeps it)
  }
  if (crc32(out) !== entry.crc) fail(`${where}: CRC-32 mismatch, the data is corrupt`);
  return out;
}
