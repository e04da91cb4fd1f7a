/**
 * Leaves: `input` (fed per call), `param` (a named tensor, trainable or
 * frozen), `const` (a fill value or a small literal) and `iota` (indices along
 * an axis, used for masks). The CPU interpreter feeds `input` and `param`
 * itself; their `cpu` rule only runs when a value is missing.
 */
import { checkDType, checkShape, defineOp, type OpDef, sizeOf } from "../compiler/ir.ts";
import { allocData, normAxis, stridesOf } from "./rules.ts";
import { binary, convert, lit, u32 } from "../compiler/kernel_ir/mod.ts";

function leafType(op: string, attrs: Record<string, unknown>) {
  return {
    shape: checkShape(attrs.shape as number[], op),
    dtype: checkDType(attrs.dtype ?? "f32", op),
  };
}

export const input: OpDef = defineOp({
  name: "input",
  kind: "leaf",
  lowering: "leaf",
  infer: (_inputs, attrs) => leafType("input", attrs),
  cpu: (_inputs, { node }) => {
    throw new Error(`input "${node.name}" was not fed`);
  },
  noGradient: "a leaf: autodiff treats inputs as constants unless asked",
});

export const param: OpDef = defineOp({
  name: "param",
  kind: "leaf",
  lowering: "leaf",
  infer: (_inputs, attrs) => {
    if (attrs.role !== "trainable" && attrs.role !== "frozen") {
      throw new Error(`param: role must be "trainable" or "frozen", got ${attrs.role}`);
    }
    return leafType("param", attrs);
  },
  cpu: (_inputs, { node }) => {
    throw new Error(`param "${node.name}" was not fed (no value given for it)`);
  },
  noGradient: "a leaf: autodiff seeds gradients at trainable params",
});

export const constant: OpDef = defineOp({
  name: "const",
  kind: "leaf",
  lowering: "leaf",
  infer: (_inputs, attrs) => {
    const t = leafType("const", attrs);
    if (attrs.data !== undefined) {
      const data = attrs.data as number[];
      if (!Array.isArray(data) || data.length !== sizeOf(t.shape)) {
        throw new Error(
          `const: data has ${Array.isArray(data) ? data.length : "no"} elements, ` +
            `shape [${t.shape.join(",")}] needs ${sizeOf(t.shape)}`,
        );
      }
    } else if (typeof attrs.value !== "number") {
      throw new Error(`const: needs a numeric value or a data array`);
    }
    return t;
  },
  cpu: (_inputs, { node }) => {
    const out = allocData(node.dtype, sizeOf(node.shape));
    if (node.attrs.data !== undefined) out.set(node.attrs.data as number[]);
    else out.fill(node.attrs.value as number);
    return out;
  },
  noGradient: "a constant",
  // A fill is a literal in the kernel; a data array is uploaded to a buffer.
  inline: (node) =>
    node.attrs.data !== undefined ? undefined : literalOf(node.attrs.value as number, node.dtype),
});

export const iota: OpDef = defineOp({
  name: "iota",
  kind: "leaf",
  lowering: "leaf",
  infer: (_inputs, attrs) => {
    const t = leafType("iota", { dtype: "i32", ...attrs });
    normAxis("iota", attrs.axis as number, t.shape.length);
    return t;
  },
  cpu: (_inputs, { node }) => {
    const axis = normAxis("iota", node.attrs.axis as number, node.shape.length);
    const out = allocData(node.dtype, sizeOf(node.shape));
    const stride = stridesOf(node.shape)[axis];
    const dim = node.shape[axis];
    for (let i = 0; i < out.length; i++) out[i] = Math.floor(i / stride) % dim;
    return out;
  },
  noGradient: "integer indices",
  inline: (node, at, ctx) => {
    const c = ctx.coords(at)[normAxis("iota", node.attrs.axis as number, node.shape.length)];
    return node.dtype === "bool" ? binary("!=", c, u32(0)) : convert(node.dtype, c);
  },
});

// Integer fills wrap like the reference's typed arrays do.
function literalOf(value: number, dtype: "f32" | "i32" | "u32" | "bool") {
  if (dtype === "i32") return lit(value | 0, "i32");
  if (dtype === "u32") return lit(value >>> 0, "u32");
  if (dtype === "bool") return lit(value !== 0, "bool");
  return lit(value, "f32");
}
