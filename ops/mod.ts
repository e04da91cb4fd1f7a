/**
 * Registers every op. Import this module (for its side effect) before building
 * graphs; `mod.ts` at the root does.
 *
 * @module
 */
import "./leaf.ts";
import "./elementwise.ts";
import "./shape.ts";
import "./reduce.ts";
import "./matmul.ts";
import "./nn.ts";
import "./gather.ts";
import "./random.ts";

export { allOps, defineOp, getOp } from "./registry.ts";
export type { CpuContext, CpuData, CpuTensor, OpDef, WgslRule } from "./registry.ts";
