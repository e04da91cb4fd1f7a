/**
 * How much memory a training run needs, estimated from the graph's shapes
 * before anything is allocated, so that an impossible run (`--r 1000000000`,
 * a base whose config claims a huge width) is refused with the estimate and
 * the limit it exceeds instead of failing after gigabytes were allocated.
 *
 * @module
 */
import { type Graph, graphNodes, type Node } from "../compiler/ir.ts";

/** The estimate, in bytes. */
export interface MemoryEstimate {
  /** Every param (weights, adapter vectors, heads). */
  readonly params: number;
  /** Gradients and AdamW's two moments of the trainable params. */
  readonly optimizer: number;
  /** Frozen random projections (VeRA's A and B) when materialised. */
  readonly projections: number;
  /** What stays allocated for the whole run: the three above. */
  readonly persistent: number;
  /** The largest single tensor of the graph: it must fit one buffer. */
  readonly largest: {
    readonly name: string;
    readonly shape: readonly number[];
    readonly bytes: number;
  };
}

const BYTES = 4; // every dtype here is 32-bit

const sizeOf = (node: Node) => node.shape.reduce((a, b) => a * b, 1) * BYTES;

function label(node: Node): string {
  if (node.name !== undefined) return node.name;
  return node.op === "random"
    ? `random projection (stream ${node.attrs.stream})`
    : `${node.op} #${node.id}`;
}

/**
 * Estimates a training run of `graph` (the model with its adapter applied) from shapes alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gptGraph } from "../nn/gpt.ts";
 * import { estimateTrainingMemory } from "./memory.ts";
 * const g = gptGraph({ vocabSize: 8, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" }, { batch: 1, seqLen: 4 });
 * const m = estimateTrainingMemory(g);
 * assert.equal(m.params, g.params.reduce((n, p) => n + 4 * p.shape.reduce((a, b) => a * b, 1), 0));
 * assert.equal(m.optimizer, 3 * m.params); // every param trains here
 * ```
 */
export function estimateTrainingMemory(graph: Graph): MemoryEstimate {
  let params = 0, trainable = 0, projections = 0;
  let largest = { name: "", shape: [] as readonly number[], bytes: 0 };
  for (const node of graphNodes(graph)) {
    const bytes = sizeOf(node);
    if (node.op === "param") {
      params += bytes;
      if (node.attrs.role === "trainable") trainable += bytes;
    } else if (node.op === "random") projections += bytes;
    if (bytes > largest.bytes) largest = { name: label(node), shape: node.shape, bytes };
  }
  const optimizer = 3 * trainable;
  return {
    params,
    optimizer,
    projections,
    persistent: params + optimizer + projections,
    largest,
  };
}

/** Bytes in words: "15.2 GB". */
export function formatBytes(bytes: number): string {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let v = bytes, i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

/** What the run may use. */
export interface MemoryLimits {
  /** Host memory (default: 90% of `Deno.systemMemoryInfo().total`). */
  readonly hostBytes?: number;
  /** The device's largest buffer (`GPUDevice.limits.maxBufferSize`), when on a GPU. */
  readonly maxBufferSize?: number;
  /** What to lower, added to the message (e.g. "lower --r"). */
  readonly hint?: string;
}

/**
 * Throws, naming the estimate and the limit, when `estimate` cannot fit `limits`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkMemory } from "./memory.ts";
 * const estimate = { params: 8e9, optimizer: 0, projections: 0, persistent: 8e9,
 *   largest: { name: "w", shape: [2e9], bytes: 8e9 } };
 * assert.throws(() => checkMemory("finetune", estimate, { maxBufferSize: 2 ** 31, hostBytes: 1e12 }),
 *   /needs a single buffer of 8\.0 GB for w \[2000000000\], more than the device's 2\.1 GB/);
 * ```
 */
export function checkMemory(command: string, estimate: MemoryEstimate, limits: MemoryLimits = {}) {
  const host = limits.hostBytes ?? 0.9 * Deno.systemMemoryInfo().total;
  const hint = limits.hint ? `; ${limits.hint}` : "";
  const { largest } = estimate;
  const parts = `params ${formatBytes(estimate.params)}, gradients and optimizer state ${
    formatBytes(estimate.optimizer)
  }${estimate.projections > 0 ? `, random projections ${formatBytes(estimate.projections)}` : ""}`;
  if (limits.maxBufferSize !== undefined && largest.bytes > limits.maxBufferSize) {
    throw new Error(
      `${command}: this run needs a single buffer of ${
        formatBytes(largest.bytes)
      } for ${largest.name} ` +
        `[${largest.shape}], more than the device's ${
          formatBytes(limits.maxBufferSize)
        } buffer limit${hint}`,
    );
  }
  if (estimate.persistent + largest.bytes > host) {
    throw new Error(
      `${command}: this run needs at least ${formatBytes(estimate.persistent + largest.bytes)} ` +
        `(${parts}; largest tensor ${largest.name} [${largest.shape}] ${
          formatBytes(largest.bytes)
        }), ` +
        `more than the ${formatBytes(host)} of memory available${hint}`,
    );
  }
}
