// inspect reads only regular files, only what it needs, and within bounds; --json prints one
// JSON document on stdout and nothing else.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { runCli } from "./_capture.ts";
import { encodeSafetensors } from "../../io/safetensors.ts";
import { writeStoredZip } from "../io/_zip_fixtures.ts";

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("inspect refuses devices, FIFOs and links to them, at once", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.symlink("/dev/zero", `${dir}/zero.zip`);
  await Deno.symlink("/dev/zero", `${dir}/zero.safetensors`);
  const fifo = `${dir}/pipe.zip`;
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  ok(made.success, "mkfifo");
  for (
    const [path, expected] of [
      [`${dir}/zero.zip`, /zero\.zip is a character device, not a regular file/],
      [`${dir}/zero.safetensors`, /zero\.safetensors is a character device, not a regular file/],
      [fifo, /pipe\.zip is a FIFO \(named pipe\), not a regular file/],
    ] as const
  ) {
    const run = await withTimeout(runCli(["inspect", path]), 5000, `inspect ${path}`);
    equal(run.code, 1, path);
    equal(run.err.length, 1);
    match(run.err[0], expected);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("inspect of a large safetensors file reads its header only", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/big.safetensors`;
  // A 4 GiB tensor whose data is a hole in a sparse file: reading it would take gigabytes.
  const n = 2 ** 30;
  const header = new TextEncoder().encode(
    JSON.stringify({
      __metadata__: { format: "pt" },
      w: { dtype: "F32", shape: [2 ** 15, 2 ** 15], data_offsets: [0, 4 * n] },
    }),
  );
  const prefix = new Uint8Array(8 + header.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);
  prefix.set(header, 8);
  const file = await Deno.open(path, { write: true, create: true });
  await file.write(prefix);
  await file.truncate(prefix.length + 4 * n);
  file.close();
  const before = Deno.memoryUsage().rss;
  const run = await withTimeout(runCli(["inspect", path, "--json"]), 10000, "inspect");
  equal(run.code, 0, run.err.join("\n"));
  ok(Deno.memoryUsage().rss - before < 512 * 1024 ** 2, "did not load the data");
  equal(run.out.length, 1, "stdout holds only the JSON document");
  deepEqual(JSON.parse(run.out[0]), {
    path,
    type: "safetensors",
    tensors: 1,
    values: n,
    bytes: prefix.length + 4 * n,
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("inspect --json prints the value count, and only JSON on stdout", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/small.safetensors`;
  await Deno.writeFile(
    path,
    encodeSafetensors({ a: { dtype: "F32", shape: [2, 3], data: new Float32Array(6) } }),
  );
  const run = await runCli(["inspect", path, "--json"]);
  equal(run.code, 0);
  equal(run.out.length, 1);
  equal(JSON.parse(run.out[0]).values, 6);
  ok(run.err.some((l) => l.includes("a") && l.includes("[2, 3]")), "human lines on stderr");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("inspect of a large bundle reads its directory only", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/big.zip`;
  // A 900 MB stored entry that is a hole in a sparse file: reading the archive would take 900 MB.
  const big = 900_000_000;
  await writeStoredZip(path, [
    { name: "weights.bin", hole: big },
    { name: "manifest.json", data: new TextEncoder().encode('{"kind":"big"}') },
  ]);
  const before = Deno.memoryUsage().rss;
  const run = await withTimeout(runCli(["inspect", path, "--json"]), 10000, "inspect");
  equal(run.code, 0, run.err.join("\n"));
  ok(Deno.memoryUsage().rss - before < 128 * 1024 ** 2, "did not read the entry's data");
  deepEqual(JSON.parse(run.out[0]), {
    path,
    type: "bundle",
    manifest: { kind: "big" },
    entries: 1,
  });
  ok(run.err.some((l) => l.includes("weights.bin") && l.includes(`${big} bytes`)), run.err.join());
  await Deno.remove(dir, { recursive: true });
});
