/**
 * Runs a plan's steps on the calling thread plus `threads − 1` workers that
 * share its memory. A run is one signal to the workers; all threads then walk
 * the same step list: parallel steps are split among them, the rest run on
 * the calling thread only, and a barrier (spin, then `Atomics.wait`) follows
 * every parallel step and precedes a parallel step after serial ones, so the
 * cost of synchronising is paid only where work is shared.
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import type { Step } from "./_plan.ts";

/** Control words: run generation, barrier count, barrier generation, error flag. */
export const RUN = 0, COUNT = 1, GENERATION = 2, ERROR = 3;
// Spins before sleeping. Measured on the 2-core machine (load 3–4): spinning 200k+ times made a
// VeRA step 15× slower (a spinning thread takes the core the other one needs), 2k and 0 alike.
const SPINS = 100;
/** Longer than any kernel of a sane size; a run that hits it is broken, not slow. */
const BARRIER_TIMEOUT_MS = 120_000;

/** A step's function. */
export type Kernel = (thread: number, threads: number) => void;

/**
 * Waits until all `threads` threads have called it.
 *
 * @example
 * ```ts
 * import { barrier } from "./_threads.ts";
 * barrier(new Int32Array(new SharedArrayBuffer(16)), 1); // one thread: returns at once
 * ```
 */
export function barrier(ctrl: Int32Array, threads: number): void {
  const gen = Atomics.load(ctrl, GENERATION);
  if (Atomics.add(ctrl, COUNT, 1) === threads - 1) {
    Atomics.store(ctrl, COUNT, 0);
    Atomics.add(ctrl, GENERATION, 1);
    Atomics.notify(ctrl, GENERATION);
    return;
  }
  // A thread that never arrives (a worker killed mid-run) must not hang the caller forever.
  const deadline = performance.now() + BARRIER_TIMEOUT_MS;
  for (let i = 0; Atomics.load(ctrl, GENERATION) === gen; i++) {
    if (i <= SPINS) continue;
    Atomics.wait(ctrl, GENERATION, gen, 5);
    if (performance.now() > deadline) {
      Atomics.store(ctrl, ERROR, 1);
      throw new Error(`wasm: a thread did not reach a barrier within ${BARRIER_TIMEOUT_MS} ms`);
    }
  }
}

/**
 * Thread `thread`'s walk over the steps (the same barriers on every thread).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { execute } from "./_threads.ts";
 * const ctrl = new Int32Array(new SharedArrayBuffer(16));
 * let calls = 0;
 * execute(ctrl, 0, 1, [{ name: "a", parallel: true, what: "" }], { a: () => calls++ });
 * strictEqual(calls, 1);
 * ```
 */
export function execute(
  ctrl: Int32Array,
  thread: number,
  threads: number,
  steps: readonly Step[],
  kernels: Readonly<Record<string, Kernel>>,
): void {
  let afterSerial = false;
  for (const step of steps) {
    if (step.parallel && threads > 1) {
      if (afterSerial) barrier(ctrl, threads);
      try {
        kernels[step.name](thread, threads);
      } catch (e) {
        Atomics.store(ctrl, ERROR, 1);
        if (thread === 0) throw e;
      }
      barrier(ctrl, threads);
      afterSerial = false;
    } else {
      // Every thread notes it, so all of them take the same barriers.
      if (thread === 0) kernels[step.name](0, 1);
      afterSerial = true;
    }
  }
}

/**
 * The workers of one executable.
 *
 * @example
 * ```ts
 * import { ThreadPool } from "./_threads.ts";
 * const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
 * const pool = await ThreadPool.start(1, memory, new Uint8Array(0), []);
 * pool.destroy();
 * ```
 */
export class ThreadPool {
  private constructor(
    readonly threads: number,
    readonly ctrl: Int32Array,
    private readonly workers: Worker[],
  ) {}

  /** Starts `threads − 1` workers that compile `bytes` against `memory` (none for one thread). */
  static async start(
    threads: number,
    memory: WebAssembly.Memory,
    bytes: Uint8Array,
    steps: readonly Step[],
  ): Promise<ThreadPool> {
    const ctrl = new Int32Array(new SharedArrayBuffer(16));
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    for (let t = 1; t < threads; t++) {
      // node:worker_threads, not the web Worker: only its workers can be unref'ed, so a
      // forgotten executable does not keep the process alive.
      const worker = new Worker(new URL("./_worker.ts", import.meta.url), {
        workerData: { memory, bytes, steps, thread: t, threads, ctrl },
      });
      workers.push(worker);
      ready.push(
        new Promise((resolve, reject) => {
          worker.once("message", (m) => (m === "ready" ? resolve() : reject(new Error(String(m)))));
          worker.once("error", (e) => reject(new Error(`wasm worker: ${e.message}`)));
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    for (const w of workers) w.unref();
    return new ThreadPool(threads, ctrl, workers);
  }

  /** Runs `steps` on all threads; returns when every thread is done. */
  run(steps: readonly Step[], kernels: Readonly<Record<string, Kernel>>): void {
    if (this.workers.length > 0) {
      Atomics.add(this.ctrl, RUN, 1);
      Atomics.notify(this.ctrl, RUN);
    }
    execute(this.ctrl, 0, this.threads, steps, kernels);
    if (Atomics.load(this.ctrl, ERROR) !== 0) throw new Error("wasm: a worker's kernel failed");
  }

  /** Stops the workers (they hold no other resources). */
  destroy(): void {
    Atomics.store(this.ctrl, RUN, -1);
    Atomics.notify(this.ctrl, RUN);
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }
}
