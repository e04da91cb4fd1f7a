// The value emitter shared by every kernel generator: it turns "the value of
// node n at index i" into WGSL `let` statements, recursing through the
// elementwise and shape ops that fusion inlined and stopping at nodes that
// have a buffer. Shape ops never move data: broadcast, permute, slice, pad,
// concat and reshape become index arithmetic on the way down.

import { type DType, type Node, type Shape, sizeOf } from "../../../compiler/ir.ts";
import { stridesOf } from "../../../ops/rules.ts";
import { dropoutConstants } from "../../../ops/random.ts";
import { wgslF32 } from "./kernel.ts";
import { wgslUniformSymmetric } from "./threefry.ts";

/**
 * The WGSL element type a dtype is stored as: bool is stored as u32 (0 or 1).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { storageType } from "./value_emitter.ts";
 * strictEqual(storageType("bool"), "u32");
 * ```
 */
export function storageType(dtype: DType): "f32" | "i32" | "u32" {
  return dtype === "bool" ? "u32" : dtype;
}

/**
 * A WGSL literal of `value` in `dtype` (non-finite f32 values as bit patterns).
 *
 * @example
 * ```ts
 * import { literal } from "./value_emitter.ts";
 * console.log(literal(-Infinity, "f32"), literal(3, "u32")); // bitcast<f32>(0xff800000u) 3u
 * ```
 */
export function literal(value: number, dtype: DType): string {
  switch (dtype) {
    case "f32":
      if (Number.isNaN(value)) return "bitcast<f32>(0x7fc00000u)";
      if (value === Infinity) return "bitcast<f32>(0x7f800000u)";
      if (value === -Infinity) return "bitcast<f32>(0xff800000u)";
      return `f32(${wgslF32(value)})`;
    case "i32":
      return `bitcast<i32>(${(value | 0) >>> 0}u)`;
    case "u32":
      return `${value >>> 0}u`;
    case "bool":
      return value !== 0 ? "true" : "false";
  }
}

/**
 * A WGSL u32 literal.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { u32 } from "./value_emitter.ts";
 * strictEqual(u32(7), "7u");
 * ```
 */
export const u32 = (n: number): string => `${n}u`;

/**
 * An index into a tensor of `shape`: a flat (row-major) index, per-axis
 * coordinates, or both, as WGSL u32 expressions.
 *
 * @example
 * ```ts
 * import type { Index } from "./value_emitter.ts";
 * const row: Index = { shape: [4, 5], coords: ["r", "0u"] };
 * ```
 */
export interface Index {
  /** The shape the index is into. */
  readonly shape: Shape;
  /** The flat index. */
  readonly linear?: string;
  /** One coordinate per axis. */
  readonly coords?: readonly string[];
}

/**
 * Where the emitter finds materialized tensors.
 *
 * @example
 * ```ts
 * import type { ValueScope } from "./value_emitter.ts";
 * const scope: ValueScope = { bufferOf: (n) => (n.op === "input" ? "in0" : undefined) };
 * ```
 */
export interface ValueScope {
  /** The WGSL array holding `node`, or undefined when its value must be computed inline. */
  bufferOf(node: Node): string | undefined;
  /** In a matmul epilogue: the matmul node, whose value at `index` is `acc`. */
  readonly accNode?: Node;
}

/**
 * Emits `let` statements computing node values; one instance per WGSL function body.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * import { ValueEmitter } from "./value_emitter.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [makeNode(ops.permute, [x], { perm: [1, 0] })], {});
 * const emitter = new ValueEmitter({ bufferOf: (n) => (n === x ? "in0" : undefined) });
 * const v = emitter.value(y, { shape: y.shape, linear: "i" });
 * console.log([...emitter.lines, `out[i] = ${v};`].join("\n"));
 * ```
 */
export class ValueEmitter {
  /** The statements emitted so far, in order. */
  readonly lines: string[] = [];
  /** Set once any value needs the Threefry functions. */
  usesThreefry = false;
  readonly #scope: ValueScope;
  readonly #memo = new Map<string, string>();
  #next = 0;

  /** An emitter reading materialized tensors through `scope`. */
  constructor(scope: ValueScope) {
    this.#scope = scope;
  }

  /** Binds `expr` to a fresh `let` and returns its name (memoised by `key` when given). */
  bind(expr: string, key?: string): string {
    if (key !== undefined) {
      const found = this.#memo.get(key);
      if (found !== undefined) return found;
    }
    const name = `v${this.#next++}`;
    this.lines.push(`let ${name} = ${expr};`);
    if (key !== undefined) this.#memo.set(key, name);
    return name;
  }

