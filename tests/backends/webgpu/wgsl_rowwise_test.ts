// The row-wise kernel family: each op's `rowwise` rule, laid out either as
// one invocation per row (short rows) or one workgroup per row with tree
// reductions in workgroup memory (rows longer than ROWWISE_SERIAL_MAX_COLS).
// The op-registry walk (lower_ops_test.ts) only has short rows, so the
// workgroup layout is checked here against the float64 CPU reference.
import assert from "node:assert/strict";
import { compile } from "../../../backends/compile.ts";
import { evaluate } from "../../../backends/cpu/interpreter.ts";
import { ROWWISE_SERIAL_MAX_COLS, rowwiseKernel } from "../../../compiler/kernels/rowwise.ts";
import { defineOp, makeGraph, makeNode, type Node } from "../../../compiler/ir.ts";
import type { Stmt } from "../../../compiler/kernel_ir/mod.ts";
import { mulberry32 } from "../../../data/random.ts";
import * as ops from "../../../ops/mod.ts";
import { toKernel } from "../../../backends/webgpu/wgsl/render.ts";
import { referenceFailures } from "../_compare.ts";

const random = mulberry32(7);
const inputs: Node[] = [];
const feeds: Record<string, number[]> = {};

function input(shape: number[], dtype: "f32" | "i32", value: () => number): Node {
  const name = `x${inputs.length}`;
  const node = makeNode(ops.input, [], { shape, dtype }, name);
  inputs.push(node);
  feeds[name] = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, value);
  return node;
}
const f32 = (shape: number[]) => input(shape, "f32", () => 4 * random() - 2);
const labels = (rows: number, classes: number) =>
  input([rows], "i32", () => Math.floor((classes + 1) * random()) - 1);

/** Every row-wise op on rows of `cols` columns (and a fused prologue and epilogue). */
function cases(rows: number, cols: number): Record<string, Node> {
  const shape = [rows, cols];
  const x = f32(shape);
  const g = f32(shape);
  const y = makeNode(ops.softmax, [x], {});
  const label = labels(rows, cols);
  return {
    softmax: y,
    scaledSoftmax: makeNode(ops.mul, [
      makeNode(ops.softmax, [makeNode(ops.mul, [f32(shape), f32(shape)], {})], {}),
      f32(shape),
    ], {}),
    logSoftmax: makeNode(ops.logSoftmax, [x], {}),
    layerNorm: makeNode(ops.layerNorm, [x], { eps: 1e-5 }),
    softmaxBackward: makeNode(ops.softmaxBackward, [y, g], {}),
    logSoftmaxBackward: makeNode(ops.logSoftmaxBackward, [
      makeNode(ops.logSoftmax, [x], {}),
      g,
    ], {}),
    layerNormBackward: makeNode(ops.layerNormBackward, [x, g], { eps: 0.1 }),
    crossEntropy: makeNode(ops.crossEntropy, [x, label], {}),
    crossEntropyBackward: makeNode(ops.crossEntropyBackward, [x, label, f32([rows])], {}),
  };
}

Deno.test("row-wise ops match the CPU reference with a workgroup per row and one invocation per row", async () => {
  const outputs: Record<string, Node> = {};
  for (const [rows, cols] of [[3, 300], [2, 1000], [5, 9]]) {
    for (const [name, node] of Object.entries(cases(rows, cols))) {
      outputs[`${name}[${rows},${cols}]`] = node;
    }
  }
  const graph = makeGraph({ inputs, outputs });
  const exe = await compile(graph, { backend: "webgpu" });
  const run = await exe.run(feeds, { read: Object.keys(outputs) });
  const reference = evaluate(graph, { inputs: feeds, params: {} });
  assert.deepEqual(await referenceFailures(run, reference, Object.keys(outputs)), []);
  exe.destroy();
});

function count(stmts: readonly Stmt[], kind: Stmt["kind"]): number {
  let n = 0;
  for (const s of stmts) {
    if (s.kind === kind) n++;
    if (s.kind === "loop") n += count(s.body, kind);
    if (s.kind === "if") n += count(s.then, kind) + count(s.otherwise ?? [], kind);
  }
  return n;
}

Deno.test("a workgroup per row reduces inline in the kernel body; a short row needs no reductions", () => {
  const long = makeNode(ops.input, [], { shape: [4, ROWWISE_SERIAL_MAX_COLS + 1], dtype: "f32" });
  const g = makeNode(ops.input, [], { shape: long.shape, dtype: "f32" });
  const wide = rowwiseKernel(makeNode(ops.layerNormBackward, [long, g], { eps: 1e-5 }), [long, g]);
  const program = wide.program!;
  // mean, variance, Σg, Σg·y: four row-wide sums, each one tree reduction.
  assert.equal(count(program.body, "treeReduce"), 4);
  assert.deepEqual(program.shared, [{ name: "red", element: "f32", length: 64 }]);
  assert.deepEqual([program.workgroupSize, program.dispatch], [[64, 1, 1], [4, 1, 1]]);
  assert.doesNotMatch(toKernel(wide.program).wgsl, /fn row_(sum|max)/);

  const short = makeNode(ops.input, [], { shape: [70, 8], dtype: "f32" });
  const serial = rowwiseKernel(makeNode(ops.softmax, [short], {}), [short]).program;
  assert.equal(count(serial.body, "treeReduce"), 0);
  assert.equal(count(serial.body, "barrier"), 0);
  assert.deepEqual([serial.shared, serial.dispatch], [[], [2, 1, 1]]);
});

Deno.test("a cross-entropy's loss is written by one invocation of its row", () => {
  const logits = makeNode(ops.input, [], { shape: [2, 400], dtype: "f32" });
  const label = makeNode(ops.input, [], { shape: [2], dtype: "i32" });
  const kernel = toKernel(
    rowwiseKernel(makeNode(ops.crossEntropy, [logits, label], {}), [logits, label]).program,
  );
  assert.match(
    kernel.wgsl,
    /if \(\(lid == 0u\)\) \{\n\s+var loss\w*: f32 = bitcast<f32>\(0x7fc00000u\);/,
  );
  assert.match(kernel.wgsl, /store\(row, loss\w*\);/);
});

Deno.test("rowwise ops, and only they, declare a rowwise rule", () => {
  const base = {
    kind: "fused" as const,
    infer: ([x]: readonly { shape: readonly number[]; dtype: "f32" }[]) => x,
    cpu: () => new Float64Array(0),
    noGradient: "a test op",
  };
  assert.throws(
    () => defineOp({ ...base, name: "test_rowwise_without_rule", lowering: "rowwise" }),
    /a rowwise op, and only one, needs a rowwise rule/,
  );
  assert.throws(
    () =>
      defineOp({
        ...base,
        name: "test_inline_with_row_rule",
        lowering: "inline",
        rowwise: () => {},
      }),
    /a rowwise op, and only one, needs a rowwise rule/,
  );
});
