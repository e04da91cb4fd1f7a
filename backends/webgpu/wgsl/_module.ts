// Assembling a kernel module: binding declarations for the nodes a kernel
// writes and reads, the value scope that maps nodes to those bindings, the
// key (a hash of the WGSL, so equal kernels share one pipeline) and a label
// naming the graph nodes for error messages.

import { formatType, type Node } from "../../../compiler/ir.ts";
import {
  type Kernel,
  type KernelBinding,
  kernelKey,
  splitDispatch,
  wgslBindingDecl,
} from "./kernel.ts";
import { storageType, storeValue, u32, ValueEmitter, type ValueScope } from "./value_emitter.ts";
import { THREEFRY_WGSL } from "./threefry.ts";

/**
 * A kernel and the node bound at each of its bindings.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * import { elementwiseKernel } from "./elementwise.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * const lowered = elementwiseKernel([y], [x]);
 * console.log(lowered.nodes.map((n) => n.op), lowered.outputs.length); // ["exp", "input"] 1
 * ```
 */
export interface LoweredKernel {
  /** The kernel as data. */
  readonly kernel: Kernel;
  /** `nodes[i]` is the tensor bound at `@binding(i)`. */
  readonly nodes: readonly Node[];
  /** The nodes the kernel writes (a subset of `nodes`). */
  readonly outputs: readonly Node[];
}

/**
 * Binding names and declarations for a kernel writing `outputs` and reading `reads`.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * import { bindingSet } from "./_module.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "bool" }, "x");
 * console.log(bindingSet([], [x]).decls[0]); // @group(0) @binding(0) var<storage, read> in0: array<u32>;
 * ```
 */
export interface BindingSet {
  /** The node bound at each binding: outputs first, then reads. */
  readonly nodes: readonly Node[];
  /** The bindings, in the same order. */
  readonly bindings: readonly KernelBinding[];
  /** Their WGSL declarations. */
  readonly decls: readonly string[];
  /** Maps read nodes to their arrays (outputs are computed, never read back). */
  readonly scope: ValueScope;
}

/**
 * Declares `out0..` (read-write) then `in0..` (read-only); `acc` is the
 * kernel op whose value an epilogue gets.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * import { bindingSet } from "./_module.ts";
 * const x = makeNode(ops.input, [], { shape: [3], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * console.log(bindingSet([y], [x]).bindings); // [{ name: "out0", type: "storage" }, { name: "in0", ... }]
 * ```
 */
export function bindingSet(
  outputs: readonly Node[],
  reads: readonly Node[],
  acc?: Node,
): BindingSet {
  const names = new Map<number, string>();
  const bindings: KernelBinding[] = [];
  const decls: string[] = [];
  const nodes = [...outputs, ...reads];
  nodes.forEach((n, i) => {
    const write = i < outputs.length;
    const binding: KernelBinding = write
      ? { name: `out${i}`, type: "storage" }
      : { name: `in${i - outputs.length}`, type: "storage-read" };
    if (!write) names.set(n.id, binding.name);
    bindings.push(binding);
    decls.push(wgslBindingDecl(binding, i, `array<${storageType(n.dtype)}>`));
  });
  return { nodes, bindings, decls, scope: { bufferOf: (n) => names.get(n.id), accNode: acc } };
}

/**
 * The whole module: declarations, helper functions (plus Threefry when used) and the entry point.
 *
 * @example
 * ```ts
 * import { moduleText } from "./_module.ts";
 * const wgsl = moduleText({ decls: [], main: "@compute @workgroup_size(1) fn main() {}" });
 * ```
 */
export function moduleText(parts: {
  decls: readonly string[];
  functions?: readonly string[];
  threefry?: boolean;
  main: string;
}): string {
  return [
    ...parts.decls,
    ...(parts.threefry ? [THREEFRY_WGSL.trim()] : []),
    ...(parts.functions ?? []),
    parts.main,
    "",
  ].join("\n\n");
}

/**
 * Indents lines of a function body.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { indent } from "./_module.ts";
 * strictEqual(indent(["let a = 1;", "let b = 2;"]), "  let a = 1;\n  let b = 2;");
 * ```
 */
export function indent(lines: readonly string[], by = "  "): string {
  return lines.map((l) => `${by}${l}`).join("\n");
}

/**
 * A readable name for the nodes a kernel computes: `add#12 f32[2,5,8] (reads layers.0.ln1.bias)`.
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * import { labelOf } from "./_module.ts";
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
 * A Kernel whose key is `family:hash(wgsl)`: equal modules share a pipeline.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { makeKernel } from "./_module.ts";
 * const parts = { family: "noop", wgsl: "@compute @workgroup_size(1) fn main() {}", bindings: [], label: "noop" };
 * const a = makeKernel({ ...parts, workgroupSize: [1, 1, 1], dispatch: [1, 1, 1] });
 * const b = makeKernel({ ...parts, workgroupSize: [1, 1, 1], dispatch: [4, 1, 1] });
 * strictEqual(a.key === b.key, true);
 * ```
 */
export function makeKernel(parts: {
  family: string;
  wgsl: string;
  bindings: readonly KernelBinding[];
  workgroupSize: readonly [number, number, number];
  dispatch: readonly [number, number, number];
  label: string;
}): Kernel {
  return {
    key: kernelKey(parts.family, parts.bindings, parts.wgsl),
    wgsl: parts.wgsl,
    bindings: parts.bindings,
    workgroupSize: parts.workgroupSize,
    dispatch: parts.dispatch,
    label: parts.label,
  };
}

