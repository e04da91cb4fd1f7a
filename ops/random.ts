/**
 * Counter-based randomness: the `random` leaf (a tensor defined by a seed, a
 * stream and a bound — it has no storage) and seeded `dropout`. Both use
 * Threefry-2x32-20, so the TypeScript reference and every kernel (built from
 * the kernel IR's Threefry, `prng/threefry_kernel.ts`) agree bit for bit.
 */
import { checkShape, defineOp, makeNode, type Node, type OpDef, sizeOf } from "../compiler/ir.ts";
import { f32, mul, select, u32 } from "../compiler/kernel_ir/mod.ts";
import { dropoutKeepExpr, threefryKeyExpr, uniformSymmetricExpr } from "../prng/threefry_kernel.ts";
import { randomBits, uniformSymmetric } from "../prng/threefry.ts";
import { allocData, opError } from "./rules.ts";

function checkU32(op: string, what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= 2 ** 32) {
    throw new Error(`${op}: ${what} must be an integer in [0, 2^32), got ${v}`);
  }
  return v;
}

export const random: OpDef = defineOp({
  name: "random",
  kind: "random",
  infer: (inputs, attrs) => {
    if (inputs.length !== 0) opError("random", "is a leaf", inputs);
    checkU32("random", "seed", attrs.seed);
    checkU32("random", "stream", attrs.stream);
    if (attrs.distribution !== "uniformSymmetric") {
      throw new Error(`random: unknown distribution ${JSON.stringify(attrs.distribution)}`);
    }
    const bound = attrs.bound as number;
    if (typeof bound !== "number" || !(bound > 0) || !Number.isFinite(bound)) {
      throw new Error(`random: bound must be a finite number > 0, got ${bound}`);
    }
    return { shape: checkShape(attrs.shape as number[], "random"), dtype: "f32" };
  },
  cpu: (_inputs, { node }) => {
    const { seed, stream, bound } = node.attrs as { seed: number; stream: number; bound: number };
    return Float64Array.from(uniformSymmetric(seed, stream, sizeOf(node.shape), bound));
  },
  noGradient: "a frozen random projection",
  lowering: "inline",
  inline: (node, at, ctx) =>
    uniformSymmetricExpr(
      node.attrs as { seed: number; stream: number; bound: number },
      ctx.linear(at),
    ),
});

/** The keep threshold and scale of dropout with drop probability `p`, as f32 values. */
export function dropoutConstants(p: number): { threshold: number; scale: number } {
  return { threshold: Math.fround(p), scale: p >= 1 ? 0 : Math.fround(1 / (1 - p)) };
}

export const dropout: OpDef = defineOp({
  name: "dropout",
  kind: "random",
  infer: (inputs, attrs) => {
    const [x, seed] = inputs;
    if (
      inputs.length !== 2 || x.dtype !== "f32" || seed.dtype !== "u32" || seed.shape.length !== 0
    ) {
      opError("dropout", "takes (x: f32, seed: u32 scalar)", inputs);
    }
    const p = attrs.p as number;
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
      throw new Error(`dropout: p must be in [0, 1], got ${p}`);
    }
    checkU32("dropout", "stream", attrs.stream);
    return x;
  },
  cpu: ([x, seed], { node }) => {
    const { p, stream } = node.attrs as { p: number; stream: number };
    const { threshold, scale } = dropoutConstants(p);
    const words = randomBits(seed.data[0], stream, 0, x.data.length);
    const out = allocData("f32", x.data.length);
    for (let i = 0; i < out.length; i++) {
      const u = (words[i] >>> 8) / 16777216;
      out[i] = u >= threshold ? x.data[i] * scale : 0;
    }
    return out;
  },
  // For a fixed mask dropout is linear in x: its vjp is the same dropout of g.
  vjp: (node, g) => [
    makeDropout(g, node.inputs[1], node.attrs.p as number, node.attrs.stream as number),
    null,
  ],
  lowering: "inline",
  inline: (node, at, ctx) => {
    const { threshold, scale } = dropoutConstants(node.attrs.p as number);
    const x = ctx.value(node.inputs[0], at);
    const seed = ctx.value(node.inputs[1], { shape: [], linear: u32(0) });
    const key = threefryKeyExpr(node.attrs.stream as number, seed);
    const keep = dropoutKeepExpr(key, ctx.linear(at), threshold);
    return select(keep, mul(x, f32(scale)), f32(0));
  },
});

function makeDropout(x: Node, seed: Node, p: number, stream: number): Node {
  return makeNode(dropout, [x, seed], { p, stream });
}
