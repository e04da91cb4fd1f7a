/**
 * A worker of {@link ThreadPool}: compiles the kernel module against the
 * shared memory, then waits for runs and walks the steps as thread `thread`.
 *
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { execute, type Kernel, RUN } from "./_threads.ts";
import type { Step } from "./_plan.ts";

const { memory, bytes, steps, thread, threads, ctrl } = workerData as {
  memory: WebAssembly.Memory;
  bytes: Uint8Array<ArrayBuffer>;
  steps: Step[];
  thread: number;
  threads: number;
  ctrl: Int32Array;
};

let kernels: Record<string, Kernel> | undefined;
try {
  const { instance } = await WebAssembly.instantiate(bytes, { env: { mem: memory } });
  kernels = instance.exports as unknown as Record<string, Kernel>;
} catch (error) {
  parentPort!.postMessage(String(error));
}
if (kernels !== undefined) {
  // Read before "ready": the first run may be signalled as soon as it is posted.
  let seen = Atomics.load(ctrl, RUN);
  parentPort!.postMessage("ready");
  while (true) {
    Atomics.wait(ctrl, RUN, seen);
    const now = Atomics.load(ctrl, RUN);
    if (now < 0) break;
    if (now === seen) continue;
    seen = now;
    execute(ctrl, thread, threads, steps, kernels);
  }
}
