// Error plumbing for backends/webgpu/device.ts: device-loss tracking, error scopes,
// and readable WGSL compile errors.

import type { Kernel } from "./wgsl/kernel.ts";

/**
 * Tracks whether a device is still usable, so every runtime call after a
 * loss throws `device lost: <reason>` instead of silently doing nothing.
 *
 * @example
 * ```ts
 * import { watchDevice } from "./_errors.ts";
 * const adapter = await navigator.gpu.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   const health = watchDevice(device);
 *   health.assertAlive("upload");
 *   device.destroy(); // release it now, not at exit
 * }
 * ```
 */
export interface DeviceHealth {
  /** The loss reason, or null while the device works. */
  readonly lost: string | null;
  /** Throws `device lost: <reason>; cannot <what>` once the device is lost. */
  assertAlive(what: string): void;
}

/**
 * Starts watching `device.lost`.
 *
 * @example
 * ```ts
 * import { ok, throws } from "node:assert/strict";
 * import { watchDevice } from "./_errors.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const health = watchDevice(device);
 * health.assertAlive("dispatch"); // alive: does not throw
 * device.destroy();
 * await device.lost;
 * ok(health.lost !== null);
 * throws(() => health.assertAlive("dispatch"), { message: /^device lost: .*; cannot dispatch$/ });
 * ```
 */
export function watchDevice(device: GPUDevice): DeviceHealth {
  let lost: string | null = null;
  device.lost.then((info) => {
    lost = `${info.message || "no message"} (reason: ${info.reason ?? "unknown"})`;
  });
  return {
    get lost() {
      return lost;
    },
    assertAlive(what: string) {
      if (lost !== null) throw new Error(`device lost: ${lost}; cannot ${what}`);
    },
  };
}

/**
 * Options of {@linkcode withErrorScopes}.
 *
 * @example
 * ```ts
 * import type { ErrorScopeOptions } from "./_errors.ts";
 * const options: ErrorScopeOptions = { what: "uploading layers.0.mlp.fc1.weight" };
 * ```
 */
export interface ErrorScopeOptions {
  /** What is being done, for the message (e.g. `running kernels matmul:...`). */
  what: string;
  /** Checked before `fn` runs; a lost device throws first. */
  health?: DeviceHealth;
}

/**
 * Runs `fn` inside `validation`, `out-of-memory` and `internal` error scopes
 * and throws the first error they caught as an Error naming `what`. The
 * scopes are popped even when `fn` throws.
 *
 * @example
 * ```ts
 * import { rejects, strictEqual } from "node:assert/strict";
 * import { withErrorScopes } from "./_errors.ts";
 * const device = await (await navigator.gpu.requestAdapter())!.requestDevice();
 * const buffer = await withErrorScopes(
 *   device,
 *   () => device.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE }),
 *   { what: "allocating a 64-byte buffer" },
 * );
 * strictEqual(buffer.size, 64);
 * await rejects(
 *   withErrorScopes(device, () => device.createBuffer({ size: 64, usage: 0 }), { what: "a buffer without usage" }),
 *   { message: /^a buffer without usage failed: / },
 * );
 * device.destroy(); // release it now, not at exit
 * ```
 */
export async function withErrorScopes<T>(
  device: GPUDevice,
  fn: () => T | Promise<T>,
  options: ErrorScopeOptions,
): Promise<T> {
  options.health?.assertAlive(options.what);
  const filters = ["internal", "out-of-memory", "validation"] as const;
  for (const filter of filters) device.pushErrorScope(filter);
  let result: T | undefined;
  let thrown: unknown;
  let threw = false;
  try {
    result = await fn();
  } catch (e) {
    thrown = e;
    threw = true;
  }
  const caught: string[] = [];
  for (const filter of [...filters].reverse()) {
    const error = await device.popErrorScope();
    if (error) caught.push(`${filter} error: ${error.message.trim()}`);
  }
  if (threw) throw thrown;
  options.health?.assertAlive(options.what);
  if (caught.length) throw new Error(`${options.what} failed: ${caught.join("; ")}`);
  return result as T;
}

/**
 * `key (label)`, the way errors name a kernel.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { kernelName } from "./_errors.ts";
 * const name = kernelName({ key: "k", label: "fc1", wgsl: "", bindings: [], workgroupSize: [1, 1, 1], dispatch: [1, 1, 1] });
 * strictEqual(name, '"k" (fc1)');
 * ```
 */
export function kernelName(kernel: Kernel): string {
  return kernel.label === undefined ? `"${kernel.key}"` : `"${kernel.key}" (${kernel.label})`;
}

/**
 * Formats `getCompilationInfo()` errors with the offending WGSL lines.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatCompileErrors } from "./_errors.ts";
 * const text = formatCompileErrors(
 *   { key: "k", wgsl: "fn main() {\n  let x: f32 = 1u;\n}", bindings: [], workgroupSize: [1, 1, 1], dispatch: [1, 1, 1] },
 *   [{ type: "error", message: "type mismatch", lineNum: 2, linePos: 16 }],
 * );
 * strictEqual(text, [
 *   'WGSL compilation failed for kernel "k":',
 *   "  error at line 2:16: type mismatch",
 *   "     2 |   let x: f32 = 1u;",
 *   " ".repeat(24) + "^", // under column 16: the 1u
 * ].join("\n"));
 * ```
 */
export function formatCompileErrors(
  kernel: Kernel,
  messages: readonly Pick<GPUCompilationMessage, "type" | "message" | "lineNum" | "linePos">[],
): string {
  const lines = kernel.wgsl.split("\n");
  const parts = messages.map((m) => {
    const source = lines[m.lineNum - 1];
    const excerpt = source === undefined
      ? ""
      : `\n  ${String(m.lineNum).padStart(4)} | ${source}\n         ${
        " ".repeat(Math.max(0, m.linePos - 1))
      }^`;
    return `  ${m.type} at line ${m.lineNum}:${m.linePos}: ${m.message.trim()}${excerpt}`;
  });
  return `WGSL compilation failed for kernel ${kernelName(kernel)}:\n${parts.join("\n")}`;
}