  /** The flat index of `index`, computing it from coordinates when needed. */
  linear(index: Index): string {
    if (index.linear !== undefined) return index.linear;
    const strides = stridesOf(index.shape);
    const terms = index.coords!.flatMap((c, i) =>
      index.shape[i] === 1 ? [] : [strides[i] === 1 ? c : `${c} * ${u32(strides[i])}`]
    );
    return terms.length === 0 ? "0u" : this.bind(terms.join(" + "), `lin:${terms.join("+")}`);
  }

  /** Per-axis coordinates of `index`, computing them from the flat index when needed. */
  coords(index: Index): readonly string[] {
    if (index.coords !== undefined) return index.coords;
    const lin = index.linear!;
    const strides = stridesOf(index.shape);
    return index.shape.map((d, i) => {
      if (d === 1) return "0u";
      const q = strides[i] === 1 ? lin : `(${lin} / ${u32(strides[i])})`;
      const expr = i === 0 ? q : `${q} % ${u32(d)}`;
      return this.bind(expr, `coord:${lin}:${index.shape.join(",")}:${i}`);
    });
  }

  /** A WGSL expression for the value of `node` at `index` (a `let` name or a literal). */
  value(node: Node, index: Index): string {
    const buffer = this.#scope.bufferOf(node);
    if (node === this.#scope.accNode) {
      const at = this.linear(index);
      if (at !== "index") {
        throw new Error(
          `matmul epilogue reads ${node.op}#${node.id} at ${at}, not at its own index`,
        );
      }
      return "acc";
    }
    if (buffer !== undefined) {
      const at = this.linear(index);
      const load = `${buffer}[${at}]`;
      return this.bind(node.dtype === "bool" ? `(${load} != 0u)` : load, `load:${buffer}:${at}`);
    }
    const key = `${node.id}@${index.linear ?? index.coords!.join(",")}`;
    const found = this.#memo.get(key);
    if (found !== undefined) return found;
    const expr = this.#compute(node, index);
    const name = /^[A-Za-z_][A-Za-z0-9_]*$/.test(expr) ? expr : this.bind(expr);
    this.#memo.set(key, name);
    return name;
  }

