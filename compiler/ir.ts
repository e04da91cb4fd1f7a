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

import type {
  Attrs,
  AttrValue,
  DType,
  Graph,
  Node,
  OpDef,
  ParamRole,
  Shape,
  TensorType,
} from "./ir_types.ts";

export type {
  Attrs,
  AttrValue,
  CpuContext,
  CpuData,
  CpuTensor,
  DType,
  Graph,
  IndexOperand,
  InlineContext,
  KernelIndex,
  Lowering,
  Node,
  OpDef,
  ParamRole,
  Shape,
  TensorType,
} from "./ir_types.ts";

/** Every dtype, in a fixed order. */
export const DTYPES: readonly DType[] = ["f32", "i32", "u32", "bool"];

const defined = new Map<string, OpDef>();

/**
 * Declares an op and returns it. Throws if the name is taken or the
 * declaration is incomplete.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { defineOp, makeNode } from "./ir.ts";
 * import { input } from "../ops/leaf.ts";
 * import { f32, mul } from "./kernel_ir/build.ts";
 * const twice = defineOp({
 *   name: "example_twice",
 *   kind: "elementwise",
 *   lowering: "inline",
 *   infer: ([x]) => x,
 *   cpu: ([x]) => x.data.map((v) => 2 * v),
 *   vjp: (_node, g) => [makeNode(twice, [g])],
 *   inline: (node, at, ctx) => mul(f32(2), ctx.value(node.inputs[0], at)),
 * });
 * const x = makeNode(input, [], { shape: [3], dtype: "f32" }, "x");
 * strictEqual(makeNode(twice, [x]).op, "example_twice");
 * ```
 */
export function defineOp(def: OpDef): OpDef {
  if (defined.has(def.name)) throw new Error(`op ${def.name} is defined twice`);
  if (def.vjp === undefined && def.noGradient === undefined) {
    throw new Error(`op ${def.name} needs a vjp rule or a noGradient reason`);
  }
  if ((def.reduction !== undefined) !== (def.lowering === "reduce")) {
    throw new Error(`op ${def.name}: a reduce op, and only one, needs a reduction rule`);
  }
  if ((def.rowwise !== undefined) !== (def.lowering === "rowwise")) {
    throw new Error(`op ${def.name}: a rowwise op, and only one, needs a rowwise rule`);
  }
  if (def.inline !== undefined && def.lowering !== "inline" && def.lowering !== "leaf") {
    throw new Error(`op ${def.name}: only inline and leaf ops compute values inline`);
  }
  const frozen = Object.freeze({ ...def });
  defined.set(def.name, frozen);
  return frozen;
}

/**
 * Every op defined so far in this process, in definition order (the ops of
 * `ops/mod.ts` once it is imported, plus any defined by the program).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { definedOps } from "./ir.ts";
 * import "../ops/mod.ts";
 * strictEqual(definedOps().some((op) => op.name === "matmul"), true);
 * ```
 */
export function definedOps(): OpDef[] {
  return [...defined.values()];
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

/** Row-major strides of a shape (the last axis has stride 1). */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
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
 * import { deepStrictEqual } from "node:assert/strict";
 * import { makeNode } from "./ir.ts";
 * import { input } from "../ops/leaf.ts";
 * import { exp } from "../ops/elementwise.ts";
 * const x = makeNode(input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * const y = makeNode(exp, [x]);
 * deepStrictEqual(y.shape, [2, 3]);
 * ```
 */
export function makeNode(
  def: OpDef,
  inputs: readonly Node[],
  attrs: Attrs = {},
  name?: string,
): Node {
  const op = def.name;
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
    def,
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
 * import { strictEqual } from "node:assert/strict";
 * import { makeNode, topoSort } from "./ir.ts";
 * import { input } from "../ops/leaf.ts";
 * import { neg } from "../ops/elementwise.ts";
 * const x = makeNode(input, [], { shape: [2], dtype: "f32" }, "x");
 * strictEqual(topoSort([makeNode(neg, [x])]).length, 2);
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
 * import { deepStrictEqual } from "node:assert/strict";
 * import { makeGraph, makeNode } from "./ir.ts";
 * import { input } from "../ops/leaf.ts";
 * import { exp } from "../ops/elementwise.ts";
 * const x = makeNode(input, [], { shape: [2], dtype: "f32" }, "x");
 * const g = makeGraph({ inputs: [x], outputs: { y: makeNode(exp, [x]) } });
 * deepStrictEqual(Object.keys(g.outputs), ["y"]);
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
