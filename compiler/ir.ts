/**
 * The graph IR: one immutable node type, static shapes, four dtypes.
 *
 * Nodes are built only through {@link makeNode}, which asks the op's `infer`
 * rule for the shape and dtype (so an ill-shaped node cannot exist) and
 * hash-conses structurally equal nodes (so common-subexpression elimination
 * is free). A {@link Graph} is a set of named outputs plus the leaves it reads.
 *
 * @module
 */
import { getOp } from "../ops/registry.ts";
// Registers every op, so any module that builds nodes works on its own. The
// cycle (ops import this file) is safe: ops use it only when rules run.
import "../ops/mod.ts";

/** Element types a tensor can hold. `bool` is stored as one byte (0 or 1) on the CPU. */
export type DType = "f32" | "i32" | "u32" | "bool";

/** Every dtype, in a fixed order. */
export const DTYPES: readonly DType[] = ["f32", "i32", "u32", "bool"];

/** A static tensor shape: one non-negative integer per axis; `[]` is a scalar. */
export type Shape = readonly number[];

/** A value an op attribute may take: JSON-like and immutable. */
export type AttrValue =
  | number
  | string
  | boolean
  | null
  | readonly AttrValue[]
  | { readonly [key: string]: AttrValue };

/** The attributes of a node, keyed by name. */
export type Attrs = Readonly<Record<string, AttrValue>>;

/** Shape and dtype: what `infer` computes for a node. */
export interface TensorType {
  /** Static shape. */
  readonly shape: Shape;
  /** Element type. */
  readonly dtype: DType;
}

/** The one node type of the IR. Never mutated: passes build new nodes. */
export interface Node extends TensorType {
  /** Process-unique id; creation order, so inputs always have smaller ids. */
  readonly id: number;
  /** The op name, a key of the op registry. */
  readonly op: string;
  /** Operand nodes. */
  readonly inputs: readonly Node[];
  /** Static attributes (axes, perm, eps, leaf names, ...). */
  readonly attrs: Attrs;
  /** Module path for `param` and `input` leaves (`layers.0.attn.q_proj.weight`). */
  readonly name?: string;
}

/** Whether a param is updated by training or held fixed. */
export type ParamRole = "trainable" | "frozen";

/**
 * A traced program: named outputs, the inputs fed per call (in order), and
 * the params it reads (derived: every reachable `param` leaf, sorted by name).
 */
export interface Graph {
  /** `input` leaves in call order; an input may be unused but stays in the signature. */
  readonly inputs: readonly Node[];
  /** Every `param` leaf reachable from the outputs, sorted by name. */
  readonly params: readonly Node[];
  /** Named results. */
  readonly outputs: Readonly<Record<string, Node>>;
  /** Free-form metadata carried through passes (e.g. which outputs update which params). */
  readonly meta: Readonly<Record<string, unknown>>;
}

let nextId = 1;
const internTable = new Map<string, WeakRef<Node>>();
const sweeper = new FinalizationRegistry<string>((key) => {
  const ref = internTable.get(key);
  if (ref !== undefined && ref.deref() === undefined) internTable.delete(key);
});

/** Number of elements of a shape (1 for a scalar). */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Formats a shape and dtype the way error messages and `print` show them: `f32[2,3]`. */
export function formatType(t: TensorType): string {
  return `${t.dtype}[${t.shape.join(",")}]`;
}

/** Checks a shape is a list of non-negative safe integers; throws naming `where`. */
export function checkShape(shape: readonly number[], where: string): Shape {
  if (!Array.isArray(shape)) throw new Error(`${where}: shape must be an array, got ${shape}`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`${where}: shape [${shape.join(",")}] has an invalid dimension ${d}`);
    }
  }
  return Object.freeze([...shape]);
}

/** Checks a dtype name; throws a clear error for anything else. */
export function checkDType(dtype: unknown, where: string): DType {
  if (typeof dtype !== "string" || !(DTYPES as readonly string[]).includes(dtype)) {
    throw new Error(`${where}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${DTYPES})`);
  }
  return dtype as DType;
}

