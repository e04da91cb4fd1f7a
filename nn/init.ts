/**
 * Parameter initialisation from the `init` descriptors params carry, with a
 * counter-based generator: each param draws from its own stream (a hash of
 * its module path), so adding a layer never changes the others' values.
 *
 * @module
 */
import type { Graph, Node } from "../compiler/ir.ts";
import { sizeOf } from "../compiler/ir.ts";
import type { ParamInit } from "../compiler/trace.ts";
import { randomBits } from "../prng/threefry.ts";

/** FNV-1a hash of a string: the stream id of a param. */
export function nameStream(name: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Fills one param's values from its descriptor. */
export function initValue(node: Node, seed: number): Float32Array {
  const init = node.attrs.init as unknown as ParamInit;
  const n = sizeOf(node.shape);
  const out = new Float32Array(n);
  switch (init.kind) {
    case "zeros":
      return out;
    case "ones":
      return out.fill(1);
    case "constant":
      return out.fill(init.value);
    case "uniform": {
      const words = randomBits(seed, nameStream(node.name!), 0, n);
      for (let i = 0; i < n; i++) out[i] = ((words[i] >>> 8) / 2 ** 24 * 2 - 1) * init.bound;
      return out;
    }
    case "normal": {
      // Box–Muller on pairs of 24-bit uniforms; u1 is shifted off zero so log() stays finite.
      const words = randomBits(seed, nameStream(node.name!), 0, 2 * n);
      for (let i = 0; i < n; i++) {
        const u1 = ((words[2 * i] >>> 8) + 1) / 2 ** 24;
        const u2 = (words[2 * i + 1] >>> 8) / 2 ** 24;
        out[i] = init.std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      }
      return out;
    }
    default:
      throw new Error(`param "${node.name}": unknown init ${JSON.stringify(init)}`);
  }
}

/**
 * Initial values for every param of a graph (f32), keyed by module path.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "../compiler/trace.ts";
 * import { initParams } from "./init.ts";
 * const g = trace((x) => x.mul(param("w", [2], { init: { kind: "ones" } })), [{ name: "x", shape: [2] }]);
 * deepStrictEqual(initParams(g, { seed: 0 }).w, new Float32Array([1, 1]));
 * ```
 */
export function initParams(
  graph: Graph,
  options: { seed?: number } = {},
): Record<string, Float32Array> {
  const seed = options.seed ?? 0;
  return Object.fromEntries(graph.params.map((p) => [p.name!, initValue(p, seed)]));
}
