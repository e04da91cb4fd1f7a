// Reads what a zip listing needs from a file, without the entries' data:
// the end record and central directory from the end, then each entry's
// local header. Every read is bounded by the file size and by what the
// limits allow, so a listing costs about the size of the directory.

import { findEndRecord, listZip, SparseZip, type ZipEntry, type ZipLimits } from "./_zip.ts";

/** The end record, its 64 KiB comment and a ZIP64 locator before it. */
const TAIL_BYTES = 22 + 0xffff + 20;
/** A central directory entry is 46 bytes plus a name, an extra field and a comment (each < 64 KiB). */
const MAX_CENTRAL_ENTRY = 46 + 3 * 0xffff;

async function readAt(file: Deno.FsFile, at: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(at, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const got = await file.read(out.subarray(filled));
    if (got === null) {
      throw new Error(`bundle: the file ended at byte ${at + filled} (was it changed?)`);
    }
    filled += got;
  }
  return out;
}

/**
 * Lists and validates the entries of the zip file `file` of `size` bytes
 * (see `listZip`), reading only its directory and local headers. Returns
 * the entries and the parts read, which `readEntryData` extends.
 */
export async function listZipFile(
  file: Deno.FsFile,
  size: number,
  limits: ZipLimits,
): Promise<{ entries: ZipEntry[]; parts: SparseZip }> {
  const parts = new SparseZip(size);
  const tail = Math.min(size, TAIL_BYTES);
  parts.add(size - tail, await readAt(file, size - tail, tail));
  const eocd = findEndRecord(parts);
  const count = parts.getUint16(eocd + 10);
  const cdSize = parts.getUint32(eocd + 12);
  const cdOffset = parts.getUint32(eocd + 16);
  // Malformed directories are left to listZip to name; this only bounds what is read for it.
  if (cdOffset + cdSize <= eocd && count <= limits.maxEntries) {
    const cd = await readAt(file, cdOffset, Math.min(cdSize, count * MAX_CENTRAL_ENTRY));
    parts.add(cdOffset, cd);
    const view = new DataView(cd.buffer);
    let at = 0;
    for (let i = 0; i < count && at + 46 <= cd.length; i++) {
      const local = view.getUint32(at + 42, true);
      at += 46 + view.getUint16(at + 28, true) + view.getUint16(at + 30, true) +
        view.getUint16(at + 32, true);
      if (local + 30 > cdOffset) continue;
      const header = await readAt(file, local, 30);
      const names = new DataView(header.buffer);
      // Up to the file's end, not the directory's start: a bad header is then judged on the same
      // bytes as when the whole archive is in memory.
      const rest = Math.min(
        names.getUint16(26, true) + names.getUint16(28, true),
        size - local - 30,
      );
      parts.add(local, header);
      parts.add(local + 30, await readAt(file, local + 30, rest));
    }
  }
  return { entries: listZip(parts, limits), parts };
}

/** The compressed bytes of one listed entry, read from the file, at the entry's own offset. */
export async function readEntryData(
  file: Deno.FsFile,
  parts: SparseZip,
  entry: ZipEntry,
): Promise<void> {
  parts.add(entry.dataStart, await readAt(file, entry.dataStart, entry.compressedSize));
}
