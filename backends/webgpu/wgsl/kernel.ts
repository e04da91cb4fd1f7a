/**
 * Kernels as data: what the WGSL renderer (`render.ts`) returns and the
 * WebGPU runtime (backends/webgpu/device.ts) consumes. A kernel carries its whole
 * WGSL module, the buffers it binds, and how it is dispatched; the runtime
 * caches one pipeline per `key`.
 *
 * Conventions shared by all kernels:
 * - the entry point is `fn main` with `@compute @workgroup_size(...)`;
 * - binding `i` of `bindings` is `@group(0) @binding(i)`;
 * - `key` changes whenever `wgsl` would change, and never otherwise.
 *
 * @module
 */

/**
 * How a kernel binds one buffer: a uniform block, a read-only or a read-write storage buffer.
 *
 * @example
 * ```ts
 * import type { KernelBinding } from "./kernel.ts";
 * const weights: KernelBinding = { name: "weights", type: "storage-read" };
 * ```
 */
export interface KernelBinding {
  /** The WGSL variable name (also used in error messages). */
  name: string;
  /** `uniform` → `var<uniform>`, `storage-read` → `var<storage, read>`, `storage` → `var<storage, read_write>`. */
  type: "uniform" | "storage-read" | "storage";
}

/**
 * A compute kernel as data.
 *
 * @example
 * ```ts
 * import type { Kernel } from "./kernel.ts";
 * const fill: Kernel = {
 *   key: "fill:4",
 *   wgsl: `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
 * @compute @workgroup_size(4) fn main(@builtin(global_invocation_id) id: vec3<u32>) { out[id.x] = 1.0; }`,
 *   bindings: [{ name: "out", type: "storage" }],
 *   workgroupSize: [4, 1, 1],
 *   dispatch: [1, 1, 1],
 *   label: "ones",
 * };
 * ```
 */
export interface Kernel {
  /** Identifies the WGSL: two kernels with the same key must have the same `wgsl` and `bindings`. */
  key: string;
  /** The complete WGSL module; its entry point is `main`. */
  wgsl: string;
  /** Binding `i` is `@group(0) @binding(i)`. */
  bindings: readonly KernelBinding[];
  /** The `@workgroup_size` the WGSL declares. */
  workgroupSize: readonly [number, number, number];
  /** Workgroup counts passed to `dispatchWorkgroups`. */
  dispatch: readonly [number, number, number];
  /** The graph node(s) this kernel computes, for error messages. */
  label?: string;
}

/**
 * The WGSL declaration of binding `index` (`@group(0) @binding(index) var<...> name: type;`).
 *
 * @example
 * ```ts
 * import { wgslBindingDecl } from "./kernel.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(
 *   wgslBindingDecl({ name: "x", type: "storage-read" }, 2, "array<f32>"),
 *   "@group(0) @binding(2) var<storage, read> x: array<f32>;",
 * );
 * ```
 */
export function wgslBindingDecl(binding: KernelBinding, index: number, wgslType: string): string {
  const space =
    { "uniform": "uniform", "storage-read": "storage, read", "storage": "storage, read_write" }[
      binding.type
    ];
  return `@group(0) @binding(${index}) var<${space}> ${binding.name}: ${wgslType};`;
}

/**
 * Formats a number as a WGSL f32 literal that round-trips exactly
 * (`1` → `1.0`, `1e-7` → `1e-7`); non-finite values are rejected because
 * WGSL has no literal for them.
 *
 * @example
 * ```ts
 * import { wgslF32 } from "./kernel.ts";
 * import { deepEqual } from "node:assert/strict";
 * deepEqual(wgslF32(2), "2.0");
 * deepEqual(wgslF32(-0.125), "-0.125");
 * ```
 */
export function wgslF32(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`wgslF32: WGSL has no literal for ${value}`);
  const f = Math.fround(value);
  const text = String(f);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

// A stable 53-bit hash of a string (cyrb53), in base 36, for kernel keys.
function hashText(text: string): string {
  let h1 = 0xdeadbeef ^ text.length, h2 = 0x41c6ce57 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

/**
 * The one cache key of every kernel: its family, then a hash of its binding
 * types and its whole WGSL text, so two kernels share a key exactly when they
 * would compile to the same pipeline.
 *
 * @example
 * ```ts
 * import { kernelKey } from "./kernel.ts";
 * const bindings = [{ name: "out", type: "storage" as const }];
 * const a = kernelKey("fill", bindings, "fn main() {}");
 * console.log(a === kernelKey("fill", bindings, "fn main() {}"), a.startsWith("fill:")); // true true
 * ```
 */
export function kernelKey(
  family: string,
  bindings: readonly KernelBinding[],
  wgsl: string,
): string {
  return `${family}:${hashText(`${bindings.map((b) => b.type).join(",")}\n${wgsl}`)}`;
}
