// WGSL uniform blocks packed from named fields (std140-like layout), for
// the tests' hand-written kernels.

/**
 * One scalar field of a uniform parameter block.
 *
 * @example
 * ```ts
 * import type { UniformField } from "./_uniforms.ts";
 * const count: UniformField = { name: "count", type: "u32", value: 1024 };
 * ```
 */
export interface UniformField {
  /** The WGSL field name. */
  name: string;
  /** Scalar type; every field takes 4 bytes. */
  type: "u32" | "i32" | "f32";
  /** The value written for this dispatch. */
  value: number;
}

/**
 * A packed uniform block: bytes for `queue.writeBuffer` and the matching WGSL struct.
 *
 * @example
 * ```ts
 * import { packUniforms, type UniformBlock } from "./_uniforms.ts";
 * const block: UniformBlock = packUniforms([{ name: "scale", type: "f32", value: 2 }]);
 * ```
 */
export interface UniformBlock {
  /** Little-endian field values, padded to a multiple of 16 bytes. */
  bytes: Uint8Array<ArrayBuffer>;
  /** `struct <name> { ... }` declaring the fields in the same order. */
  wgslStruct: string;
}

/**
 * Packs scalar parameters into a uniform buffer image and declares the
 * matching WGSL struct (4 bytes a field, in order; size rounded up to 16 as
 * uniform buffers require).
 *
 * @example
 * ```ts
 * import { packUniforms } from "./_uniforms.ts";
 * import { deepEqual } from "node:assert/strict";
 * const block = packUniforms([{ name: "n", type: "u32", value: 7 }, { name: "scale", type: "f32", value: 0.5 }]);
 * deepEqual(block.bytes.byteLength, 16);
 * deepEqual(block.wgslStruct, "struct Params {\n  n: u32,\n  scale: f32,\n}");
 * ```
 */
export function packUniforms(fields: readonly UniformField[], structName = "Params"): UniformBlock {
  const bytes = new Uint8Array(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const view = new DataView(bytes.buffer);
  const seen = new Set<string>();
  fields.forEach((field, i) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(field.name) || seen.has(field.name)) {
      throw new Error(
        `packUniforms: field ${i} has an invalid or repeated name ${JSON.stringify(field.name)}`,
      );
    }
    seen.add(field.name);
    const { type, value } = field;
    const isInt = type !== "f32";
    const [lo, hi] = type === "u32" ? [0, 2 ** 32 - 1] : [-(2 ** 31), 2 ** 31 - 1];
    if (isInt && (!Number.isInteger(value) || value < lo || value > hi)) {
      throw new Error(`packUniforms: field ${field.name} (${type}) cannot hold ${value}`);
    }
    if (type === "u32") view.setUint32(i * 4, value, true);
    else if (type === "i32") view.setInt32(i * 4, value, true);
    else view.setFloat32(i * 4, value, true);
  });
  const body = fields.map((f) => `  ${f.name}: ${f.type},\n`).join("");
  return { bytes, wgslStruct: `struct ${structName} {\n${body}}` };
}
