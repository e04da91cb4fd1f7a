/**
 * A worker of {@link ThreadPool}: compiles the kernel module against the
 * shared memory, then waits for runs and walks the steps as thread `thread`.
 *
 * @module
 */
import { execute, type Kernel, RUN } from "./_threads.ts";
import type { Step } from "./_plan.ts";

interface Start {
  memory: WebAssembly.Memory;
  bytes: Uint8Array<ArrayBuffer>;
  steps: Step[];
  thread: number;
  threads: number;
  ctrl: Int32Array;
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<Start>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = async (e) => {
  const { memory, bytes, steps, thread, threads, ctrl } = e.data;
  scope.onmessage = null;
  let kernels: Record<string, Kernel>;
  try {
    const { instance } = await WebAssembly.instantiate(bytes, { env: { mem: memory } });
    kernels = instance.exports as unknown as Record<string, Kernel>;
  } catch (error) {
    scope.postMessage(String(error));
    return;
  }
  // Read before "ready": the first run may be signalled as soon as it is posted.
  let seen = Atomics.load(ctrl, RUN);
  scope.postMessage("ready");
  while (true) {
    Atomics.wait(ctrl, RUN, seen);
    const now = Atomics.load(ctrl, RUN);
    if (now < 0) return;
    if (now === seen) continue;
    seen = now;
    execute(ctrl, thread, threads, steps, kernels);
  }
};
