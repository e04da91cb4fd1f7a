// The examples are what a newcomer copies: they import only the package's entry points (no private
// `_x.ts` or internal module), the training ones stay short, and each one runs (at tiny sizes).
import { deepEqual, equal, ok } from "node:assert/strict";

const EXAMPLES = new URL("../../examples/", import.meta.url);
const ENTRY_POINTS = ["../mod.ts", "../data/mod.ts"];
// Arguments that make each run small: training steps.
const TINY_ARGS: Record<string, string[]> = {
  "train_from_scratch.ts": ["2"],
  "vera_finetune.ts": ["1"],
};

const files = [...Deno.readDirSync(EXAMPLES)]
  .filter((e) => e.isFile && e.name.endsWith(".ts"))
  .map((e) => e.name)
  .sort();

/** The specifiers of static and dynamic imports and re-exports. */
function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)[^;]*?from\s*"([^"]+)"/g)) {
    found.push(m[1]);
  }
  for (const m of source.matchAll(/(?:^|\n)\s*import\s*"([^"]+)"/g)) found.push(m[1]);
  for (const m of source.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)) found.push(m[1]);
  return found;
}

/** Lines after the leading doc comment (the code a reader copies). */
function codeLines(source: string): number {
  const body = source.replace(/^\/\*\*[\s\S]*?\*\/\n/, "");
  return body.trimEnd().split("\n").length;
}

Deno.test("examples", async (t) => {
  ok(files.length >= 4, files.join());

  await t.step("import only mod.ts and data/mod.ts", async () => {
    for (const name of files) {
      const imports = importsOf(await Deno.readTextFile(new URL(name, EXAMPLES)));
      ok(imports.length > 0, name);
      deepEqual(imports.filter((s) => !ENTRY_POINTS.includes(s)), [], name);
    }
  });

  await t.step("a training example (fit) is at most 30 lines of code", async () => {
    for (const name of files) {
      const source = await Deno.readTextFile(new URL(name, EXAMPLES));
      if (!/\bfit\(/.test(source)) continue;
      const lines = codeLines(source);
      ok(lines <= 30, `${name}: ${lines} lines`);
    }
  });

  await t.step("type-check", async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", ...files.map((f) => new URL(f, EXAMPLES).pathname)],
      stderr: "piped",
    }).output();
    equal(out.code, 0, new TextDecoder().decode(out.stderr));
  });

  for (const name of files) {
    await t.step(`runs: ${name}`, async () => {
      const cwd = await Deno.makeTempDir();
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(name, EXAMPLES).pathname, ...(TINY_ARGS[name] ?? [])],
        cwd,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      equal(out.code, 0, `${text}\n${new TextDecoder().decode(out.stderr)}`);
      ok(text.trim().length > 0, `${name} printed nothing`);
      await Deno.remove(cwd, { recursive: true });
    });
  }
});
