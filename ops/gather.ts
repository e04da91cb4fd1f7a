/**
 * Embedding lookup (`gather` rows of a table by integer index) and its
 * adjoint (`scatterAdd` rows back into a table), each the other's vjp.
 */
import { defineOp, makeNode, type OpDef, sizeOf, type TensorType } from "../compiler/ir.ts";
import { allocData, opError } from "./rules.ts";

function checkIndices(op: string, indices: TensorType, inputs: readonly TensorType[]): void {
  if (indices.dtype !== "i32" && indices.dtype !== "u32") {
    opError(op, "indices must be i32 or u32", inputs);
  }
}

export const gather: OpDef = defineOp({
  name: "gather",
  kind: "index",
  infer: (inputs) => {
    if (inputs.length !== 2) opError("gather", "takes (table, indices)", inputs);
    const [table, indices] = inputs;
    checkIndices("gather", indices, inputs);
    if (table.shape.length < 1) opError("gather", "table needs at least one axis", inputs);
    return { shape: [...indices.shape, ...table.shape.slice(1)], dtype: table.dtype };
  },
  cpu: ([table, indices]) => {
    const rows = table.shape[0];
    const width = sizeOf(table.shape.slice(1));
    const out = allocData(table.dtype, indices.data.length * width);
    for (let i = 0; i < indices.data.length; i++) {
      const r = indices.data[i];
      if (r < 0 || r >= rows) {
        throw new Error(`gather: index ${r} at position ${i} is out of range for ${rows} rows`);
      }
      out.set(table.data.subarray(r * width, (r + 1) * width), i * width);
    }
    return out;
  },
  vjp: (node, g, wants) => {
    const [table, indices] = node.inputs;
    return [wants[0] ? makeNode(scatterAdd, [g, indices], { rows: table.shape[0] }) : null, null];
  },
  lowering: "gather",
  indexOperands: (node) => {
    const table = node.inputs[0];
    const what = `rows of ${table.name ?? "a table"} [${table.shape}]`;
    return [{ input: 1, limit: table.shape[0], allowNegative: false, what }];
  },
});

export const scatterAdd: OpDef = defineOp({
  name: "scatterAdd",
  kind: "index",
  infer: (inputs, attrs) => {
    if (inputs.length !== 2) opError("scatterAdd", "takes (updates, indices)", inputs);
    const [updates, indices] = inputs;
    checkIndices("scatterAdd", indices, inputs);
    const rows = attrs.rows as number;
    if (!Number.isSafeInteger(rows) || rows < 0) opError("scatterAdd", `bad rows ${rows}`, inputs);
    const lead = indices.shape.length;
    if (updates.shape.length < lead || indices.shape.some((d, i) => updates.shape[i] !== d)) {
      opError("scatterAdd", "updates must start with the indices' shape", inputs);
    }
    return { shape: [rows, ...updates.shape.slice(lead)], dtype: updates.dtype };
  },
  cpu: ([updates, indices], { node }) => {
    const width = sizeOf(node.shape.slice(1));
    const out = allocData(node.dtype, sizeOf(node.shape));
    for (let i = 0; i < indices.data.length; i++) {
      const r = indices.data[i];
      if (r < 0 || r >= node.shape[0]) {
        throw new Error(
          `scatterAdd: index ${r} at position ${i} is out of range for ${node.shape[0]} rows`,
        );
      }
      for (let j = 0; j < width; j++) out[r * width + j] += updates.data[i * width + j];
    }
    return out;
  },
  vjp: (node, g, wants) => [wants[0] ? makeNode(gather, [g, node.inputs[1]]) : null, null],
  lowering: "scatterAdd",
});
