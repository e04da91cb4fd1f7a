/**
 * Threefry-2x32 in the kernel IR, so every backend that renders kernels
 * generates the same words as `threefry.ts` bit for bit: only u32 add,
 * rotate and xor, then one exact shift, one exact conversion and one
 * correctly rounded f32 multiply for the float.
 *
 * @module
 */
import {
  add,
  binary,
  call,
  convert,
  defineFunction,
  f32,
  lane,
  mul,
  sub,
  u32,
  vector,
} from "../compiler/kernel_ir/mod.ts";
import type { Expr, KernelFunction } from "../compiler/kernel_ir/ir.ts";

const ROTATIONS_A = [13, 15, 26, 6];
const ROTATIONS_B = [17, 29, 16, 24];
const KEY_SCHEDULE_PARITY = 0x1bd11bda;

const rotl = defineFunction(
  "threefry_rotl",
  [["x", "u32"], ["r", "u32"]],
  "u32",
  ([x, r], b) => b.return(binary("|", binary("<<", x, r), binary(">>", x, sub(u32(32), r)))),
);

const mix = defineFunction("threefry_mix", [["x", "vec2u"], ["r", "u32"]], "vec2u", ([x, r], b) => {
  const sum = b.let(add(lane(x, 0), lane(x, 1)), "sum");
  b.return(vector("vec2u", sum, binary("^", call(rotl, lane(x, 1), r), sum)));
});

function rounds(name: string, rotations: readonly number[]): KernelFunction {
  return defineFunction(
    name,
    [["x", "vec2u"]],
    "vec2u",
    ([x], b) => b.return(rotations.reduce((acc, r) => call(mix, acc, u32(r)), x)),
  );
}

const roundsA = rounds("threefry_rounds_a", ROTATIONS_A);
const roundsB = rounds("threefry_rounds_b", ROTATIONS_B);

const threefry2x32 = defineFunction(
  "threefry2x32",
  [["key", "vec2u"], ["ctr", "vec2u"]],
  "vec2u",
  ([key, ctr], b) => {
    const k0 = b.letNamed("k0", lane(key, 0));
    const k1 = b.letNamed("k1", lane(key, 1));
    const k2 = b.letNamed("k2", binary("^", binary("^", k0, k1), u32(KEY_SCHEDULE_PARITY)));
    const schedule = [k0, k1, k2];
    const x = b.var("vec2u", add(ctr, key), "x");
    for (let injection = 1; injection <= 5; injection++) {
      const mixed = call(injection % 2 === 1 ? roundsA : roundsB, x);
      const s = injection % 3;
      const words = vector("vec2u", schedule[s], add(schedule[(s + 1) % 3], u32(injection)));
      b.assign(x, add(mixed, words));
    }
    b.return(x);
  },
);

const randomWord = defineFunction(
  "random_word",
  [["key", "vec2u"], ["index", "u32"]],
  "u32",
  ([key, index], b) => {
    const x = b.let(call(threefry2x32, key, vector("vec2u", u32(0), index)), "x");
    b.return(binary("^", lane(x, 0), lane(x, 1)));
  },
);

const randomUnit = defineFunction(
  "random_unit",
  [["key", "vec2u"], ["index", "u32"]],
  "f32",
  ([key, index], b) =>
    b.return(
      mul(convert("f32", binary(">>", call(randomWord, key, index), u32(8))), f32(2 ** -24)),
    ),
);

const uniformSymmetricFn = defineFunction(
  "uniform_symmetric",
  [["key", "vec2u"], ["index", "u32"], ["bound", "f32"]],
  "f32",
  ([key, index, bound], b) => {
    const symmetric = b.let(sub(mul(f32(2), call(randomUnit, key, index)), f32(1)), "symmetric");
    b.return(mul(symmetric, bound));
  },
);

const dropoutKeepFn = defineFunction(
  "dropout_keep",
  [["key", "vec2u"], ["index", "u32"], ["p", "f32"]],
  "bool",
  ([key, index, p], b) => b.return(binary(">=", call(randomUnit, key, index), p)),
);

