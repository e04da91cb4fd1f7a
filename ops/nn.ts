/**
 * Fused row-wise ops over the last axis — softmax, logSoftmax, layerNorm
 * (normalisation only; scale and shift are ordinary mul/add) and
 * cross-entropy — each with a fused backward op, so the backward pass lowers
 * to one kernel per op instead of a chain of reductions. Each op's `rowwise`
 * rule is its kernel: the math of one row over a {@link RowKernel}.
 *
 * @module
 */
import { type CpuData, defineOp, makeNode, type OpDef, type TensorType } from "../compiler/ir.ts";
import {
  add,
  binary,
  convert,
  div,
  type Expr,
  f32,
  lit,
  math,
  mul,
  type RowKernel,
  rowMax,
  rowSum,
  rowSums,
  select,
  sub,
} from "../compiler/kernel_ir/mod.ts";
import { allocData, opError } from "./rules.ts";

const SECOND_ORDER = "a backward op: second-order gradients are not supported";

function lastAxisRows(shape: readonly number[]): { rows: number; cols: number } {
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1];
  const total = shape.reduce((a, b) => a * b, 1);
  return { rows: cols === 0 ? 0 : total / cols, cols };
}

function floatSameShape(op: string, inputs: readonly TensorType[], count: number): TensorType {
  if (inputs.length !== count) opError(op, `takes ${count} operand(s)`, inputs);
  for (const t of inputs) {
    if (t.dtype !== "f32") opError(op, "needs f32 operands", inputs);
    if (t.shape.length === 0) opError(op, "needs at least one axis", inputs);
    if (t.shape.join() !== inputs[0].shape.join()) {
      opError(op, "operands must have equal shapes", inputs);
    }
  }
  return inputs[0];
}

/** Runs `f(rowIndex, offset, cols)` for every row of the last axis. */
function eachRow(shape: readonly number[], f: (offset: number, cols: number) => void): void {
  const { rows, cols } = lastAxisRows(shape);
  for (let r = 0; r < rows; r++) f(r * cols, cols);
}

function cpuRowMax(d: CpuData, o: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, d[o + j]);
  return m;
}

function logSumExp(d: CpuData, o: number, n: number): number {
  const m = cpuRowMax(d, o, n);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(d[o + j] - m);
  return m + Math.log(s);
}

/**
 * A kernel row's maximum `m` and Σ exp(x - m): the parts of a stable
 * log-sum-exp (two passes over the row, each reduced across it).
 */
function maxAndSumExp(row: RowKernel): { m: Expr; s: Expr } {
  const m = rowMax(row, (j) => row.x(j), "m");
  const s = rowSum(row, (j) => math("exp", sub(row.x(j), m)), "s");
  return { m, s };
}

/** `m + log(s)`: the row's log-sum-exp in a kernel. */
function logSumExpOf(row: RowKernel, { m, s }: { m: Expr; s: Expr }): Expr {
  return row.body.let(add(m, math("log", s)), "lse");
}

/** `exp(x - m) / Σ exp(x - m)` along the row. */
export const softmax: OpDef = defineOp({
  name: "softmax",
  kind: "fused",
  infer: (inputs) => floatSameShape("softmax", inputs, 1),
  cpu: ([x]) => {
    const out = allocData("f32", x.data.length);
    eachRow(x.shape, (o, n) => {
      const lse = logSumExp(x.data, o, n);
      for (let j = 0; j < n; j++) out[o + j] = Math.exp(x.data[o + j] - lse);
    });
    return out;
  },
  vjp: (node, g) => [makeNode(softmaxBackward, [node, g])],
  lowering: "rowwise",
  rowwise: (row) => {
    const { m, s } = maxAndSumExp(row);
    row.each((j) => row.store(j, div(math("exp", sub(row.x(j), m)), s)));
  },
});

