// The reference GPT (docs/ARCHITECTURE.md §9): parameter names and shapes, a float64
// finite-difference check of the gradient of every trainable parameter of a
// tiny 2-layer model (both heads), frozen parameters costing no gradient
// work, the causal mask, and the initial loss.

import assert from "node:assert/strict";
import { grad } from "../../compiler/autodiff.ts";
import { type Graph, graphNodes, makeNode, type Node, sizeOf } from "../../compiler/ir.ts";
import { rewrite } from "../../compiler/rewrite.ts";
import { type GptConfig, gptGraph, type GptShape } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { evaluate, type TensorData } from "../../backends/cpu/interpreter.ts";
import { checkGraphGradients, Rng } from "../ops/_gradcheck.ts";
import * as ops from "../../ops/mod.ts";

const V = 7, T = 5, D = 4, HEADS = 2, LAYERS = 2, CLASSES = 3;
const SHAPE: GptShape = { batch: 2, seqLen: 4 };
const LM: GptConfig = {
  vocabSize: V,
  maxSeqLen: T,
  dModel: D,
  heads: HEADS,
  layers: LAYERS,
  head: "lm",
};
const CLS: GptConfig = { ...LM, head: "classifier", numClasses: CLASSES };

/** Every parameter docs/ARCHITECTURE.md §9 names, with its shape. */
function expectedParams(config: GptConfig): Record<string, number[]> {
  const d = config.dModel;
  const want: Record<string, number[]> = {
    "embed.weight": [config.vocabSize, d],
    "pos.weight": [config.maxSeqLen, d],
    "ln_f.weight": [d],
    "ln_f.bias": [d],
  };
  for (let i = 0; i < config.layers; i++) {
    for (const ln of ["ln1", "ln2"]) {
      want[`layers.${i}.${ln}.weight`] = [d];
      want[`layers.${i}.${ln}.bias`] = [d];
    }
    for (const p of ["q_proj", "k_proj", "v_proj", "o_proj"]) {
      want[`layers.${i}.attn.${p}.weight`] = [d, d];
      want[`layers.${i}.attn.${p}.bias`] = [d];
    }
    want[`layers.${i}.mlp.fc1.weight`] = [4 * d, d];
    want[`layers.${i}.mlp.fc1.bias`] = [4 * d];
    want[`layers.${i}.mlp.fc2.weight`] = [d, 4 * d];
    want[`layers.${i}.mlp.fc2.bias`] = [d];
  }
  if (config.head === "lm") want["lm_head.weight"] = [config.vocabSize, d];
  else {
    want["classifier.weight"] = [config.numClasses ?? 2, d];
    want["classifier.bias"] = [config.numClasses ?? 2];
  }
  return want;
}

function paramTable(graph: Graph): Record<string, number[]> {
  return Object.fromEntries(graph.params.map((p) => [p.name!, [...p.shape]]));
}

/** Random parameter values with O(1) gradients (LayerNorm scales near 1). */
function randomParams(graph: Graph, seed: number): Record<string, Float64Array> {
  const rng = new Rng(seed);
  return Object.fromEntries(graph.params.map((p) => {
    const n = sizeOf(p.shape);
    const isLnWeight = /(^|\.)ln(1|2|_f)\.weight$/.test(p.name!);
    const scale = p.name!.endsWith(".bias") ? 0.3 : 0.6;
    const values = rng.array(
      n,
      (r) => (isLnWeight ? 1 + r.uniform(-0.3, 0.3) : r.uniform(-scale, scale)),
    );
    return [p.name!, Float64Array.from(values)];
  }));
}

const LM_INPUTS = { tokens: [1, 2, 3, 4, 5, 6, 0, 1], targets: [2, 3, 4, 5, 6, 0, -1, 2] };
const CLS_INPUTS = { tokens: [1, 2, 3, 4, 5, 6, 0, 1], labels: [2, 0], lastIndex: [3, 1] };

