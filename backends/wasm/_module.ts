/**
 * One kernel module per executable: the math helpers kernels call, then one
 * exported `(thread, threads)` function per step. Modules are compiled once
 * and cached by their bytes, so recompiling the same graph is free.
 *
 * @module
 */
import { encodeModule, Fn, I32 } from "./_encoder.ts";
import { buildHelper, type Helpers } from "./_expr.ts";

/**
 * Collects functions; helpers are added the first time a kernel asks for them.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ModuleBuilder } from "./_module.ts";
 * const m = new ModuleBuilder();
 * const f = m.kernel("s0");
 * f.get(0).op(0x1a); // drop
 * strictEqual(WebAssembly.validate(m.encode(1)), true);
 * ```
 */
export class ModuleBuilder implements Helpers {
  readonly #functions: { name?: string; fn: Fn }[] = [];
  readonly #helpers = new Map<string, number>();

  /** The index of helper `name`, building it (and the helpers it calls) on first use. */
  index(name: string): number {
    const known = this.#helpers.get(name);
    if (known !== undefined) return known;
    const slot = this.#functions.length;
    this.#helpers.set(name, slot);
    this.#functions.push({ fn: new Fn([]) }); // placeholder keeps the index stable
    this.#functions[slot] = { fn: buildHelper(name, (n) => this.index(n)) };
    return slot;
  }

  /** A new exported kernel `(thread: i32, threads: i32) -> ()`. */
  kernel(name: string): Fn {
    const fn = new Fn([I32, I32]);
    this.#functions.push({ name, fn });
    return fn;
  }

  /** The module's bytes for a memory of `pages` pages. */
  encode(pages: number): Uint8Array<ArrayBuffer> {
    return encodeModule(this.#functions, pages);
  }
}

// Bounded, oldest out first: a process that compiles many graphs must not keep every module.
const CACHE_SIZE = 32;
const compiled = new Map<string, WebAssembly.Module>();

/**
 * Compiles `bytes` once per distinct module (keyed by content).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { compileCached, ModuleBuilder } from "./_module.ts";
 * const m = new ModuleBuilder();
 * m.kernel("noop");
 * const a = await compileCached(m.encode(1));
 * strictEqual(a === await compileCached(m.encode(1)), true);
 * ```
 */
export async function compileCached(bytes: Uint8Array<ArrayBuffer>): Promise<WebAssembly.Module> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const key = `${bytes.length}:${[...digest].join(",")}`;
  let module = compiled.get(key);
  if (module === undefined) {
    module = await WebAssembly.compile(bytes);
    if (compiled.size >= CACHE_SIZE) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, module);
  }
  return module;
}