/** Softmax's backward op `(y, g) ↦ y · (g - Σ g·y)` along the row. */
export const softmaxBackward: OpDef = defineOp({
  name: "softmaxBackward",
  kind: "fused",
  infer: (inputs) => floatSameShape("softmaxBackward", inputs, 2),
  cpu: ([y, g]) => {
    const out = allocData("f32", y.data.length);
    eachRow(y.shape, (o, n) => {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += g.data[o + j] * y.data[o + j];
      for (let j = 0; j < n; j++) out[o + j] = y.data[o + j] * (g.data[o + j] - dot);
    });
    return out;
  },
  noGradient: SECOND_ORDER,
  lowering: "rowwise",
  rowwise: (row) => {
    const dot = rowSum(row, (j) => mul(row.operand(1, j), row.x(j)), "dot");
    row.each((j) => row.store(j, mul(row.x(j), sub(row.operand(1, j), dot))));
  },
});

/** `x - log Σ exp(x)` along the row. */
export const logSoftmax: OpDef = defineOp({
  name: "logSoftmax",
  kind: "fused",
  infer: (inputs) => floatSameShape("logSoftmax", inputs, 1),
  cpu: ([x]) => {
    const out = allocData("f32", x.data.length);
    eachRow(x.shape, (o, n) => {
      const lse = logSumExp(x.data, o, n);
      for (let j = 0; j < n; j++) out[o + j] = x.data[o + j] - lse;
    });
    return out;
  },
  vjp: (node, g) => [makeNode(logSoftmaxBackward, [node, g])],
  lowering: "rowwise",
  rowwise: (row) => {
    const lse = logSumExpOf(row, maxAndSumExp(row));
    row.each((j) => row.store(j, sub(row.x(j), lse)));
  },
});

/** LogSoftmax's backward op `(y, g) ↦ g - exp(y) · Σ g` along the row. */
export const logSoftmaxBackward: OpDef = defineOp({
  name: "logSoftmaxBackward",
  kind: "fused",
  infer: (inputs) => floatSameShape("logSoftmaxBackward", inputs, 2),
  cpu: ([y, g]) => {
    const out = allocData("f32", y.data.length);
    eachRow(y.shape, (o, n) => {
      let s = 0;
      for (let j = 0; j < n; j++) s += g.data[o + j];
      for (let j = 0; j < n; j++) out[o + j] = g.data[o + j] - Math.exp(y.data[o + j]) * s;
    });
    return out;
  },
  noGradient: SECOND_ORDER,
  lowering: "rowwise",
  rowwise: (row) => {
    const gs = rowSum(row, (j) => row.operand(1, j), "gs");
    row.each((j) => row.store(j, sub(row.operand(1, j), mul(math("exp", row.x(j)), gs))));
  },
});

function checkEps(op: string, eps: unknown): number {
  if (typeof eps !== "number" || !(eps >= 0)) {
    throw new Error(`${op}: eps must be a number ≥ 0, got ${eps}`);
  }
  return eps;
}

/** Mean and 1/sqrt(var + eps) of one row (population variance, like PyTorch). */
function rowStats(d: CpuData, o: number, n: number, eps: number): [number, number] {
  let mean = 0;
  for (let j = 0; j < n; j++) mean += d[o + j];
  mean /= n;
  let v = 0;
  for (let j = 0; j < n; j++) v += (d[o + j] - mean) ** 2;
  return [mean, 1 / Math.sqrt(v / n + eps)];
}

/**
 * A kernel row's mean and 1/sqrt(var + eps) (population variance, two
 * passes like {@link rowStats}).
 */
function rowStatsOf(row: RowKernel, eps: number): { mean: Expr; rstd: Expr } {
  const n = f32(row.cols);
  const mean = row.body.let(div(rowSum(row, (j) => row.x(j), "total"), n), "mean");
  const squares = rowSum(row, (j, body) => {
    const d = body.let(sub(row.x(j), mean), "d");
    return mul(d, d);
  }, "squares");
  const rstd = row.body.let(div(f32(1), math("sqrt", add(div(squares, n), f32(eps)))), "rstd");
  return { mean, rstd };
}

