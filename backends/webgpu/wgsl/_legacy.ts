// TEMPORARY bridge while the kernel families move to the kernel IR: the old
// string-template helpers, implemented over the IR where they compute node
// values. Deleted once no family imports it.

import type { DType, Node } from "../../../compiler/ir.ts";
import { Body, lit, NodeValues, ref, type ValueScope } from "../../../compiler/kernel_ir/mod.ts";
import { type KernelBinding, kernelKey, splitDispatch, wgslBindingDecl } from "./kernel.ts";
import { exprText, functionText, literalText, stmtLines } from "./render.ts";
import { THREEFRY_WGSL } from "./threefry.ts";
import {
  labelOf,
  type LoweredKernel,
  storeFunction as storeFunctionIR,
  valueFunction as valueFunctionIR,
} from "./_module.ts";

export const u32 = (n: number): string => `${n}u`;

export function literal(value: number, dtype: DType): string {
  return exprText(lit(dtype === "bool" ? (value !== 0 ? 1 : 0) : value, dtype));
}

const usesThreefry = (text: string) => /uniform_symmetric|dropout_keep/.test(text);

export function valueFunction(name: string, node: Node, scope: ValueScope) {
  const wgsl = functionText(valueFunctionIR(name, node, scope));
  return { wgsl, usesThreefry: usesThreefry(wgsl) };
}

export function storeFunction(
  op: Node,
  roots: readonly Node[],
  scope: ValueScope,
  options: { name?: string; firstOutput?: number } = {},
) {
  const wgsl = functionText(storeFunctionIR(op, roots, scope, options));
  return { wgsl, usesThreefry: usesThreefry(wgsl) };
}

/** The body text of `fn (acc: f32, index: u32) -> f32` computing `root` from the matmul `m`. */
export function epilogueBody(root: Node, m: Node, bufferOf: (n: Node) => string | undefined) {
  const body = new Body();
  const values = new NodeValues(body, {
    bufferOf,
    acc: { node: m, value: ref("acc", "f32"), index: ref("index", "u32") },
  });
  const v = values.value(root, { shape: root.shape, linear: ref("index", "u32") });
  const lines = [...body.stmts.flatMap((s) => stmtLines(s, "  ")), `  return ${exprText(v)};`];
  const text = lines.join("\n");
  return { text, usesThreefry: usesThreefry(text) };
}

export interface LegacyBindingSet {
  readonly nodes: readonly Node[];
  readonly bindings: readonly KernelBinding[];
  readonly decls: readonly string[];
  readonly scope: ValueScope;
}

export function bindingSet(outputs: readonly Node[], reads: readonly Node[]): LegacyBindingSet {
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
    decls.push(wgslBindingDecl(binding, i, `array<${n.dtype === "bool" ? "u32" : n.dtype}>`));
  });
  return { nodes, bindings, decls, scope: { bufferOf: (n) => names.get(n.id) } };
}

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

export function indent(lines: readonly string[], by = "  "): string {
  return lines.map((l) => `${by}${l}`).join("\n");
}

export const MAIN_PARAMS =
  "@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, " +
  "@builtin(local_invocation_index) lid: u32";

export interface TreeLane {
  readonly array: string;
  readonly combine: (a: string, b: string) => string;
}

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

export function linearKernel(parts: {
  family: string;
  wgsl: string;
  set: LegacyBindingSet;
  width: number;
  groups: number;
  roots: readonly Node[];
  reads: readonly Node[];
}): LoweredKernel {
  return {
    kernel: {
      key: kernelKey(parts.family, parts.set.bindings, parts.wgsl),
      wgsl: parts.wgsl,
      bindings: parts.set.bindings,
      workgroupSize: [parts.width, 1, 1],
      dispatch: parts.groups === 0 ? [0, 0, 0] : splitDispatch(parts.groups),
      label: labelOf(parts.roots, parts.reads),
    },
    nodes: parts.set.nodes,
    outputs: parts.roots,
  };
}

export { literalText };
export { labelOf, type LoweredKernel };
