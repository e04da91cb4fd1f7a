// Zip archives written by hand for the bundle tests, including ones whose
// entries are holes in a sparse file (huge on paper, nothing on disk).

import { crc32 } from "../../io/_zip.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** Little-endian fields, each [value, bytes]. */
function fields(...values: [number, 2 | 4][]): Uint8Array {
  const out = new Uint8Array(values.reduce((n, [, b]) => n + b, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const [v, b] of values) {
    if (b === 2) view.setUint16(at, v, true);
    else view.setUint32(at, v, true);
    at += b;
  }
  return out;
}

/**
 * Writes a zip of stored entries by hand. An entry with `hole` bytes and no
 * data is a hole in a sparse file: it declares that size and a CRC of 0.
 */
export async function writeStoredZip(
  path: string,
  entries: { name: string; data?: Uint8Array; hole?: number }[],
): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const central: Uint8Array[] = [];
  let offset = 0;
  const write = async (bytes: Uint8Array) => {
    await file.seek(offset, Deno.SeekMode.Start);
    for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
    offset += bytes.length;
  };
  for (const { name, data, hole } of entries) {
    const nameBytes = text(name);
    const size = data?.length ?? hole!;
    const crc = data ? crc32(data) : 0;
    const local = offset;
    const common: [number, 2 | 4][] = [
      [20, 2],
      [0, 2],
      [0, 2],
      [0, 2],
      [0, 2],
      [crc, 4],
      [size, 4],
      [size, 4],
      [nameBytes.length, 2],
      [0, 2],
    ];
    await write(fields([0x04034b50, 4], ...common));
    await write(nameBytes);
    if (data) await write(data);
    else offset += size; // skipped, never written: the file system keeps a hole
    central.push(
      fields([0x02014b50, 4], [20, 2], ...common, [0, 2], [0, 2], [0, 2], [0, 4], [local, 4]),
      nameBytes,
    );
  }
  const cdOffset = offset;
  for (const part of central) await write(part);
  const cdSize = offset - cdOffset;
  const n = entries.length;
  await write(
    fields([0x06054b50, 4], [0, 2], [0, 2], [n, 2], [n, 2], [cdSize, 4], [cdOffset, 4], [0, 2]),
  );
  file.close();
}