Deno.test("GPT parameter names and shapes follow docs/ARCHITECTURE.md §9", async (t) => {
  for (const config of [LM, CLS]) {
    await t.step(config.head, () => {
      const g = gptGraph(config, SHAPE);
      assert.deepEqual(paramTable(g), expectedParams(config));
      // Sorted by name, all trainable, f32.
      const names = g.params.map((p) => p.name!);
      assert.deepEqual(names, [...names].sort());
      assert.ok(g.params.every((p) => p.attrs.role === "trainable" && p.dtype === "f32"));
      assert.deepEqual(
        g.inputs.map((n) => n.name),
        config.head === "lm" ? ["tokens", "targets"] : [
          "tokens",
          "labels",
          "lastIndex",
        ],
      );
      const logits = config.head === "lm" ? [2, 4, V] : [2, CLASSES];
      assert.deepEqual([...g.outputs.logits.shape], logits);
      assert.deepEqual([...g.outputs.loss.shape], []);
      // LayerNorms start as the identity affine map.
      const init = initParams(g, { seed: 3 });
      for (const [name, values] of Object.entries(init)) {
        if (/ln(1|2|_f)\.weight$/.test(name)) assert.ok(values.every((v) => v === 1), name);
        if (/ln(1|2|_f)\.bias$/.test(name)) assert.ok(values.every((v) => v === 0), name);
      }
    });
  }
  await t.step("mlpHidden and a dropout seed input", () => {
    const g = gptGraph({ ...LM, layers: 1, mlpHidden: 6, dropout: 0.1 }, SHAPE);
    assert.deepEqual(paramTable(g)["layers.0.mlp.fc1.weight"], [6, D]);
    assert.deepEqual(paramTable(g)["layers.0.mlp.fc2.weight"], [D, 6]);
    assert.deepEqual(g.inputs.map((n) => [n.name, n.dtype, [...n.shape]]), [
      ["tokens", "i32", [2, 4]],
      ["targets", "i32", [2, 4]],
      ["dropoutSeed", "u32", []],
    ]);
  });
});

Deno.test("GPT: float64 finite differences match the gradient of every trainable parameter", async (t) => {
  const cases: [string, GptConfig, Record<string, number[]>][] = [
    ["lm", LM, LM_INPUTS],
    ["classifier", CLS, CLS_INPUTS],
    ["lm with dropout", { ...LM, dropout: 0.2 }, { ...LM_INPUTS, dropoutSeed: [99] }],
  ];
  for (const [label, config, inputs] of cases) {
    await t.step(label, () => {
      const g = gptGraph(config, SHAPE);
      const params = randomParams(g, 17);
      const dg = grad(g);
      assert.deepEqual(
        Object.keys(dg.outputs).sort(),
        g.params.map((p) => `grad:${p.name}`).sort(),
      );
      // Every element of every param (the model is tiny); a sample of 6 with dropout on.
      const rng = new Rng(5);
      const leaves = g.params.map((p) => {
        const n = sizeOf(p.shape);
        const elements = config.dropout ? [...Array(6)].map(() => rng.int(0, n - 1)) : undefined;
        return { name: p.name!, kind: "param" as const, elements };
      });
      const report = checkGraphGradients(g, dg, inputs, params, leaves, { eps: 1e-6, tol: 1e-6 });
      // Not vacuous: every param influences the loss, except k_proj.bias (softmax over keys
      // ignores q·b_k, the same for every key) and pos rows past seqLen, whose gradient is 0.
      for (const p of g.params) {
        const gp = [...report.grads[p.name!]];
        const rows = p.name === "pos.weight" ? gp.slice(0, SHAPE.seqLen * D) : gp;
        const largest = Math.max(...rows.map(Math.abs));
        if (p.name!.endsWith("k_proj.bias")) {
          assert.ok(largest < 1e-12, `${label}: ${p.name} should have no gradient (${largest})`);
        } else assert.ok(largest > 1e-4, `${label}: gradient of ${p.name} is ~0 (${largest})`);
        if (p.name === "pos.weight") assert.ok(gp.slice(SHAPE.seqLen * D).every((v) => v === 0));
      }
    });
  }
});