/**
 * The lowered form of a 1-D kernel: `groups` workgroups of `width`
 * invocations over the bindings of `set`, labelled by what it computes.
 * Every family of generated kernel ends with this.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import * as ops from "../../../ops/mod.ts";
 * import { bindingSet, linearKernel } from "./_module.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * const x = makeNode(ops.input, [], { shape: [4], dtype: "f32" }, "x");
 * const y = makeNode(ops.exp, [x], {});
 * const set = bindingSet([y], [x]);
 * const lowered = linearKernel({ family: "demo", wgsl: "", set, width: 64, groups: 1, roots: [y], reads: [x] });
 * deepStrictEqual(lowered.kernel.dispatch, [1, 1, 1]);
 * ```
 */
export function linearKernel(parts: {
  family: string;
  wgsl: string;
  set: BindingSet;
  width: number;
  groups: number;
  roots: readonly Node[];
  reads: readonly Node[];
}): LoweredKernel {
  return {
    kernel: makeKernel({
      family: parts.family,
      wgsl: parts.wgsl,
      bindings: parts.set.bindings,
      workgroupSize: [parts.width, 1, 1],
      dispatch: linearDispatch(parts.groups),
      label: labelOf(parts.roots, parts.reads),
    }),
    nodes: parts.set.nodes,
    outputs: parts.roots,
  };
}

/**
 * Dispatch for `count` workgroups of a 1-D kernel (empty when count is 0).
 *
 * @example
 * ```ts
 * import { linearDispatch } from "./_module.ts";
 * console.log(linearDispatch(0), linearDispatch(70000)); // [0, 0, 0] [35000, 2, 1]
 * ```
 */
export function linearDispatch(count: number): readonly [number, number, number] {
  return count === 0 ? [0, 0, 0] : splitDispatch(count);
}

/**
 * The entry-point parameters every 1-D kernel declares.
 *
 * @example
 * ```ts
 * import { MAIN_PARAMS } from "./_module.ts";
 * const main = `@compute @workgroup_size(64) fn main(${MAIN_PARAMS}) {}`;
 * ```
 */
export const MAIN_PARAMS =
  "@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, " +
  "@builtin(local_invocation_index) lid: u32";

/**
 * `fn store(index: u32, acc: T)`: writes a kernel op's value to each output —
 * the op itself, or an epilogue root computed from `acc` at the same flat
 * index (`roots[k]` is `out{firstOutput + k}`).
 *
 * @example
 * ```ts
 * import * as ops from "../../../ops/mod.ts";
 * import { makeNode } from "../../../compiler/ir.ts";
 * import { bindingSet, storeFunction } from "./_module.ts";
 * const x = makeNode(ops.input, [], { shape: [2, 3], dtype: "f32" }, "x");
 * const s = makeNode(ops.softmax, [x], {});
 * const y = makeNode(ops.neg, [s], {});
 * console.log(storeFunction(s, [s, y], bindingSet([s, y], [x]).scope).wgsl);
 * ```
 */
export function storeFunction(
  op: Node,
  roots: readonly Node[],
  scope: ValueScope,
  options: { name?: string; firstOutput?: number } = {},
): { wgsl: string; usesThreefry: boolean } {
  const emitter = new ValueEmitter({ bufferOf: scope.bufferOf, accNode: op });
  const first = options.firstOutput ?? 0;
  const stores = roots.map((root, k) => {
    const v = root === op ? "acc" : emitter.value(root, { shape: root.shape, linear: "index" });
    return `out${first + k}[index] = ${storeValue(v, root.dtype)};`;
  });
  const body = indent([...emitter.lines, ...stores]);
  return {
    wgsl: `fn ${options.name ?? "store"}(index: u32, acc: ${op.dtype}) {\n${body}\n}`,
    usesThreefry: emitter.usesThreefry,
  };
}

/** One lane of {@link workgroupTree}: a workgroup array and how two of its values combine. */
export interface TreeLane {
  /** The `var<workgroup>` array, one slot per invocation. */
  readonly array: string;
  /** The WGSL expression combining two values (`a + b`, `max(a, b)`, ...). */
  readonly combine: (a: string, b: string) => string;
}

/**
 * The one workgroup tree reduction every kernel family uses: after each
 * invocation `lid` has written slot `lid` of every lane's array (`width`
 * slots, a power of two), these lines leave each lane's total in slot 0,
 * visible to the whole workgroup.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { workgroupTree } from "./_module.ts";
 * const lines = workgroupTree(64, [{ array: "partial", combine: (a, b) => `${a} + ${b}` }]);
 * strictEqual(lines[3], "    partial[lid] = partial[lid] + partial[lid + s];");
 * ```
 */
export function workgroupTree(width: number, lanes: readonly TreeLane[]): string[] {
  return [
    "workgroupBarrier();",
    `for (var s = ${u32(width >> 1)}; s > 0u; s = s >> 1u) {`,
    "  if (lid < s) {",
    ...lanes.map((l) =>
      `    ${l.array}[lid] = ${l.combine(`${l.array}[lid]`, `${l.array}[lid + s]`)};`
    ),
    "  }",
    "  workgroupBarrier();",
    "}",
  ];
}