/** `(x - mean) / sqrt(var + eps)` along the row (no scale or shift). */
export const layerNorm: OpDef = defineOp({
  name: "layerNorm",
  kind: "fused",
  infer: (inputs, attrs) => {
    checkEps("layerNorm", attrs.eps);
    return floatSameShape("layerNorm", inputs, 1);
  },
  cpu: ([x], { node }) => {
    const eps = node.attrs.eps as number;
    const out = allocData("f32", x.data.length);
    eachRow(x.shape, (o, n) => {
      const [mean, rstd] = rowStats(x.data, o, n, eps);
      for (let j = 0; j < n; j++) out[o + j] = (x.data[o + j] - mean) * rstd;
    });
    return out;
  },
  vjp: (node, g) => [makeNode(layerNormBackward, [node.inputs[0], g], { eps: node.attrs.eps })],
  lowering: "rowwise",
  rowwise: (row, node) => {
    const { mean, rstd } = rowStatsOf(row, node.attrs.eps as number);
    row.each((j) => row.store(j, mul(sub(row.x(j), mean), rstd)));
  },
});

/** LayerNorm's backward op: `(x, g) ↦ rstd · (g - mean(g) - y · mean(g·y))` with `y` the normalised row. */
export const layerNormBackward: OpDef = defineOp({
  name: "layerNormBackward",
  kind: "fused",
  infer: (inputs, attrs) => {
    checkEps("layerNormBackward", attrs.eps);
    return floatSameShape("layerNormBackward", inputs, 2);
  },
  cpu: ([x, g], { node }) => {
    const eps = node.attrs.eps as number;
    const out = allocData("f32", x.data.length);
    eachRow(x.shape, (o, n) => {
      const [mean, rstd] = rowStats(x.data, o, n, eps);
      let gMean = 0, gyMean = 0;
      for (let j = 0; j < n; j++) {
        gMean += g.data[o + j];
        gyMean += g.data[o + j] * (x.data[o + j] - mean) * rstd;
      }
      gMean /= n;
      gyMean /= n;
      for (let j = 0; j < n; j++) {
        const y = (x.data[o + j] - mean) * rstd;
        out[o + j] = rstd * (g.data[o + j] - gMean - y * gyMean);
      }
    });
    return out;
  },
  noGradient: SECOND_ORDER,
  lowering: "rowwise",
  rowwise: (row, node) => {
    const { mean, rstd } = rowStatsOf(row, node.attrs.eps as number);
    const n = f32(row.cols);
    const [gs, gys] = rowSums(row, ["gs", "gys"], (j, body) => {
      const g = body.let(row.operand(1, j), "g");
      return [g, mul(mul(g, sub(row.x(j), mean)), rstd)];
    });
    const gMean = row.body.let(div(gs, n), "g_mean");
    const gyMean = row.body.let(div(gys, n), "gy_mean");
    row.each((j) => {
      const y = mul(sub(row.x(j), mean), rstd);
      row.store(j, mul(rstd, sub(sub(row.operand(1, j), gMean), mul(y, gyMean))));
    });
  },
});

function crossEntropyType(op: string, inputs: readonly TensorType[]): TensorType {
  const [logits, labels] = inputs;
  const ok = logits !== undefined && labels !== undefined && logits.dtype === "f32" &&
    labels.dtype === "i32" && logits.shape.length === labels.shape.length + 1 &&
    labels.shape.every((d, i) => d === logits.shape[i]);
  if (!ok) opError(op, "needs logits f32[..., C] and labels i32[...]", inputs);
  return { shape: labels.shape, dtype: "f32" };
}

/**
 * A kernel row's label as i32 and its log-sum-exp: what both cross-entropy
 * kernels start from.
 */
function labelAndLse(row: RowKernel): { label: Expr; lse: Expr } {
  const parts = maxAndSumExp(row);
  const label = row.body.let(convert("i32", row.perRow(1)), "label");
  return { label, lse: logSumExpOf(row, parts) };
}

