/**
 * Building statement lists: {@link Body} (with fresh local names shared by
 * a function and its nested blocks) and {@link defineFunction}.
 *
 * @module
 */
import { checkArgs, expectType, ref, u32 } from "./build.ts";
import type { Expr, KernelFunction, Stmt, TreeLane, ValueType } from "./ir.ts";

/** Hands out fresh local names, shared by a function body and its nested blocks. */
class Names {
  #next = new Map<string, number>();
  fresh(hint: string): string {
    const n = this.#next.get(hint) ?? 0;
    this.#next.set(hint, n + 1);
    return `${hint}${n}`;
  }
}

/**
 * Builds a statement list. Nested blocks (`loop`, `when`) share the name
 * counter, so every `let` of a function gets a distinct name.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body } from "./body.ts";
 * import { f32, u32 } from "./build.ts";
 * const body = new Body();
 * const total = body.var("f32", f32(0), "total");
 * body.loop(u32(0), u32(4), (i, inner) => inner.assign(total, inner.let(f32(1))));
 * strictEqual(body.stmts.length, 2);
 * ```
 */
export class Body {
  /** The statements so far. */
  readonly stmts: Stmt[] = [];
  readonly #names: Names;

  /** An empty body (nested blocks pass their parent's names). */
  constructor(names: Names = new Names()) {
    this.#names = names;
  }

  /** A fresh local name starting with `hint`. */
  fresh(hint: string): string {
    return this.#names.fresh(hint);
  }

  /** Binds `value` to a new `let` and returns a reference to it (literals and refs are returned as they are). */
  let(value: Expr, hint = "v"): Expr {
    if (value.kind === "literal" || value.kind === "ref" || value.kind === "id") return value;
    return this.letNamed(this.#names.fresh(hint), value);
  }

  /** Binds `value` to a `let` named exactly `name`. */
  letNamed(name: string, value: Expr): Expr {
    this.stmts.push({ kind: "let", name, value });
    return ref(name, value.type);
  }

  /** Declares a mutable local. */
  var(type: ValueType, init?: Expr, hint = "m"): Expr {
    return this.varNamed(this.#names.fresh(hint), type, init);
  }

  /** Declares a mutable local named exactly `name` (unrolled kernels name their accumulators). */
  varNamed(name: string, type: ValueType, init?: Expr): Expr {
    if (init !== undefined && init.type !== type) {
      throw new Error(`kernel IR: var ${name}: ${type} initialised with a ${init.type}`);
    }
    this.stmts.push({ kind: "var", name, type, init });
    return ref(name, type);
  }

  /** Assigns to a `var`. */
  assign(target: Expr, value: Expr): void {
    if (target.kind !== "ref") throw new Error("kernel IR: can only assign to a var");
    if (target.type !== value.type) {
      throw new Error(`kernel IR: ${target.name} is ${target.type}, assigned a ${value.type}`);
    }
    this.stmts.push({ kind: "assign", name: target.name, value });
  }

  /** Writes element `index` of a buffer or shared array. */
  store(array: string, index: Expr, value: Expr): void {
    expectType(index, ["u32", "i32"], `index into ${array}`);
    this.stmts.push({ kind: "store", array, index, value });
  }

  /** `for (i = from; i < to; i += step)` with a u32 counter passed to `build`. */
  loop(
    from: Expr,
    to: Expr,
    build: (i: Expr, body: Body) => void,
    options: { step?: Expr; hint?: string } = {},
  ): void {
    const name = this.#names.fresh(options.hint ?? "i");
    const inner = new Body(this.#names);
    build(ref(name, "u32"), inner);
    this.stmts.push({
      kind: "loop",
      name,
      from,
      to,
      step: options.step ?? u32(1),
      body: inner.stmts,
    });
  }

  /** `if (cond) { then } else { otherwise }`. */
  when(cond: Expr, then: (body: Body) => void, otherwise?: (body: Body) => void): void {
    expectType(cond, ["bool"], "if condition");
    const a = new Body(this.#names);
    then(a);
    let b: Body | undefined;
    if (otherwise !== undefined) {
      b = new Body(this.#names);
      otherwise(b);
    }
    this.stmts.push({ kind: "if", cond, then: a.stmts, otherwise: b?.stmts });
  }

  /** Ends the invocation (or returns `value` from a function). */
  return(value?: Expr): void {
    this.stmts.push({ kind: "return", value });
  }

  /** A workgroup barrier. */
  barrier(): void {
    this.stmts.push({ kind: "barrier" });
  }

  /** Calls a function for its effect. */
  call(fn: KernelFunction, ...args: Expr[]): void {
    checkArgs(fn, args);
    this.stmts.push({ kind: "call", fn, args });
  }

  /** The workgroup tree reduction (see the `treeReduce` statement). */
  treeReduce(width: number, lanes: readonly TreeLane[]): void {
    if (width < 1 || (width & (width - 1)) !== 0) {
      throw new Error(`kernel IR: tree reduction width ${width} is not a power of two`);
    }
    this.stmts.push({ kind: "treeReduce", width, lanes });
  }
}

/**
 * Declares a helper function; `build` gets the parameters as references and the body.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, call, u32 } from "./build.ts";
 * import { defineFunction } from "./body.ts";
 * const inc = defineFunction("inc", [["x", "u32"]], "u32", ([x], body) => body.return(add(x, u32(1))));
 * strictEqual(call(inc, u32(1)).type, "u32");
 * ```
 */
export function defineFunction(
  name: string,
  params: readonly (readonly [string, ValueType])[],
  returns: ValueType | undefined,
  build: (args: Expr[], body: Body) => void,
): KernelFunction {
  const body = new Body();
  build(params.map(([n, t]) => ref(n, t)), body);
  return {
    name,
    params: params.map(([n, t]) => ({ name: n, type: t })),
    returns,
    body: body.stmts,
  };
}