/** Rebuilds `graph` with every param frozen except those named in `keep`. */
function freezeAllBut(graph: Graph, keep: readonly string[]): Graph {
  return rewrite(graph, [{
    name: "freeze",
    pattern: {
      op: "param",
      attrs: { role: "trainable" },
      where: (n) => !keep.includes(n.name!),
    },
    rewrite: ({ node }) => makeNode(ops.param, [], { ...node.attrs, role: "frozen" }, node.name),
  }]);
}

/** Nodes of `gradGraph` that are not part of the forward `graph`: the gradient work. */
function backwardNodes(graph: Graph, gradGraph: Graph): Node[] {
  const forward = new Set(graphNodes(graph).map((n) => n.id));
  return graphNodes(gradGraph).filter((n) => !forward.has(n.id));
}

/** Backward nodes that look like a weight gradient: a rank-2 matmul/permute of a weight's shape. */
function weightGradientWork(graph: Graph, nodes: readonly Node[]): string[] {
  const weights = graph.params.filter((p) => p.shape.length === 2);
  const shapes = new Set(
    weights.flatMap((p) => [p.shape.join("x"), [...p.shape].reverse().join("x")]),
  );
  const vocab = graph.params.find((p) => p.name === "embed.weight")!.shape[0];
  return nodes
    .filter((n) =>
      (n.op === "matmul" && n.shape.length === 2 && shapes.has(n.shape.join("x"))) ||
      (n.op === "scatterAdd" && n.shape[0] === vocab)
    )
    .map((n) => `${n.op} [${n.shape}]`);
}

Deno.test("GPT classifier: frozen params get no gradient work", () => {
  const keep = "layers.1.mlp.fc2.bias";
  const full = gptGraph(CLS, SHAPE);
  const frozen = freezeAllBut(full, [keep]);
  assert.deepEqual(frozen.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name), [
    keep,
  ]);
  assert.equal(frozen.params.length, full.params.length);

  const fullGrad = grad(full);
  const frozenGrad = grad(frozen);
  assert.deepEqual(Object.keys(frozenGrad.outputs), [`grad:${keep}`]);

  const fullWork = backwardNodes(full, fullGrad);
  const frozenWork = backwardNodes(frozen, frozenGrad);
  // The all-trainable graph does do weight-gradient work (so the check below can fail)...
  assert.ok(weightGradientWork(full, fullWork).length >= 4 * LAYERS + 2);
  assert.ok(fullWork.some((n) => n.op === "scatterAdd" && n.shape[0] === V));
  // ...the frozen one none: no matmul producing a weight-shaped gradient, no embedding scatter.
  assert.deepEqual(weightGradientWork(frozen, frozenWork), []);
  assert.ok(!frozenWork.some((n) => n.op === "scatterAdd" && n.shape[0] === V));
  // Nothing flows below layer 1's MLP: no attention or layer-0 backward ops at all.
  const opNames = frozenWork.map((n) => n.op);
  assert.ok(!opNames.includes("softmaxBackward"), "no attention backward");
  assert.equal(opNames.filter((o) => o === "layerNormBackward").length, 1, "only ln_f's backward");
  assert.ok(
    frozenWork.length * 8 < fullWork.length,
    `frozen: ${frozenWork.length} backward nodes, all trainable: ${fullWork.length}`,
  );
  // Differentiating only that bias in the all-trainable graph builds the same work and value.
  const onlyBias = grad(full, { wrt: [keep] });
  assert.equal(backwardNodes(full, onlyBias).length, frozenWork.length);
  const params = randomParams(full, 4);
  const a = evaluate(frozenGrad, { inputs: CLS_INPUTS, params })[`grad:${keep}`].data;
  const b = evaluate(fullGrad, { inputs: CLS_INPUTS, params })[`grad:${keep}`].data;
  assert.deepEqual([...a], [...b]);
  assert.ok(a.some((v) => v !== 0));
});

