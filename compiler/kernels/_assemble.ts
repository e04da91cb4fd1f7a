// Assembling a kernel program: the buffers a kernel writes and reads, the
// value scope that maps nodes to those buffers, helper functions that load
// or store node values, and the lowered form every family returns.

import { formatType, type Node } from "../ir.ts";
import {
  type Body,
  defineFunction,
  type Expr,
  type KernelBuffer,
  type KernelFunction,
  type KernelProgram,
  NodeValues,
  type SharedArray,
  type Stmt,
  storageType,
  storedValue,
  type ValueScope,
} from "../kernel_ir/mod.ts";
import { splitDispatch } from "../kernel_ir/dispatch.ts";

/**
 * A kernel program and the node bound at each of its buffers.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { elementwiseKernel } from "./elementwise.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * const lowered = elementwiseKernel([y], [x]);
 * deepStrictEqual(lowered.nodes.map((n) => n.op), ["exp", "input"]);
 * deepStrictEqual(lowered.outputs, [y]);
 * ```
 */
export interface LoweredKernel {
  /** The kernel, in the kernel IR. */
  readonly program: KernelProgram;
  /** `nodes[i]` is the tensor bound at `@binding(i)`. */
  readonly nodes: readonly Node[];
  /** The nodes the kernel writes (a subset of `nodes`). */
  readonly outputs: readonly Node[];
}

/**
 * The buffers of a kernel writing `outputs` and reading `reads`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { bindingSet } from "./_assemble.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "bool" }, "x");
 * deepStrictEqual(bindingSet([], [x]).buffers, [{ name: "in0", access: "read", element: "u32" }]);
 * ```
 */
export interface BindingSet {
  /** The node bound at each binding: outputs first, then reads. */
  readonly nodes: readonly Node[];
  /** The buffers, in the same order. */
  readonly buffers: readonly KernelBuffer[];
  /** Maps read nodes to their buffers (outputs are computed, never read back). */
  readonly scope: ValueScope;
}

/**
 * Declares `out0..` (read-write) then `in0..` (read-only).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { bindingSet } from "./_assemble.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * deepStrictEqual(bindingSet([y], [x]).buffers.map((b) => b.name), ["out0", "in0"]);
 * ```
 */
export function bindingSet(outputs: readonly Node[], reads: readonly Node[]): BindingSet {
  const names = new Map<number, string>();
  const nodes = [...outputs, ...reads];
  const buffers = nodes.map((n, i): KernelBuffer => {
    const write = i < outputs.length;
    const name = write ? `out${i}` : `in${i - outputs.length}`;
    if (!write) names.set(n.id, name);
    return { name, access: write ? "read_write" : "read", element: storageType(n.dtype) };
  });
  return { nodes, buffers, scope: { bufferOf: (n) => names.get(n.id) } };
}

/**
 * A readable name for the nodes a kernel computes: `add#12 f32[2,5,8] (reads layers.0.ln1.bias)`.
 *
 * @example
 * ```ts
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { labelOf } from "./_assemble.ts";
 * const b = makeNode(ops.param, [], { shape: [3], dtype: "f32", role: "trainable" }, "fc.bias");
 * console.log(labelOf([makeNode(ops.neg, [b], {})], [b])); // neg#… f32[3] (reads fc.bias)
 * ```
 */
export function labelOf(roots: readonly Node[], reads: readonly Node[] = []): string {
  const what = roots.map((n) => `${n.op}#${n.id}${n.name ? ` "${n.name}"` : ""} ${formatType(n)}`)
    .join(", ");
  const named = reads.filter((n) => n.name !== undefined).map((n) => n.name);
  return named.length === 0
    ? what
    : `${what} (reads ${named.slice(0, 4).join(", ")}${named.length > 4 ? ", ..." : ""})`;
}

/**
 * The lowered form of a program: the program and the nodes at its buffers.
 * Every family ends with this.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { bindingSet, lowered } from "./_assemble.ts";
 * const x = makeNode(ops.input, [], { shape: [4], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * const set = bindingSet([y], [x]);
 * const k = lowered({ family: "demo", label: "demo", buffers: set.buffers, shared: [],
 *   workgroupSize: [64, 1, 1], dispatch: [1, 1, 1], body: [] }, set, [y]);
 * strictEqual(k.program.family, "demo");
 * ```
 */
export function lowered(
  program: KernelProgram,
  set: Pick<BindingSet, "nodes">,
  outputs: readonly Node[],
): LoweredKernel {
  return { program, nodes: set.nodes, outputs };
}