/** A canonical JSON encoding of attributes (keys sorted) for hashing and printing. */
export function attrKey(value: AttrValue | Attrs): string {
  if (typeof value === "number") {
    // JSON would print NaN and ±Infinity as null: keep them distinct (and -0 apart from 0).
    return Object.is(value, -0) ? "-0" : Number.isFinite(value) ? String(value) : `#${value}`;
  }
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => attrKey(v)).join(",")}]`;
  const obj = value as Record<string, AttrValue>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${attrKey(obj[k])}`).join(",")}}`;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Builds (or finds) the node `op(inputs; attrs)`. Shape and dtype come from
 * the op's `infer` rule, which throws an error naming the op and the operand
 * types when they do not fit.
 *
 * @example
 * ```ts
 * import { makeNode } from "./ir.ts";
 * import "../ops/mod.ts";
 * const x = makeNode("input", [], { shape: [2, 3], dtype: "f32" }, "x");
 * const y = makeNode("exp", [x], {});
 * console.log(y.shape); // [2, 3]
 * ```
 */
export function makeNode(
  op: string,
  inputs: readonly Node[],
  attrs: Attrs = {},
  name?: string,
): Node {
  const def = getOp(op);
  // A private deep copy: freezing must not reach into the caller's arrays.
  const frozenAttrs = deepFreeze(structuredClone(attrs) as Attrs);
  const type = def.infer(inputs, frozenAttrs);
  const key = `${op}(${inputs.map((n) => n.id).join(",")})${attrKey(frozenAttrs)}` +
    (name === undefined ? "" : `@${name}`) + formatType(type);
  const found = internTable.get(key)?.deref();
  if (found !== undefined) return found;
  const node: Node = Object.freeze({
    id: nextId++,
    op,
    inputs: Object.freeze([...inputs]),
    attrs: frozenAttrs,
    shape: checkShape(type.shape, `op ${op}`),
    dtype: checkDType(type.dtype, `op ${op}`),
    ...(name === undefined ? {} : { name }),
  });
  internTable.set(key, new WeakRef(node));
  sweeper.register(node, key);
  return node;
}

/**
 * Every node reachable from `roots`, inputs before users (a topological order).
 *
 * @example
 * ```ts
 * import { makeNode, topoSort } from "./ir.ts";
 * import "../ops/mod.ts";
 * const x = makeNode("input", [], { shape: [2], dtype: "f32" }, "x");
 * console.log(topoSort([makeNode("neg", [x], {})]).length); // 2
 * ```
 */
export function topoSort(roots: Iterable<Node>): Node[] {
  const order: Node[] = [];
  const seen = new Set<number>();
  const stack: { node: Node; next: number }[] = [];
  for (const root of roots) {
    if (seen.has(root.id)) continue;
    seen.add(root.id);
    stack.push({ node: root, next: 0 });
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.next < top.node.inputs.length) {
        const child = top.node.inputs[top.next++];
        if (!seen.has(child.id)) {
          seen.add(child.id);
          stack.push({ node: child, next: 0 });
        }
      } else {
        order.push(top.node);
        stack.pop();
      }
    }
  }
  return order;
}

/**
 * Builds a Graph from its outputs; `params` is derived from reachability.
 *
 * @example
 * ```ts
 * import { makeGraph, makeNode } from "./ir.ts";
 * import "../ops/mod.ts";
 * const x = makeNode("input", [], { shape: [2], dtype: "f32" }, "x");
 * const g = makeGraph({ inputs: [x], outputs: { y: makeNode("exp", [x], {}) } });
 * console.log(Object.keys(g.outputs)); // ["y"]
 * ```
 */
export function makeGraph(parts: {
  inputs: readonly Node[];
  outputs: Readonly<Record<string, Node>>;
  meta?: Readonly<Record<string, unknown>>;
}): Graph {
  const params = topoSort(Object.values(parts.outputs))
    .filter((n) => n.op === "param")
    .sort((a, b) => (a.name! < b.name! ? -1 : a.name! > b.name! ? 1 : 0));
  return Object.freeze({
    inputs: Object.freeze([...parts.inputs]),
    params: Object.freeze(params),
    outputs: Object.freeze({ ...parts.outputs }),
    meta: Object.freeze({ ...(parts.meta ?? {}) }),
  });
}

/** All nodes of a graph in topological order (inputs included even when unused). */
export function graphNodes(graph: Graph): Node[] {
  return topoSort([...graph.inputs, ...Object.values(graph.outputs)]);
}

/** The role of a `param` leaf. */
export function paramRole(node: Node): ParamRole {
  return node.attrs.role as ParamRole;
}

/** The graph's trainable params, sorted by name. */
export function trainableParams(graph: Graph): Node[] {
  return graph.params.filter((p) => p.attrs.role === "trainable");
}

export { print, printAround, printNode } from "./_print.ts";
export { validate } from "./_validate.ts";
