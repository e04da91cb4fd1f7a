/**
 * Ready-made elementwise epilogues for `matmulKernel` (matmul.ts), built in
 * the kernel IR: scaling by a row or column vector, bias, residual, a
 * scalar, an activation.
 *
 * @module
 */
import type { MatmulEpilogue, MatmulEpilogueArgs } from "./_matmul_types.ts";
import { geluExpr, reluExpr } from "../../ops/elementwise.ts";
import { add, type Expr, f32, load, mul } from "../kernel_ir/mod.ts";

/** An epilogue reading one f32 buffer, `name`. */
function withBuffer(
  name: string,
  apply: (at: MatmulEpilogueArgs, read: (index: Expr) => Expr) => Expr,
): MatmulEpilogue {
  return {
    bindings: [{ name, type: "storage-read" }],
    apply: (at) => apply(at, (index) => load(name, index, "f32")),
  };
}

/**
 * Multiplies column `col` by `name[col]` (a length-N vector), e.g. VeRA's `lambda_b`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body, ref } from "../kernel_ir/mod.ts";
 * import { scaleColumns } from "./matmul.ts";
 * import { formatExpr } from "../kernel_ir/print.ts";
 * const [acc, row, col, batch, index] = ["acc", "row", "col", "batch", "index"]
 *   .map((n, i) => ref(n, i === 0 ? "f32" : "u32"));
 * const e = scaleColumns("lambda_b");
 * strictEqual(formatExpr(e.apply({ acc, row, col, batch, index }, new Body())), "(acc * lambda_b[col])");
 * ```
 */
export function scaleColumns(name: string): MatmulEpilogue {
  return withBuffer(name, ({ acc, col }, read) => mul(acc, read(col)));
}

/**
 * Multiplies row `row` by `name[row]` (a length-M vector).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body, ref } from "../kernel_ir/mod.ts";
 * import { scaleRows } from "./matmul.ts";
 * import { formatExpr } from "../kernel_ir/print.ts";
 * const [acc, row, col, batch, index] = ["acc", "row", "col", "batch", "index"]
 *   .map((n, i) => ref(n, i === 0 ? "f32" : "u32"));
 * strictEqual(formatExpr(scaleRows("s").apply({ acc, row, col, batch, index }, new Body())), "(acc * s[row])");
 * ```
 */
export function scaleRows(name: string): MatmulEpilogue {
  return withBuffer(name, ({ acc, row }, read) => mul(acc, read(row)));
}

/**
 * Adds `name[col]` (a length-N bias) to every row.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body, ref } from "../kernel_ir/mod.ts";
 * import { addBias } from "./matmul.ts";
 * import { formatExpr } from "../kernel_ir/print.ts";
 * const [acc, row, col, batch, index] = ["acc", "row", "col", "batch", "index"]
 *   .map((n, i) => ref(n, i === 0 ? "f32" : "u32"));
 * strictEqual(formatExpr(addBias("bias").apply({ acc, row, col, batch, index }, new Body())), "(acc + bias[col])");
 * ```
 */
export function addBias(name: string): MatmulEpilogue {
  return withBuffer(name, ({ acc, col }, read) => add(acc, read(col)));
}

/**
 * Adds `name[index]`, another `[batch, M, N]` tensor laid out like C (a residual).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body, ref } from "../kernel_ir/mod.ts";
 * import { addResidual } from "./matmul.ts";
 * import { formatExpr } from "../kernel_ir/print.ts";
 * const [acc, row, col, batch, index] = ["acc", "row", "col", "batch", "index"]
 *   .map((n, i) => ref(n, i === 0 ? "f32" : "u32"));
 * strictEqual(formatExpr(addResidual("x").apply({ acc, row, col, batch, index }, new Body())), "(acc + x[index])");
 * ```
 */
export function addResidual(name: string): MatmulEpilogue {
  return withBuffer(name, ({ acc, index }, read) => add(acc, read(index)));
}

/**
 * Multiplies by a constant (rounded to f32, baked into the kernel and its key).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body, ref } from "../kernel_ir/mod.ts";
 * import { scaleBy } from "./matmul.ts";
 * import { formatExpr } from "../kernel_ir/print.ts";
 * const [acc, row, col, batch, index] = ["acc", "row", "col", "batch", "index"]
 *   .map((n, i) => ref(n, i === 0 ? "f32" : "u32"));
 * strictEqual(formatExpr(scaleBy(0.5).apply({ acc, row, col, batch, index }, new Body())), "(acc * 0.5f)");
 * ```
 */
export function scaleBy(alpha: number): MatmulEpilogue {
  if (!Number.isFinite(alpha)) throw new Error(`scaleBy: alpha must be finite, got ${alpha}`);
  const scale = f32(Math.fround(alpha));
  return { bindings: [], apply: ({ acc }) => mul(acc, scale) };
}

/**
 * An activation: `relu`, or `gelu` in its tanh form
 * `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` — the same expression as the
 * `gelu` op (tanh argument clamped to ±20, so large inputs give ±x, not NaN).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body, ref } from "../kernel_ir/mod.ts";
 * import { activation } from "./matmul.ts";
 * import { formatExpr } from "../kernel_ir/print.ts";
 * const [acc, row, col, batch, index] = ["acc", "row", "col", "batch", "index"]
 *   .map((n, i) => ref(n, i === 0 ? "f32" : "u32"));
 * strictEqual(formatExpr(activation("relu").apply({ acc, row, col, batch, index }, new Body())), "((acc > 0f) ? acc : 0f)");
 * ```
 */
export function activation(kind: "relu" | "gelu"): MatmulEpilogue {
  if (kind === "relu") return { bindings: [], apply: ({ acc }) => reluExpr(acc) };
  if (kind === "gelu") return { bindings: [], apply: ({ acc }) => geluExpr(acc) };
  throw new Error(`activation: expected "relu" or "gelu", got ${JSON.stringify(kind)}`);
}