Deno.test("GPT LM: the causal mask hides future tokens", () => {
  const g = gptGraph(LM, SHAPE);
  const params = randomParams(g, 8);
  const logitsFor = (tokens: number[]) =>
    evaluate(g, { inputs: { tokens, targets: LM_INPUTS.targets }, params }).logits.data;
  const base = logitsFor(LM_INPUTS.tokens);
  const at = (data: ArrayLike<number>, b: number, t: number) =>
    Array.from({ length: V }, (_, v) => data[(b * SHAPE.seqLen + t) * V + v]);
  for (const changed of [1, 2, 3]) {
    const tokens = [...LM_INPUTS.tokens];
    tokens[changed] = (tokens[changed] + 3) % V; // batch 0, position `changed`
    const other = logitsFor(tokens);
    for (let t = 0; t < SHAPE.seqLen; t++) {
      if (t < changed) {
        assert.deepEqual(at(other, 0, t), at(base, 0, t), `position ${t} saw token ${changed}`);
      } else {assert.notDeepEqual(
          at(other, 0, t),
          at(base, 0, t),
          `position ${t} ignores token ${changed}`,
        );}
      assert.deepEqual(at(other, 1, t), at(base, 1, t), "the other sequence is untouched");
    }
  }
});

Deno.test("GPT: initial loss is about ln(V) (ln(C) for the classifier)", () => {
  const shape = { batch: 8, seqLen: 5 };
  const rng = new Rng(12);
  for (const vocab of [V, 50]) {
    const config = { ...LM, vocabSize: vocab, dModel: 8 };
    const g = gptGraph(config, shape);
    const tokens = rng.array(40, (r) => r.int(0, vocab - 1));
    const targets = rng.array(40, (r) => r.int(0, vocab - 1));
    const loss = evaluate(g, {
      inputs: { tokens, targets },
      params: initParams(g, { seed: 0 }) as Record<string, TensorData>,
    }).loss.data[0];
    assert.ok(
      Math.abs(loss - Math.log(vocab)) < 0.03,
      `loss ${loss} vs ln ${vocab} = ${Math.log(vocab)}`,
    );
  }
  const g = gptGraph(CLS, shape);
  const loss = evaluate(g, {
    inputs: {
      tokens: rng.array(40, (r) => r.int(0, V - 1)),
      labels: rng.array(8, (r) => r.int(0, CLASSES - 1)),
      lastIndex: rng.array(8, (r) => r.int(0, 4)),
    },
    params: initParams(g, { seed: 1 }) as Record<string, TensorData>,
  }).loss.data[0];
  assert.ok(Math.abs(loss - Math.log(CLASSES)) < 0.03, `classifier loss ${loss}`);
});

Deno.test("GPT LM: ignored targets (negative) do not count in the mean loss", () => {
  const g = gptGraph(LM, SHAPE);
  const params = randomParams(g, 2);
  const run = (targets: number[]) =>
    evaluate(g, { inputs: { tokens: LM_INPUTS.tokens, targets }, params });
  const all = run(LM_INPUTS.targets.map((t) => Math.max(t, 0)));
  const logits = all.logits.data;
  // Per-position cross-entropy by hand from the logits.
  const ce = (pos: number, label: number) => {
    const row = Array.from({ length: V }, (_, v) => logits[pos * V + v]);
    const m = Math.max(...row);
    return Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0)) + m - row[label];
  };
  const targets = [2, -1, 4, -1, 6, 0, -1, 2];
  const kept = targets.map((y, i) => [y, i]).filter(([y]) => y >= 0);
  const want = kept.reduce((s, [y, i]) => s + ce(i, y), 0) / kept.length;
  assert.ok(Math.abs(run(targets).loss.data[0] - want) < 1e-12);
  // All ignored: the loss is 0, not NaN.
  assert.equal(run(targets.map(() => -1)).loss.data[0], 0);
});