  #compute(node: Node, index: Index): string {
    const attrs = node.attrs;
    switch (node.op) {
      case "const":
        if (attrs.data !== undefined) break;
        return literal(attrs.value as number, node.dtype);
      case "iota": {
        const c = this.coords(index)[normalizeAxis(attrs.axis as number, node.shape.length)];
        return node.dtype === "bool" ? `(${c} != 0u)` : `${node.dtype}(${c})`;
      }
      case "random": {
        this.usesThreefry = true;
        const { seed, stream, bound } = attrs as { seed: number; stream: number; bound: number };
        return wgslUniformSymmetric({ seed, stream, bound }, this.linear(index));
      }
      case "dropout": {
        this.usesThreefry = true;
        const { threshold, scale } = dropoutConstants(attrs.p as number);
        const x = this.value(node.inputs[0], index);
        const seed = this.value(node.inputs[1], { shape: [], linear: "0u" });
        const key = `vec2<u32>(${u32(attrs.stream as number)}, ${seed})`;
        const keep = `dropout_keep(${key}, ${this.linear(index)}, ${wgslF32(threshold)})`;
        return `select(0.0, ${x} * ${wgslF32(scale)}, ${keep})`;
      }
      case "reshape":
        return this.value(node.inputs[0], {
          shape: node.inputs[0].shape,
          linear: this.linear(index),
        });
      case "broadcast":
        return this.#broadcast(node, index);
      case "permute": {
        const coords = this.coords(index);
        const perm = attrs.perm as number[];
        const inner: string[] = [];
        perm.forEach((p, i) => (inner[p] = coords[i]));
        return this.value(node.inputs[0], { shape: node.inputs[0].shape, coords: inner });
      }
      case "slice": {
        const starts = attrs.starts as number[];
        const coords = this.coords(index).map((
          c,
          i,
        ) => (starts[i] === 0 ? c : `(${c} + ${u32(starts[i])})`));
        return this.value(node.inputs[0], { shape: node.inputs[0].shape, coords });
      }
      case "pad":
        return this.#pad(node, index);
      case "concat":
        return this.#concat(node, index);
      default: {
        const expr = node.def.wgsl;
        if (expr !== undefined) {
          const args = node.inputs.map((input) => this.value(input, index));
          const compareBools = node.dtype === "bool" && node.inputs[0]?.dtype === "bool" &&
            node.op !== "where" && node.op !== "cast";
          const operands = compareBools ? args.map((a) => `select(0u, 1u, ${a})`) : args;
          return expr(operands, node);
        }
      }
    }
    throw new Error(
      `internal: ${node.op}#${node.id} ${node.dtype}[${node.shape}] has no buffer and cannot be computed inline`,
    );
  }

  #broadcast(node: Node, index: Index): string {
    const input = node.inputs[0];
    if (sizeOf(input.shape) === 1) return this.value(input, { shape: input.shape, linear: "0u" });
    const coords = this.coords(index);
    const lead = node.shape.length - input.shape.length;
    const inner = input.shape.map((d, i) => (d === 1 ? "0u" : coords[lead + i]));
    return this.value(input, { shape: input.shape, coords: inner });
  }

  #pad(node: Node, index: Index): string {
    const input = node.inputs[0];
    const zero = literal(0, node.dtype);
    if (sizeOf(input.shape) === 0) return zero;
    const before = node.attrs.before as number[];
    const coords = this.coords(index);
    const inside: string[] = [];
    const inner = coords.map((c, i) => {
      const [b, d] = [before[i], input.shape[i]];
      if (b === 0 && d === node.shape[i]) return c;
      inside.push(`${c} >= ${u32(b)}`, `${c} < ${u32(b + d)}`);
      const shifted = b === 0 ? c : `select(0u, ${c} - ${u32(b)}, ${c} >= ${u32(b)})`;
      return this.bind(`min(${shifted}, ${u32(d - 1)})`);
    });
    const v = this.value(input, { shape: input.shape, coords: inner });
    return inside.length === 0 ? v : `select(${zero}, ${v}, ${inside.join(" && ")})`;
  }

  #concat(node: Node, index: Index): string {
    const axis = normalizeAxis(node.attrs.axis as number, node.shape.length);
    const coords = this.coords(index);
    const c = coords[axis];
    let offset = 0;
    const parts: { end: number; value: string }[] = [];
    for (const input of node.inputs) {
      const d = input.shape[axis];
      if (d > 0 && sizeOf(input.shape) > 0) {
        const local = offset === 0
          ? `min(${c}, ${u32(d - 1)})`
          : `min(select(0u, ${c} - ${u32(offset)}, ${c} >= ${u32(offset)}), ${u32(d - 1)})`;
        const inner = coords.map((x, i) => (i === axis ? this.bind(local) : x));
        parts.push({
          end: offset + d,
          value: this.value(input, { shape: input.shape, coords: inner }),
        });
      }
      offset += d;
    }
    if (parts.length === 0) return literal(0, node.dtype);
    let result = parts[parts.length - 1].value;
    for (let k = parts.length - 2; k >= 0; k--) {
      result = `select(${result}, ${parts[k].value}, ${c} < ${u32(parts[k].end)})`;
    }
    return result;
  }
}

function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/**
 * A WGSL function `fn name(i: u32) -> T` returning the value of `node` at flat
 * index `i`, reading materialized tensors through `scope`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../../ops/mod.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * import { valueFunction } from "./value_emitter.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const f = valueFunction("load", makeNode(ops.neg, [x], {}), { bufferOf: (n) => (n === x ? "in0" : undefined) });
 * strictEqual(f.wgsl.startsWith("fn load(i: u32) -> f32"), true);
 * ```
 */
export function valueFunction(
  name: string,
  node: Node,
  scope: ValueScope,
): { wgsl: string; usesThreefry: boolean } {
  const emitter = new ValueEmitter(scope);
  const v = emitter.value(node, { shape: node.shape, linear: "i" });
  const body = [...emitter.lines, `return ${v};`].map((l) => `  ${l}`).join("\n");
  return {
    wgsl: `fn ${name}(i: u32) -> ${node.dtype} {\n${body}\n}`,
    usesThreefry: emitter.usesThreefry,
  };
}

/**
 * `value` converted for a store into a buffer of `dtype` (bool → 0u/1u).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { storeValue } from "./value_emitter.ts";
 * strictEqual(storeValue("v3", "bool"), "select(0u, 1u, v3)");
 * ```
 */
export function storeValue(value: string, dtype: DType): string {
  return dtype === "bool" ? `select(0u, 1u, ${value})` : value;
}
