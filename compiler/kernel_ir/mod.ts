/**
 * The kernel IR: types (`ir.ts`), constructors (`build.ts`), a text form
 * (`print.ts`), the lowering of graph-node values into it (`values.ts`) and
 * the context of row-wise op rules (`rows.ts`).
 * Kernel families build programs in it; backends render them.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, Body, formatExpr, u32 } from "./mod.ts";
 * const body = new Body();
 * const v = body.let(add(u32(1), u32(2)));
 * strictEqual(formatExpr(v), "v0");
 * ```
 *
 * @module
 */
export * from "./ir.ts";
export * from "./build.ts";
export * from "./body.ts";
export * from "./print.ts";
export * from "./values.ts";
export * from "./dispatch.ts";
export * from "./rows.ts";
