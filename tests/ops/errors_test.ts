// Bad input gives a clear error that names the op (or leaf) and the shapes
// and dtypes involved — never a crash deep inside the interpreter.

import assert from "node:assert/strict";
import { grad } from "../../compiler/autodiff.ts";
import { defineOp, type DType, makeGraph, makeNode } from "../../compiler/ir.ts";
import {
  concat,
  constant,
  type InputSpec,
  param,
  randomUniform,
  Tensor,
  trace,
  type TraceResult,
  where,
} from "../../compiler/trace.ts";
import { evaluate, type TensorData } from "../../backends/cpu/interpreter.ts";
import * as ops from "../../ops/mod.ts";

const f32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "f32" });
const i32 = (name: string, shape: readonly number[]): InputSpec => ({ name, shape, dtype: "i32" });

/** Asserts `fn` throws an Error whose message matches every pattern; returns the message. */
function throwsClearly(fn: () => unknown, ...patterns: (RegExp | string)[]): string {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected an Error, got ${String(caught)}`);
  assert.ok(
    !(caught instanceof TypeError),
    `a TypeError is a crash, not a clear error: ${caught.message}`,
  );
  for (const p of patterns) {
    const ok = typeof p === "string" ? caught.message.includes(p) : p.test(caught.message);
    assert.ok(ok, `message ${JSON.stringify(caught.message)} does not match ${p}`);
  }
  return caught.message;
}

/** Traces a one-output function of f32 inputs (shapes given). */
function tr(fn: (...xs: Tensor[]) => TraceResult, ...shapes: number[][]) {
  return trace(fn, shapes.map((s, i) => f32("xyzw"[i], s)));
}

Deno.test("matmul with mismatched shapes names the op and both operand types", () => {
  throwsClearly(() => tr((a, b) => a.matmul(b), [2, 3], [4, 5]), "matmul", "f32[2,3]", "f32[4,5]");
  throwsClearly(
    () => tr((a, b) => a.matmul(b), [2, 3], [4, 5]),
    /inner dimensions differ: 3 .* vs 4/,
  );
  throwsClearly(() => tr((a, b) => a.matmul(b), [3], [3, 2]), "matmul", "f32[3]", "f32[3,2]");
  // Batch dims that cannot broadcast.
  throwsClearly(() => tr((a, b) => a.matmul(b), [2, 3, 4], [5, 4, 2]), "matmul", "[2]", "[5]");
  // Integer operands.
  throwsClearly(
    () => trace((a, b) => a.matmul(b), [i32("a", [2, 2]), i32("b", [2, 2])]),
    "matmul",
    "f32",
    "i32[2,2]",
  );
});

Deno.test("broadcast failures name the op and both shapes", () => {
  throwsClearly(
    () => tr((a, b) => a.add(b), [2, 3], [4]),
    /^add: cannot broadcast shapes \[2,3\] and \[4\]/,
  );
  throwsClearly(() => tr((a, b) => a.mul(b), [2, 3], [3, 2]), "mul", "[2,3]", "[3,2]");
  throwsClearly(() => tr((a) => a.broadcastTo([3, 3]), [2, 3]), "broadcastTo", "[2,3]", "[3,3]");
  throwsClearly(() => tr((a) => a.broadcastTo([3]), [1, 3]), "broadcast", "[3]", "f32[1,3]");
  throwsClearly(
    () => tr((a, b) => where(a.gt(0), a, b), [2, 3], [2]),
    "where",
    "[2,3]",
    "[2]",
  );
  // Primitives themselves insist on equal shapes (broadcasting is explicit).
  throwsClearly(
    () =>
      tr((a, b) => new Tensor(makeNode(ops.add, [a.node, b.node])), [2], [
        3,
      ]),
    "add",
    "equal shapes",
    "f32[2], f32[3]",
  );
  throwsClearly(
    () => trace((a, b) => a.add(b), [f32("a", [2]), i32("b", [2])]),
    "add",
    "same dtype",
    "f32[2], i32[2]",
  );
});

Deno.test("unknown dtypes in an input spec, a param or a cast", () => {
  throwsClearly(
    () => trace((x) => x, [{ name: "x", shape: [2], dtype: "f16" as DType }]),
    /input "x": unknown dtype "f16"/,
  );
  throwsClearly(() => tr((x) => x.cast("f64" as DType), [2]), "cast", "f64");
  throwsClearly(
    () => tr((x) => x.mul(param("w", [2], { dtype: "float" as DType })), [2]),
    "param",
    "float",
  );
  throwsClearly(
    () =>
      makeNode(ops.cast, [makeNode(ops.input, [], { shape: [2], dtype: "f32" }, "x")], {
        dtype: "half",
      }),
    /^cast: unknown target dtype "half" \(got f32\[2\]\)/,
  );
  throwsClearly(() => trace((x) => x, [{ name: "x", shape: [-1, 2] }]), 'input "x"', "-1");
  throwsClearly(() => defineOp({ ...ops.gather }), "op gather is defined twice");
});

Deno.test("feeding errors name the leaf and its type", () => {
  const g = trace((x, y) => x.mul(param("w", [2, 2])).add(y), [f32("x", [2, 2]), f32("y", [2])]);
  const x = [1, 2, 3, 4];
  const y = [1, 2];
  const w = [1, 1, 1, 1];
  throwsClearly(() => evaluate(g, { inputs: { x, y } }), /^param "w" \(f32\[2,2\]\) was not fed/);
  throwsClearly(
    () => evaluate(g, { inputs: { x }, params: { w } }),
    /^input "y" \(f32\[2\]\) was not fed/,
  );
  throwsClearly(
    () => evaluate(g, { inputs: { x, y, z: [1] }, params: { w } }),
    /^unknown input "z" \(the graph takes: x, y\)/,
  );
  throwsClearly(
    () => evaluate(g, { inputs: { x: [1, 2, 3], y }, params: { w } }),
    /^input "x" expects f32\[2,2\] \(4 elements\), got 3 elements/,
  );
  throwsClearly(
    () => evaluate(g, { inputs: { x, y }, params: { w: new Float32Array(5) } }),
    /^param "w" expects f32\[2,2\] \(4 elements\), got 5 elements/,
  );
  // Extra params are allowed (a checkpoint may hold more than one graph reads).
  evaluate(g, { inputs: { x, y }, params: { w, other: [1] } as Record<string, TensorData> });
});

Deno.test("shape op errors: reshape, permute, transpose, slice, pad, concat, reductions", () => {
  throwsClearly(
    () => tr((x) => x.reshape([4, 2]), [2, 3]),
    /^reshape: cannot reshape to \[4,2\]: element counts differ \(got f32\[2,3\]\)/,
  );
  throwsClearly(() => tr((x) => x.reshape([4, -1]), [2, 3]), "reshape", "6 elements", "[4,-1]");
  throwsClearly(() => tr((x) => x.reshape([-1, -1]), [2, 3]), "reshape", "-1");
  throwsClearly(
    () => tr((x) => x.permute([0, 0]), [2, 3]),
    /^permute: perm \[0,0\] is not a permutation of 2 axes \(got f32\[2,3\]\)/,
  );
  throwsClearly(() => tr((x) => x.permute([1, 0, 2]), [2, 3]), "permute", "2 axes", "f32[2,3]");
  throwsClearly(() => tr((x) => x.transpose(0, 2), [2, 3]), "transpose", "axis 2", "rank 2");
  throwsClearly(
    () => tr((x) => x.slice([0, 1], [2, 5]), [2, 3]),
    /^slice: range \[1, 5\) is out of bounds on axis 1 \(got f32\[2,3\]\)/,
  );
  throwsClearly(() => tr((x) => x.slice([0], [1]), [2, 3]), "slice", "2 axes", "f32[2,3]");
  throwsClearly(() => tr((x) => x.slice([1, 2], [0, 3]), [2, 3]), "slice", "[1, 0)", "axis 0");
  throwsClearly(() => tr((x) => x.narrow(1, 2, 2), [2, 3]), "slice", "[2, 4)", "axis 1");
  throwsClearly(() => tr((x) => x.pad([1, -1], [0, 0]), [2, 3]), "pad", "non-negative", "f32[2,3]");
  throwsClearly(
    () => tr((a, b) => concat([a, b], 0), [2, 3], [2, 4]),
    /^concat: operands must agree except on axis 0 \(got f32\[2,3\], f32\[2,4\]\)/,
  );
  throwsClearly(
    () => tr((a, b) => concat([a, b], 2), [2, 3], [2, 3]),
    "concat",
    "axis 2",
    "rank 2",
  );
  throwsClearly(() => concat([], 0), "concat", "at least one");
  throwsClearly(() => tr((x) => x.sum(2), [2, 3]), "axis 2", "rank 2");
  throwsClearly(() => tr((x) => x.sum([0, 0]), [2, 3]), "sum", "repeated axis");
  throwsClearly(() => tr((x) => x.gt(0).sum(), [2, 3]), "sum", "bool");
  throwsClearly(() => tr((x) => x.softmax(2), [2, 3]), "softmax", "axis 2");
  throwsClearly(() => tr((x) => x.softmax(), []), "softmax", "rank 0");
  throwsClearly(
    () => tr((x) => new Tensor(makeNode(ops.softmax, [x.node])), []),
    "softmax",
    "at least one axis",
    "f32[]",
  );
});

Deno.test("indexing, loss and random op errors", () => {
  throwsClearly(
    () => tr((t, i) => t.gather(i), [3, 2], [2]),
    /^gather: indices must be i32 or u32 \(got f32\[3,2\], f32\[2\]\)/,
  );
  throwsClearly(
    () => trace((x, y) => x.crossEntropy(y), [f32("x", [2, 3]), f32("y", [2])]),
    "crossEntropy",
    "f32[2,3], f32[2]",
  );
  throwsClearly(
    () => trace((x, y) => x.crossEntropy(y), [f32("x", [2, 3]), i32("y", [3])]),
    "crossEntropy",
    "f32[2,3], i32[3]",
  );
  throwsClearly(
    () =>
      trace((x, s) => x.dropout(1.5, s, 0), [f32("x", [2]), {
        name: "s",
        shape: [],
        dtype: "u32",
      }]),
    "dropout",
    "1.5",
  );
  throwsClearly(
    () => trace((x, s) => x.dropout(0.5, s, 0), [f32("x", [2]), i32("s", [])]),
    "dropout",
    "u32 scalar",
    "i32[]",
  );
  throwsClearly(
    () => trace(() => randomUniform([2], { seed: 1, stream: 0, bound: -1 }), []),
    "random",
    "bound",
  );
  throwsClearly(
    () => trace(() => randomUniform([2], { seed: -1, stream: 0, bound: 1 }), []),
    "random",
    "seed",
  );
  throwsClearly(() => tr((x) => x.normalize(-1), [2, 3]), "layerNorm", "eps");
  throwsClearly(() => constant([1, 2, 3], [2]), "const", "3 elements", "[2]");
});

Deno.test("tracing misuse: params outside trace, duplicate names, nested traces", () => {
  throwsClearly(() => param("w", [2]), "param() can only be called inside trace()");
  throwsClearly(
    () => tr((x) => x.mul(param("w", [2])).mul(param("w", [2])), [2]),
    'param "w" is declared twice',
  );
  throwsClearly(
    () => trace((x) => x, [f32("x", [2]), f32("x", [2])]),
    'input "x" is declared twice',
  );
  throwsClearly(
    () => tr(() => tr((x) => x, [2]).outputs.out as never, [2]),
    "trace() cannot be nested",
  );
});

Deno.test("grad errors: non-scalar output, frozen or unknown leaves", () => {
  const g = trace(
    (x, t) => ({
      loss: x.mul(param("w", [2, 3])).mul(param("f", [3], { role: "frozen" })).sum(),
      vec: x.exp(),
      ints: t,
    }),
    [f32("x", [2, 3]), i32("t", [2])],
  );
  throwsClearly(
    () => grad(g, { of: "vec" }),
    /^grad: output "vec" must be an f32 scalar, got f32\[2,3\]/,
  );
  throwsClearly(() => grad(g, { of: "ints" }), "grad", '"ints"', "i32[2]");
  throwsClearly(() => grad(g, { of: "nope" }), "grad", "nope", "outputs: loss, vec, ints");
  throwsClearly(
    () => grad(tr((x) => [x.sum(), x.sum()], [2])),
    "grad",
    "no output loss",
    "out0, out1",
  );
  throwsClearly(() => grad(g, { wrt: ["f"] }), /^grad: param "f" is frozen/);
  throwsClearly(() => grad(g, { wrt: ["nope"] }), 'grad: no param "nope" (params: f, w)');
  throwsClearly(() => grad(g, { inputs: ["t"] }), 'grad: input "t" is i32, not f32');
  throwsClearly(() => grad(g, { inputs: ["q"] }), 'grad: no input "q"');
  // The default differentiates only trainable params: f is silently skipped.
  assert.deepEqual(Object.keys(grad(g).outputs), ["grad:w"]);
});

Deno.test("grad reaching an op without a gradient rule names the op and its reason", () => {
  // Comparisons (the other noGradient ops with operands) can never receive a float
  // cotangent: `where` and `cast` return none for their bool operands. Second-order
  // gradients, though, reach the fused backward ops, which have no vjp.
  const cases: [string, (x: Tensor) => Tensor][] = [
    ["softmaxBackward", (x) => x.softmax()],
    ["logSoftmaxBackward", (x) => x.logSoftmax()],
    ["layerNormBackward", (x) => x.normalize()],
  ];
  for (const [op, fn] of cases) {
    const g = tr((x) => ({ loss: fn(x).mul(constant([1, -2, 3, 0.5, 1, 2], [2, 3])).sum() }), [
      2,
      3,
    ]);
    const gx = grad(g, { inputs: ["x"] }).outputs["grad:x"];
    assert.equal(gx.op, op);
    const second = makeGraph({
      inputs: g.inputs,
      outputs: { loss: makeNode(ops.sum, [makeNode(ops.mul, [gx, gx])], { axes: [0, 1] }) },
    });
    throwsClearly(
      () => grad(second, { inputs: ["x"] }),
      `grad: op ${op} has no gradient rule (a backward op: second-order gradients are not supported)`,
      "f32[2,3]",
    );
  }
  // A comparison on the path is fine: it just contributes nothing.
  const g = tr((x) => ({ loss: x.gt(0).cast("f32").mul(x).sum() }), [3]);
  const dx = evaluate(grad(g, { inputs: ["x"] }), { inputs: { x: [-1, 2, 3] } })["grad:x"];
  assert.deepEqual([...dx.data], [0, 1, 1]);
});

Deno.test("interpreter range errors name the op and the bad value", () => {
  throwsClearly(
    () =>
      evaluate(trace((t, i) => t.gather(i), [f32("t", [3, 2]), i32("i", [2])]), {
        inputs: { t: [1, 2, 3, 4, 5, 6], i: [0, 7] },
      }),
    /^gather: index 7 at position 1 is out of range for 3 rows/,
  );
  throwsClearly(
    () =>
      evaluate(trace((x, y) => x.crossEntropy(y), [f32("x", [2, 3]), i32("y", [2])]), {
        inputs: { x: [1, 2, 3, 4, 5, 6], y: [0, 3] },
      }),
    /^crossEntropy: label 3 is out of range for 3 classes/,
  );
});

// BUG (ops/nn.ts, crossEntropyBackward cpu rule): the forward op rejects a label ≥ C, but the
// backward op silently treats it as "no class" and returns g·softmax(logits). A gradient graph
// (which does not contain the forward crossEntropy node) therefore trains on bad labels with no
// error: evaluate(grad(g), ...) with label 5 of 3 classes returns [0.090, 0.245, 0.665].
Deno.test("crossEntropy's gradient rejects an out-of-range label like its forward", () => {
  const g = trace((x, y) => ({ loss: x.crossEntropy(y).sum() }), [f32("x", [1, 3]), i32("y", [1])]);
  const dg = grad(g, { inputs: ["x"] });
  throwsClearly(
    () => evaluate(dg, { inputs: { x: [1, 2, 3], y: [5] } }),
    /label 5 is out of range for 3 classes/,
  );
});