/** `log Σ exp(logits) - logits[label]` per row; a negative label is ignored (loss 0). */
export const crossEntropy: OpDef = defineOp({
  name: "crossEntropy",
  kind: "fused",
  infer: (inputs) => {
    if (inputs.length !== 2) opError("crossEntropy", "takes (logits, labels)", inputs);
    return crossEntropyType("crossEntropy", inputs);
  },
  cpu: ([logits, labels]) => {
    const out = allocData("f32", labels.data.length);
    eachRow(logits.shape, (o, n) => {
      const label = labels.data[o / n];
      // Negative labels are ignored (PyTorch's ignore_index): padding positions cost nothing.
      if (label < 0) return;
      if (label >= n) {
        throw new Error(`crossEntropy: label ${label} is out of range for ${n} classes`);
      }
      out[o / n] = logSumExp(logits.data, o, n) - logits.data[o + label];
    });
    return out;
  },
  vjp: (node, g) => [
    makeNode(crossEntropyBackward, [node.inputs[0], node.inputs[1], g]),
    null,
  ],
  lowering: "rowwise",
  // Out-of-range labels are rejected on the host (indexOperands); a kernel
  // cannot throw, so one that slips through reads as NaN, never as memory.
  rowwise: (row) => {
    const { label, lse } = labelAndLse(row);
    row.leader((body) => {
      const loss = body.var("f32", f32(NaN), "loss");
      body.when(binary("<", label, lit(0, "i32")), (b) => b.assign(loss, f32(0)));
      const inRange = binary(
        "&&",
        binary(">=", label, lit(0, "i32")),
        binary("<", label, lit(row.cols, "i32")),
      );
      body.when(inRange, (b) => b.assign(loss, sub(lse, row.operand(0, convert("u32", label)))));
      row.storeRow(loss);
    });
  },
  indexOperands: (node) => {
    const classes = node.inputs[0].shape[node.inputs[0].shape.length - 1];
    return [{ input: 1, limit: classes, allowNegative: true, what: `${classes} classes` }];
  },
});

/** Cross-entropy's backward op: `(logits, labels, g) ↦ g · (softmax(logits) - onehot(label))`, 0 for an ignored row. */
export const crossEntropyBackward: OpDef = defineOp({
  name: "crossEntropyBackward",
  kind: "fused",
  infer: (inputs) => {
    const g = inputs[2];
    const t = crossEntropyType("crossEntropyBackward", inputs);
    if (inputs.length !== 3 || g.dtype !== "f32" || g.shape.join() !== t.shape.join()) {
      opError("crossEntropyBackward", "takes (logits, labels, cotangent)", inputs);
    }
    return inputs[0];
  },
  cpu: ([logits, labels, g]) => {
    const out = allocData("f32", logits.data.length);
    eachRow(logits.shape, (o, n) => {
      const row = o / n;
      const label = labels.data[row];
      if (label < 0) return;
      if (label >= n) {
        throw new Error(`crossEntropyBackward: label ${label} is out of range for ${n} classes`);
      }
      const lse = logSumExp(logits.data, o, n);
      for (let j = 0; j < n; j++) {
        out[o + j] = g.data[row] * (Math.exp(logits.data[o + j] - lse) - (j === label ? 1 : 0));
      }
    });
    return out;
  },
  noGradient: SECOND_ORDER,
  lowering: "rowwise",
  rowwise: (row) => {
    const { label, lse } = labelAndLse(row);
    const g = row.body.let(row.perRow(2), "g");
    row.each((j, body) => {
      const hit = body.let(select(binary("==", convert("i32", j), label), f32(1), f32(0)), "hit");
      const grad = mul(g, sub(math("exp", sub(row.x(j), lse)), hit));
      row.store(j, select(binary("<", label, lit(0, "i32")), f32(0), grad));
    });
  },
});
