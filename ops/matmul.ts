/**
 * Batched matrix multiply: `[..., M, K] @ [..., K, N] → [..., M, N]` with equal
 * batch dims (the tracer broadcasts them). Its vjp uses transposes that the
 * GPU lowering folds into indexing.
 */
import { defineOp, makeNode, type Node, type OpDef, sizeOf } from "../compiler/ir.ts";
import { permute } from "./shape.ts";
import { allocData, opError } from "./rules.ts";

export const matmul: OpDef = defineOp({
  name: "matmul",
  kind: "matmul",
  infer: (inputs) => {
    if (inputs.length !== 2) opError("matmul", "takes two operands", inputs);
    const [a, b] = inputs;
    if (a.dtype !== "f32" || b.dtype !== "f32") opError("matmul", "needs f32 operands", inputs);
    if (a.shape.length < 2 || a.shape.length !== b.shape.length) {
      opError("matmul", "operands must have the same rank, at least 2", inputs);
    }
    const r = a.shape.length;
    for (let i = 0; i < r - 2; i++) {
      if (a.shape[i] !== b.shape[i]) opError("matmul", `batch dims differ at axis ${i}`, inputs);
    }
    if (a.shape[r - 1] !== b.shape[r - 2]) {
      opError(
        "matmul",
        `inner dimensions differ: ${a.shape[r - 1]} (lhs axis -1) vs ${
          b.shape[r - 2]
        } (rhs axis -2)`,
        inputs,
      );
    }
    return { shape: [...a.shape.slice(0, r - 1), b.shape[r - 1]], dtype: "f32" };
  },
  cpu: ([a, b], { node }) => {
    const r = a.shape.length;
    const [m, k, n] = [a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]];
    const batch = sizeOf(node.shape.slice(0, r - 2));
    const out = allocData("f32", batch * m * n);
    for (let bi = 0; bi < batch; bi++) {
      const ao = bi * m * k, bo = bi * k * n, oo = bi * m * n;
      for (let i = 0; i < m; i++) {
        for (let p = 0; p < k; p++) {
          const av = a.data[ao + i * k + p];
          for (let j = 0; j < n; j++) out[oo + i * n + j] += av * b.data[bo + p * n + j];
        }
      }
    }
    return out;
  },
  vjp: (node, g, wants) => {
    const [a, b] = node.inputs;
    return [
      wants[0] ? makeNode(matmul, [g, transposeLast(b)]) : null,
      wants[1] ? makeNode(matmul, [transposeLast(a), g]) : null,
    ];
  },
  lowering: "matmul",
});

/** Swaps the last two axes. */
function transposeLast(x: Node): Node {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return makeNode(permute, [x], { perm });
}
