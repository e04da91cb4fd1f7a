/**
 * Ready-made elementwise epilogues for `matmulKernel` (matmul.ts): scaling by a
 * row or column vector, bias, residual, a scalar, an activation.
 *
 * @module
 */
import type { MatmulEpilogue } from "./_matmul_types.ts";
import { geluExpr } from "../../../ops/elementwise.ts";
import { ref } from "../../../compiler/kernel_ir/mod.ts";
import { exprText } from "./render.ts";

/**
 * Multiplies column `col` by `name[col]` (a length-N vector), e.g. VeRA's `lambda_b`.
 *
 * @example
 * ```ts
 * import { scaleColumns } from "./matmul.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(scaleColumns("lambda_b").expr, "acc * lambda_b[col]");
 * ```
 */
export function scaleColumns(name: string): MatmulEpilogue {
  return { bindings: [{ name, type: "storage-read" }], expr: `acc * ${name}[col]` };
}

/**
 * Multiplies row `row` by `name[row]` (a length-M vector).
 *
 * @example
 * ```ts
 * import { scaleRows } from "./matmul.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(scaleRows("s").expr, "acc * s[row]");
 * ```
 */
export function scaleRows(name: string): MatmulEpilogue {
  return { bindings: [{ name, type: "storage-read" }], expr: `acc * ${name}[row]` };
}

/**
 * Adds `name[col]` (a length-N bias) to every row.
 *
 * @example
 * ```ts
 * import { addBias } from "./matmul.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(addBias("bias").expr, "acc + bias[col]");
 * ```
 */
export function addBias(name: string): MatmulEpilogue {
  return { bindings: [{ name, type: "storage-read" }], expr: `acc + ${name}[col]` };
}

/**
 * Adds `name[index]`, another `[batch, M, N]` tensor laid out like C (a residual).
 *
 * @example
 * ```ts
 * import { addResidual } from "./matmul.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(addResidual("x").expr, "acc + x[index]");
 * ```
 */
export function addResidual(name: string): MatmulEpilogue {
  return { bindings: [{ name, type: "storage-read" }], expr: `acc + ${name}[index]` };
}

/**
 * Multiplies by a constant (baked into the WGSL and the key).
 *
 * @example
 * ```ts
 * import { scaleBy } from "./matmul.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(scaleBy(0.5).expr, "acc * (0.5)");
 * ```
 */
export function scaleBy(alpha: number): MatmulEpilogue {
  if (!Number.isFinite(alpha)) throw new Error(`scaleBy: alpha must be finite, got ${alpha}`);
  const text = String(Math.fround(alpha));
  return { bindings: [], expr: `acc * (${/[.eE]/.test(text) ? text : `${text}.0`})` };
}

/**
 * An activation: `relu`, or `gelu` in its tanh form
 * `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` — the same WGSL as the `gelu`
 * op (tanh argument clamped to ±20, so large inputs give ±x, not NaN).
 *
 * @example
 * ```ts
 * import { activation } from "./matmul.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(activation("relu").expr, "max(acc, 0.0)");
 * ```
 */
export function activation(kind: "relu" | "gelu"): MatmulEpilogue {
  if (kind === "relu") return { bindings: [], expr: "max(acc, 0.0)" };
  if (kind === "gelu") return { bindings: [], expr: exprText(geluExpr(ref("acc", "f32"))) };
  throw new Error(`activation: expected "relu" or "gelu", got ${JSON.stringify(kind)}`);
}