/**
 * A 1-D kernel: `groups` workgroups of `width` invocations over the buffers
 * of `set`, running `body`, labelled by what it computes.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { bindingSet, linearKernel } from "./_assemble.ts";
 * import { makeNode } from "../ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * const set = bindingSet([y], [x]);
 * const k = linearKernel({ family: "demo", set, width: 64, groups: 1, roots: [y], reads: [x], body: [] });
 * deepStrictEqual(k.program.dispatch, [1, 1, 1]);
 * ```
 */
export function linearKernel(parts: {
  family: string;
  set: BindingSet;
  width: number;
  groups: number;
  roots: readonly Node[];
  reads: readonly Node[];
  body: readonly Stmt[];
  shared?: readonly SharedArray[];
}): LoweredKernel {
  const program: KernelProgram = {
    family: parts.family,
    label: labelOf(parts.roots, parts.reads),
    buffers: parts.set.buffers,
    shared: parts.shared ?? [],
    workgroupSize: [parts.width, 1, 1],
    dispatch: linearDispatch(parts.groups),
    body: parts.body,
  };
  return lowered(program, parts.set, parts.roots);
}

/**
 * Dispatch for `count` workgroups of a 1-D kernel (empty when count is 0).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { linearDispatch } from "./_assemble.ts";
 * deepStrictEqual(linearDispatch(0), [0, 0, 0]);
 * deepStrictEqual(linearDispatch(70000), [35000, 2, 1]);
 * ```
 */
export function linearDispatch(count: number): readonly [number, number, number] {
  return count === 0 ? [0, 0, 0] : splitDispatch(count);
}

/**
 * `fn name(index: u32, acc: T)`: writes a kernel op's value to each output —
 * the op itself, or an epilogue root computed from `acc` at the same flat
 * index (`roots[k]` is `out{firstOutput + k}`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { bindingSet, storeFunction } from "./_assemble.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * const s = makeNode(ops.softmax, [x], {});
 * const y = makeNode(ops.neg, [s], {});
 * const store = storeFunction(s, [s, y], bindingSet([s, y], [x]).scope);
 * strictEqual(store.body.filter((st) => st.kind === "store").length, 2);
 * ```
 */
export function storeFunction(
  op: Node,
  roots: readonly Node[],
  scope: ValueScope,
  options: { name?: string; firstOutput?: number } = {},
): KernelFunction {
  const first = options.firstOutput ?? 0;
  return defineFunction(
    options.name ?? "store",
    [["index", "u32"], ["acc", op.dtype]],
    undefined,
    ([index, acc], body) => {
      const values = new NodeValues(body, { ...scope, acc: { node: op, value: acc, index } });
      roots.forEach((root, k) => {
        const v = root === op ? acc : values.value(root, { shape: root.shape, linear: index });
        body.store(`out${first + k}`, index, storedValue(v, root.dtype));
      });
    },
  );
}

/**
 * `fn name(i: u32) -> T`: the value of `node` at flat index `i`, reading
 * materialized tensors through `scope`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { valueFunction } from "./_assemble.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const f = valueFunction("load", makeNode(ops.neg, [x], {}), { bufferOf: (n) => (n === x ? "in0" : undefined) });
 * strictEqual(f.returns, "f32");
 * ```
 */
export function valueFunction(name: string, node: Node, scope: ValueScope): KernelFunction {
  return defineFunction(name, [["i", "u32"]], node.dtype, ([i], body) => {
    const v = new NodeValues(body, scope).value(node, { shape: node.shape, linear: i });
    body.return(v);
  });
}

/**
 * The statements storing the value of each root at flat index `index`
 * (`roots[k]` into `out{k}`), computing what is inline into `body`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import * as ops from "../../ops/mod.ts";
 * import { makeNode } from "../ir.ts";
 * import { Body, ref } from "../kernel_ir/mod.ts";
 * import { storeRoots } from "./_assemble.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const body = new Body();
 * storeRoots(body, [makeNode(ops.neg, [x], {})], { bufferOf: (n) => (n === x ? "in0" : undefined) }, ref("i", "u32"));
 * strictEqual(body.stmts.at(-1)?.kind, "store");
 * ```
 */
export function storeRoots(
  body: Body,
  roots: readonly Node[],
  scope: ValueScope,
  index: Expr,
): void {
  const values = new NodeValues(body, scope);
  const stored = roots.map((root) =>
    storedValue(values.value(root, { shape: root.shape, linear: index }), root.dtype)
  );
  stored.forEach((v, k) => body.store(`out${k}`, index, v));
}
