/**
 * Reverse-mode autodiff as a Graph → Graph transform. Cotangents flow only
 * through nodes that depend on something being differentiated, so frozen
 * weights and inputs nobody asked about get no gradient work at all.
 *
 * @module
 */
import { formatType, type Graph, makeGraph, type Node, topoSort } from "./ir.ts";
import "../ops/mod.ts";
import { add, fill } from "../ops/build.ts";

/** Options of {@link grad} and {@link valueAndGrad}. */
export interface GradOptions {
  /** The scalar output to differentiate (default: `loss`, or the only output). */
  readonly of?: string;
  /** Param names to differentiate with respect to (default: every trainable param). */
  readonly wrt?: readonly string[];
  /** Input names to differentiate with respect to as well (default: none). */
  readonly inputs?: readonly string[];
}

/** The output name under which the gradient of `name` is returned: `grad:<name>`. */
export function gradName(name: string): string {
  return `grad:${name}`;
}

function pickOutput(graph: Graph, of: string | undefined): Node {
  const names = Object.keys(graph.outputs);
  const name = of ?? (names.includes("loss") ? "loss" : names.length === 1 ? names[0] : undefined);
  if (name === undefined || graph.outputs[name] === undefined) {
    throw new Error(
      `grad: no output ${of ?? "loss"} to differentiate (outputs: ${names.join(", ")})`,
    );
  }
  const out = graph.outputs[name];
  if (out.shape.length !== 0 || out.dtype !== "f32") {
    throw new Error(`grad: output "${name}" must be an f32 scalar, got ${formatType(out)}`);
  }
  return out;
}

function pickLeaves(graph: Graph, options: GradOptions): Node[] {
  const byName = new Map(graph.params.map((p) => [p.name!, p]));
  const wrt = options.wrt ??
    graph.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name!);
  const leaves = wrt.map((name) => {
    const p = byName.get(name);
    if (p === undefined) {
      throw new Error(
        `grad: no param "${name}" (params: ${[...byName.keys()].join(", ") || "none"})`,
      );
    }
    if (p.attrs.role !== "trainable") throw new Error(`grad: param "${name}" is frozen`);
    return p;
  });
  for (const name of options.inputs ?? []) {
    const input = graph.inputs.find((n) => n.name === name);
    if (input === undefined) throw new Error(`grad: no input "${name}"`);
    if (input.dtype !== "f32") throw new Error(`grad: input "${name}" is ${input.dtype}, not f32`);
    leaves.push(input);
  }
  return leaves;
}

/** Builds the gradient nodes of `out` for each leaf (zeros where it does not depend on it). */
export function gradients(out: Node, leaves: readonly Node[]): Node[] {
  const targets = new Set(leaves.map((n) => n.id));
  const order = topoSort([out]);
  const needs = new Set<number>();
  for (const node of order) {
    if (targets.has(node.id) || node.inputs.some((i) => needs.has(i.id))) needs.add(node.id);
  }
  const cotangents = new Map<number, Node>([[out.id, fill(1, [])]]);
  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k];
    const g = cotangents.get(node.id);
    if (g === undefined || node.inputs.length === 0 || !needs.has(node.id)) continue;
    const def = node.def;
    if (def.vjp === undefined) {
      throw new Error(
        `grad: op ${node.op} has no gradient rule (${def.noGradient}); node ${formatType(node)}`,
      );
    }
    const wants = node.inputs.map((i) => needs.has(i.id));
    const cots = def.vjp(node, g, wants);
    node.inputs.forEach((input, i) => {
      const c = cots[i];
      if (!wants[i] || c === null || c === undefined) return;
      if (c.shape.join() !== input.shape.join() || c.dtype !== input.dtype) {
        throw new Error(
          `grad: vjp of ${node.op} gave ${formatType(c)} for operand ${i} of type ${
            formatType(input)
          }`,
        );
      }
      const prev = cotangents.get(input.id);
      cotangents.set(input.id, prev === undefined ? c : add(prev, c));
    });
  }
  return leaves.map((leaf) => cotangents.get(leaf.id) ?? fill(0, leaf.shape, leaf.dtype));
}

/**
 * The gradient graph: outputs `grad:<name>` for every trainable param (or
 * those in `wrt`) and every input in `inputs`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "./trace.ts";
 * import { grad } from "./autodiff.ts";
 * const g = trace((x) => x.mul(param("w", [3])).sum(), [{ name: "x", shape: [3] }]);
 * deepStrictEqual(Object.keys(grad(g).outputs), ["grad:w"]);
 * ```
 */
export function grad(graph: Graph, options: GradOptions = {}): Graph {
  const out = pickOutput(graph, options.of);
  const leaves = pickLeaves(graph, options);
  const grads = gradients(out, leaves);
  const outputs = Object.fromEntries(leaves.map((leaf, i) => [gradName(leaf.name!), grads[i]]));
  return makeGraph({ inputs: graph.inputs, outputs, meta: graph.meta });
}

/**
 * Like {@link grad}, but keeps the original outputs beside the gradients.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "./trace.ts";
 * import { valueAndGrad } from "./autodiff.ts";
 * const g = trace((x) => ({ loss: x.mul(param("w", [2])).sum() }), [{ name: "x", shape: [2] }]);
 * deepStrictEqual(Object.keys(valueAndGrad(g).outputs), ["loss", "grad:w"]);
 * ```
 */
export function valueAndGrad(graph: Graph, options: GradOptions = {}): Graph {
  const g = grad(graph, options);
  return makeGraph({
    inputs: graph.inputs,
    outputs: { ...graph.outputs, ...g.outputs },
    meta: graph.meta,
  });
}
