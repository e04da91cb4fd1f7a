// The memory plan: which GPU buffer each tensor of a program lives in. Inputs,
// params, consts and outputs own their buffers (they outlive a run);
// temporaries share buffers by liveness — a buffer whose tensor has been read
// for the last time is reused by the next tensor that fits — so a whole run
// needs a fixed set of buffers, allocated once.

import type { Program } from "./schedule.ts";

/**
 * Buffers are allocated in multiples of 16 bytes and never empty.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { bufferBytes } from "./memory_plan.ts";
 * strictEqual(bufferBytes(0), 16);
 * strictEqual(bufferBytes(20), 32);
 * ```
 */
export function bufferBytes(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/**
 * The result of {@link planMemory}.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { planMemory } from "./memory_plan.ts";
 * import { schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const program = schedule(fuse(trace((x) => x.exp().sum(), [{ name: "x", shape: [4] }])));
 * deepStrictEqual(planMemory(program).buffers, [16, 16]);
 * ```
 */
export interface MemoryPlan {
  /** Byte size of each buffer to allocate. */
  readonly buffers: readonly number[];
  /** Node id → index into `buffers`. */
  readonly bufferOf: ReadonlyMap<number, number>;
  /** Bytes temporaries would take without sharing, for reports. */
  readonly unsharedTempBytes: number;
}

/**
 * Assigns buffers to every tensor of `program`. A temporary written by step
 * `i` and last read by step `j` holds its buffer for steps `i..j`; buffers
 * freed by step `j` are not reused by step `j`'s own outputs (a kernel never
 * reads and writes one buffer). Among free buffers the smallest that fits is
 * taken; when none fits, the largest free one grows (it is not allocated
 * yet, so growing is free).
 *
 * @example
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { planMemory } from "./memory_plan.ts";
 * import { schedule } from "./schedule.ts";
 * import { fuse } from "./fusion/fuse.ts";
 * import { trace } from "./trace.ts";
 * const g = trace((x) => x.exp().sum(0).exp().sum(0).exp().sum(0).exp().sum(), [
 *   { name: "x", shape: [2, 2, 2, 2] },
 * ]);
 * const program = schedule(fuse(g)); // 4 kernels, each reading the one before
 * const plan = planMemory(program);
 * const temps = [...program.tensors.values()].filter((t) => t.role === "temp");
 * deepStrictEqual(temps.map((t) => t.bytes), [32, 16, 8]);
 * // The third temporary reuses the first one's buffer, freed once the second kernel read it.
 * deepStrictEqual(temps.map((t) => plan.bufferOf.get(t.node.id)), [2, 3, 2]);
 * strictEqual(plan.buffers.length, 4); // x, two buffers for three temporaries, the output
 * strictEqual(plan.unsharedTempBytes, 32 + 16 + 16); // without sharing (8 bytes round up to 16)
 * ```
 */
export function planMemory(program: Program): MemoryPlan {
  const buffers: number[] = [];
  const bufferOf = new Map<number, number>();
  const lastUse = new Map<number, number>();
  program.steps.forEach((step, i) => {
    for (const n of step.nodes) lastUse.set(n.id, i);
  });
  for (const t of program.tensors.values()) {
    if (t.role !== "temp") {
      bufferOf.set(t.node.id, buffers.length);
      buffers.push(bufferBytes(t.bytes));
    }
  }
  const free: number[] = [];
  let unsharedTempBytes = 0;
  program.steps.forEach((step, i) => {
    for (const out of step.outputs) {
      const t = program.tensors.get(out.id)!;
      if (t.role !== "temp" || bufferOf.has(out.id)) continue;
      const need = bufferBytes(t.bytes);
      unsharedTempBytes += need;
      bufferOf.set(out.id, takeFree(free, buffers, need));
    }
    for (const n of new Set(step.nodes)) {
      const t = program.tensors.get(n.id);
      if (t?.role === "temp" && lastUse.get(n.id) === i) free.push(bufferOf.get(n.id)!);
    }
  });
  return { buffers, bufferOf, unsharedTempBytes };
}

function takeFree(free: number[], buffers: number[], need: number): number {
  let best = -1;
  for (let k = 0; k < free.length; k++) {
    const size = buffers[free[k]];
    if (size >= need && (best < 0 || size < buffers[free[best]])) best = k;
  }
  if (best < 0 && free.length > 0) {
    best = free.reduce((b, f, k) => (buffers[f] > buffers[free[b]] ? k : b), 0);
    buffers[free[best]] = need;
  }
  if (best >= 0) return free.splice(best, 1)[0];
  buffers.push(need);
  return buffers.length - 1;
}