/**
 * The key `[stream, seed]` as a kernel IR vector (`seed` may be computed).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { u32 } from "../compiler/kernel_ir/mod.ts";
 * import { threefryKeyExpr } from "./threefry_kernel.ts";
 * strictEqual(threefryKeyExpr(3, u32(7)).type, "vec2u");
 * ```
 */
export function threefryKeyExpr(stream: number, seed: Expr): Expr {
  return vector("vec2u", u32(stream), seed);
}

/**
 * The value `uniformSymmetric(seed, stream, index, bound)` of `threefry.ts`, in the kernel IR.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ref } from "../compiler/kernel_ir/mod.ts";
 * import { uniformSymmetricExpr } from "./threefry_kernel.ts";
 * const v = uniformSymmetricExpr({ seed: 1, stream: 2, bound: 0.5 }, ref("i", "u32"));
 * strictEqual(v.type, "f32");
 * ```
 */
export function uniformSymmetricExpr(
  random: { readonly seed: number; readonly stream: number; readonly bound: number },
  index: Expr,
): Expr {
  return call(
    uniformSymmetricFn,
    threefryKeyExpr(random.stream >>> 0, u32(random.seed)),
    index,
    f32(random.bound),
  );
}

/**
 * Whether dropout keeps element `index` (`dropoutKeep` of `threefry.ts`), in the kernel IR.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ref, u32 } from "../compiler/kernel_ir/mod.ts";
 * import { dropoutKeepExpr, threefryKeyExpr } from "./threefry_kernel.ts";
 * strictEqual(dropoutKeepExpr(threefryKeyExpr(0, u32(1)), ref("i", "u32"), 0.1).type, "bool");
 * ```
 */
export function dropoutKeepExpr(key: Expr, index: Expr, threshold: number): Expr {
  return call(dropoutKeepFn, key, index, f32(threshold));
}

/**
 * The raw 32-bit word of element `index` (`randomBits` of `threefry.ts`), in the kernel IR.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ref, u32 } from "../compiler/kernel_ir/mod.ts";
 * import { randomWordExpr, threefryKeyExpr } from "./threefry_kernel.ts";
 * strictEqual(randomWordExpr(threefryKeyExpr(0, u32(1)), ref("i", "u32")).type, "u32");
 * ```
 */
export function randomWordExpr(key: Expr, index: Expr): Expr {
  return call(randomWord, key, index);
}

/**
 * The Threefry-2x32-20 block of counter `ctr` under `key` (`threefry2x32` of
 * `threefry.ts`), in the kernel IR: for known-answer tests of the hash itself.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { u32, vector } from "../compiler/kernel_ir/mod.ts";
 * import { threefry2x32Expr, threefryKeyExpr } from "./threefry_kernel.ts";
 * strictEqual(threefry2x32Expr(threefryKeyExpr(0, u32(1)), vector("vec2u", u32(0))).type, "vec2u");
 * ```
 */
export function threefry2x32Expr(key: Expr, ctr: Expr): Expr {
  return call(threefry2x32, key, ctr);
}

/**
 * The uniform float in [0, 1) of element `index`, `(word >> 8) · 2⁻²⁴`
 * (the value `dropoutKeep` of `threefry.ts` compares), in the kernel IR.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ref, u32 } from "../compiler/kernel_ir/mod.ts";
 * import { randomUnitExpr, threefryKeyExpr } from "./threefry_kernel.ts";
 * strictEqual(randomUnitExpr(threefryKeyExpr(0, u32(1)), ref("i", "u32")).type, "f32");
 * ```
 */
export function randomUnitExpr(key: Expr, index: Expr): Expr {
  return call(randomUnit, key, index);
}

/**
 * {@link uniformSymmetricExpr} with the key and bound computed in the kernel
 * (read from a buffer, say), so one kernel serves every seed and bound.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { f32, ref, u32 } from "../compiler/kernel_ir/mod.ts";
 * import { threefryKeyExpr, uniformSymmetricAtExpr } from "./threefry_kernel.ts";
 * const v = uniformSymmetricAtExpr(threefryKeyExpr(0, u32(1)), ref("i", "u32"), f32(0.5));
 * strictEqual(v.type, "f32");
 * ```
 */
export function uniformSymmetricAtExpr(key: Expr, index: Expr, bound: Expr): Expr {
  return call(uniformSymmetricFn, key, index, bound);
}
