/**
 * The test command (`deno task test`): every test file, and the JSDoc examples of every source
 * file, each in its own `deno test` process, a few at a time.
 *
 * Why not one `deno test --parallel`: with several WebGPU workers in one Deno process, the process
 * can abort with heap corruption after all its tests passed (reproduced without wgrad, see
 * tests/README.md); it needs two WebGPU workers, and a process per file leaves only files with two
 * GPU examples (each example is a worker) exposed. Each process's summary is read and summed; the
 * last line has Deno's own format (`ok | N passed (S steps) | F failed`). A process that exits
 * non-zero without a failed test (a crash) counts as a failure, except that this reproduced abort,
 * after every test of the process passed, is rerun once and reported in the summary line.
 *
 *   deno run -A tests/run.ts                 # everything
 *   deno run -A tests/run.ts tests/io        # the test files and sources under these paths
 *
 * @module
 */

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const SOURCE_DIRS = [
  "compiler",
  "ops",
  "prng",
  "backends",
  "nn",
  "adapters",
  "io",
  "train",
  "data",
  "cli",
];
const JOBS = Math.max(1, Math.min(navigator.hardwareConcurrency ?? 2, 4));

async function* walk(dir: string): AsyncGenerator<string> {
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(path);
    else if (e.isFile) yield path;
  }
}

/** The `deno test` argument lists: one per test file, one per source file with examples. */
async function jobs(filters: readonly string[]): Promise<string[][]> {
  const relative = (p: string) => p.slice(ROOT.length + 1);
  const wanted = (p: string) => filters.length === 0 || filters.some((f) => p.startsWith(f));
  const out: string[][] = [];
  for await (const path of walk(`${ROOT}/tests`)) {
    const rel = relative(path);
    // The benchmark peers need bench/'s own config: `deno task test:peers`.
    if (!rel.endsWith("_test.ts") || rel.startsWith("tests/bench/") || !wanted(rel)) continue;
    out.push(["test", "-A", rel]);
  }
  const sources = [`${ROOT}/mod.ts`, `${ROOT}/cli.ts`];
  for (const dir of SOURCE_DIRS) for await (const p of walk(`${ROOT}/${dir}`)) sources.push(p);
  for (const path of sources) {
    const rel = relative(path);
    if (!rel.endsWith(".ts") || !wanted(rel)) continue;
    if (!(await Deno.readTextFile(path)).includes("```ts")) continue;
    out.push(["test", "-A", "--doc", rel]);
  }
  return out;
}

interface Outcome {
  readonly args: string[];
  readonly code: number;
  readonly passed: number;
  readonly steps: number;
  readonly failed: number;
  readonly output: string;
}

/** glibc's heap-corruption abort after every test of the process passed. */
function knownAbort(o: Outcome): boolean {
  return o.code !== 0 && o.failed === 0 && o.passed > 0 &&
    /corrupted size|corrupted double-linked list|double free|malloc_consolidate|free\(\): invalid|malloc\(\)/
      .test(o.output);
}

async function run(args: string[]): Promise<Outcome> {
  const child = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(child.stdout) + new TextDecoder().decode(child.stderr);
  const summary = output.match(
    /^(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed/m,
  );
  return {
    args,
    code: child.code,
    passed: Number(summary?.[1] ?? 0),
    steps: Number(summary?.[2] ?? 0),
    failed: Number(summary?.[3] ?? 0),
    output,
  };
}

if (import.meta.main) {
  const started = performance.now();
  const queue = await jobs(Deno.args.map((a) => a.replace(/^\.\//, "")));
  const outcomes: Outcome[] = [];
  let next = 0, aborts = 0;
  const worker = async () => {
    while (next < queue.length) {
      const args = queue[next++];
      let o = await run(args);
      if (knownAbort(o)) {
        // The reproduced Deno/wgpu teardown abort (tests/README.md) after a clean summary: the
        // file is run once more and the abort is reported, never hidden.
        console.log(
          `note: ${args.at(-1)} aborted after its tests passed (${o.code}); running it again`,
        );
        aborts++;
        o = await run(args);
      }
      outcomes.push(o);
      const name = args.at(-1)!;
      const ok = o.code === 0 && o.failed === 0;
      console.log(
        `${ok ? "ok    " : "FAILED"} ${name}${args.includes("--doc") ? " (examples)" : ""}: ` +
          `${o.passed} passed, ${o.failed} failed`,
      );
      if (!ok) {
        // The whole output of a failing file: its errors and, for a crash, how it ended.
        console.log(o.output.split("\n").map((l) => `    ${l}`).join("\n"));
      }
    }
  };
  await Promise.all(Array.from({ length: JOBS }, worker));
  const total = (key: "passed" | "steps" | "failed") => outcomes.reduce((n, o) => n + o[key], 0);
  // A process that ended badly without a failed test (a crash, a type error) is a failure too.
  const crashed = outcomes.filter((o) => o.code !== 0 && o.failed === 0).length;
  const failed = total("failed") + crashed;
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  console.log(
    `\n${failed === 0 ? "ok" : "FAILED"} | ${total("passed")} passed (${total("steps")} steps) | ` +
      `${failed} failed (${seconds}s, ${outcomes.length} processes` +
      `${aborts > 0 ? `, ${aborts} teardown abort(s) rerun` : ""})`,
  );
  Deno.exit(failed === 0 ? 0 : 1);
}
