// No import cycles anywhere in the repository's TypeScript, type-only imports
// included: layers import downwards (ops → compiler/ir, backends → compiler
// and ops, compile → backends), so each folder can be read, tested and
// replaced on its own. And a module named `_name.ts` is private to its
// folder: code elsewhere (tests aside) imports only public modules.
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);
const SKIP = new Set([".git", "node_modules", "fixtures", "runs"]);

function sourceFiles(dir: URL, out: string[] = []): string[] {
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.name.startsWith(".") || SKIP.has(entry.name)) continue;
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) sourceFiles(url, out);
    else if (entry.name.endsWith(".ts")) out.push(url.pathname);
  }
  return out;
}

/** Relative module specifiers a file imports or re-exports statically (comments stripped). */
export function importsOf(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
  const found: string[] = [];
  const statement = /^[ \t]*(?:import|export)\s[^"';]*?from\s*["'](\.[^"']+)["']/gm;
  const bare = /^[ \t]*import\s*["'](\.[^"']+)["']/gm;
  for (const re of [statement, bare]) for (const m of code.matchAll(re)) found.push(m[1]);
  return found;
}

/** The strongly connected components of more than one file (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

Deno.test("the import parser sees static imports and re-exports, not comments", () => {
  const source = `import { a } from "./a.ts";
import type { B } from "../b.ts";
export { c } from "./c.ts";
import "./side.ts";
// import { d } from "./d.ts";
/** import { e } from "./e.ts"; */
const f = "not an import from './f.ts'";`;
  assert.deepEqual(importsOf(source).sort(), ["../b.ts", "./a.ts", "./c.ts", "./side.ts"]);
});

Deno.test("no import cycles in the repository", () => {
  const files = sourceFiles(root);
  assert.ok(files.length > 100, `found only ${files.length} files`);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const deps = importsOf(Deno.readTextFileSync(file))
      .map((spec) => new URL(spec, `file://${file}`).pathname);
    graph.set(file, deps.filter((d) => d !== file));
  }
  const relative = (p: string) => p.slice(root.pathname.length);
  const found = cycles(graph).map((c) => c.map(relative).join(" → "));
  assert.deepEqual(found, [], `import cycles:\n${found.join("\n")}`);
});

Deno.test("private modules are imported only from their own folder (tests aside)", () => {
  const folder = (p: string) => p.slice(0, p.lastIndexOf("/"));
  const tests = new URL("tests/", root).pathname;
  const crossings: string[] = [];
  for (const file of sourceFiles(root).filter((f) => !f.startsWith(tests))) {
    for (const spec of importsOf(Deno.readTextFileSync(file))) {
      const target = new URL(spec, `file://${file}`).pathname;
      const name = target.slice(target.lastIndexOf("/") + 1);
      if (name.startsWith("_") && folder(target) !== folder(file)) {
        crossings.push(
          `${file.slice(root.pathname.length)} → ${target.slice(root.pathname.length)}`,
        );
      }
    }
  }
  assert.deepEqual(
    crossings,
    [],
    `private modules imported from another folder:\n${crossings.join("\n")}`,
  );
});
