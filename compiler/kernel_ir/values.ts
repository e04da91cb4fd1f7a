/**
 * Lowers "the value of graph node n at index i" into kernel IR, for every
 * kernel family: a node with a buffer is loaded; any other node is computed
 * by its op's own `inline` rule (elementwise math, view index arithmetic,
 * generated values), recursively, each value bound to a `let` once.
 *
 * Nothing here knows an op by name: what an op computes lives in its module
 * under `ops/`.
 *
 * @module
 */
import { type DType, type InlineContext, type KernelIndex, type Node, stridesOf } from "../ir.ts";
import { binary, convert, load, u32 } from "./build.ts";
import type { Body } from "./body.ts";
import type { Expr, ScalarType } from "./ir.ts";
import { formatExpr } from "./print.ts";

/**
 * The element type a dtype is stored as in a kernel buffer: bool is stored as u32 (0 or 1).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { storageType } from "./values.ts";
 * strictEqual(storageType("bool"), "u32");
 * ```
 */
export function storageType(dtype: DType): "f32" | "i32" | "u32" {
  return dtype === "bool" ? "u32" : dtype;
}

/**
 * `value` converted for a store into a buffer of `dtype` (bool → 0u/1u).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { lit } from "./build.ts";
 * import { storedValue } from "./values.ts";
 * strictEqual(storedValue(lit(true, "bool"), "bool").type, "u32");
 * ```
 */
export function storedValue(value: Expr, dtype: DType): Expr {
  return dtype === "bool" ? convert("u32", value) : value;
}

/**
 * Where materialized tensors are found.
 *
 * @example
 * ```ts
 * import type { ValueScope } from "./values.ts";
 * const scope: ValueScope = { bufferOf: (n) => (n.op === "input" ? "in0" : undefined) };
 * ```
 */
export interface ValueScope {
  /** The buffer holding `node`, or undefined when its value must be computed inline. */
  bufferOf(node: Node): string | undefined;
  /**
   * In an epilogue (code run on a kernel op's result before it is stored):
   * the kernel op, whose value is `acc` and may be read only at `accIndex`.
   */
  readonly acc?: { readonly node: Node; readonly value: Expr; readonly index: Expr };
}

/**
 * Builds node values into a {@link Body}, memoised per (node, index).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { ref } from "./build.ts";
 * import { Body } from "./body.ts";
 * import { NodeValues } from "./values.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [makeNode(ops.permute, [x], { perm: [1, 0] })], {});
 * const body = new Body();
 * const values = new NodeValues(body, { bufferOf: (n) => (n === x ? "in0" : undefined) });
 * const v = values.value(y, { shape: y.shape, linear: ref("i", "u32") });
 * strictEqual(v.kind, "ref");
 * strictEqual(body.stmts.length > 2, true);
 * ```
 */
export class NodeValues implements InlineContext {
  readonly #body: Body;
  readonly #scope: ValueScope;
  readonly #memo = new Map<string, Expr>();

  /** Values emitted into `body`, reading materialized tensors through `scope`. */
  constructor(body: Body, scope: ValueScope) {
    this.#body = body;
    this.#scope = scope;
  }

  /** Binds `value` to a `let` once per distinct expression. */
  bind(value: Expr): Expr {
    if (value.kind === "literal" || value.kind === "ref" || value.kind === "id") return value;
    const key = `bind:${formatExpr(value)}`;
    const found = this.#memo.get(key);
    if (found !== undefined) return found;
    const bound = this.#body.let(value);
    this.#memo.set(key, bound);
    return bound;
  }

  /** The flat index of `at`, computed from coordinates when needed. */
  linear(at: KernelIndex): Expr {
    if (at.linear !== undefined) return at.linear;
    const strides = stridesOf(at.shape);
    const terms = at.coords!.flatMap((c, i) =>
      at.shape[i] === 1 ? [] : [strides[i] === 1 ? c : binary("*", c, u32(strides[i]))]
    );
    if (terms.length === 0) return u32(0);
    return this.bind(terms.reduce((a, b) => binary("+", a, b)));
  }

  /** Per-axis coordinates of `at`, computed from the flat index when needed. */
  coords(at: KernelIndex): readonly Expr[] {
    if (at.coords !== undefined) return at.coords;
    const flat = at.linear!;
    const strides = stridesOf(at.shape);
    return at.shape.map((d, i) => {
      if (d === 1) return u32(0);
      const q = strides[i] === 1 ? flat : binary("/", flat, u32(strides[i]));
      return this.bind(i === 0 ? q : binary("%", q, u32(d)));
    });
  }

  /** The value of `node` at `at`: `acc` in an epilogue, a load, or the op's inline rule. */
  value(node: Node, at: KernelIndex): Expr {
    const acc = this.#scope.acc;
    if (acc !== undefined && node === acc.node) {
      const index = this.linear(at);
      if (formatExpr(index) !== formatExpr(acc.index)) {
        throw new Error(
          `epilogue reads ${node.op}#${node.id} at ${formatExpr(index)}, not at its own index`,
        );
      }
      return acc.value;
    }
    const buffer = this.#scope.bufferOf(node);
    if (buffer !== undefined) return this.#load(buffer, node.dtype, this.linear(at));
    const key = `${node.id}@${
      at.linear !== undefined ? formatExpr(at.linear) : at.coords!.map(formatExpr).join(",")
    }`;
    const found = this.#memo.get(key);
    if (found !== undefined) return found;
    const computed = node.def.inline?.(node, at, this);
    if (computed === undefined) {
      throw new Error(
        `internal: ${node.op}#${node.id} ${node.dtype}[${node.shape}] has no buffer and cannot be computed inline`,
      );
    }
    const bound = this.#body.let(computed);
    this.#memo.set(key, bound);
    return bound;
  }

  #load(buffer: string, dtype: DType, index: Expr): Expr {
    const key = `load:${buffer}[${formatExpr(index)}]`;
    const found = this.#memo.get(key);
    if (found !== undefined) return found;
    const raw = load(buffer, index, storageType(dtype) as ScalarType);
    const bound = this.#body.let(dtype === "bool" ? binary("!=", raw, u32(0)) : raw);
    this.#memo.set(key, bound);
    return bound;
  }
}
