import assert from "node:assert/strict";
import fc from "fast-check";
import {
  attrKey,
  formatType,
  type Graph,
  graphNodes,
  makeNode,
  type Node,
} from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import { print } from "../../compiler/print.ts";
import { match } from "../../compiler/rewrite.ts";
import { constant, param, Tensor, trace } from "../../compiler/trace.ts";
import { constantFold, cse, dce, FOLD_LIMIT } from "../../compiler/passes/cleanup.ts";
import { simplify, simplifyRules } from "../../compiler/passes/simplify.ts";
import { evaluate, type EvaluateOptions, type Feeds } from "../../backends/cpu/interpreter.ts";
import { type GraphCase, graphCaseArb } from "./_random_graph.ts";
import * as ops from "../../ops/mod.ts";

const SEED = 20240611;
const RUNS = 150;

/** The pipeline order the brief fixes: simplify → constantFold → cse → dce. */
function pipeline(graph: Graph): Graph {
  return dce(cse(constantFold(simplify(graph))));
}

/** Equal within `rel` relative error; NaN equals NaN; infinities must match exactly. */
function close(a: number, b: number, rel: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (a === b) return true;
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));
}

function assertSameResults(
  before: Graph,
  after: Graph,
  feeds: Feeds,
  rel: number,
  options: EvaluateOptions = {},
): void {
  const want = evaluate(before, feeds, options);
  const got = evaluate(after, feeds, options);
  for (const name of Object.keys(want)) {
    const [w, g] = [want[name].data, got[name].data];
    assert.equal(g.length, w.length, `output ${name}: length`);
    for (let i = 0; i < w.length; i++) {
      if (!close(w[i], g[i], rel)) {
        assert.fail(`output ${name}[${i}]: ${g[i]} after the pass, ${w[i]} before`);
      }
    }
  }
}

/** The pass keeps the signature: output names (in order), their types, and the inputs. */
function assertSameSignature(before: Graph, after: Graph): void {
  assert.deepEqual(Object.keys(after.outputs), Object.keys(before.outputs));
  for (const [name, node] of Object.entries(before.outputs)) {
    assert.equal(formatType(after.outputs[name]), formatType(node), `type of output ${name}`);
  }
  assert.deepEqual(after.inputs, before.inputs);
}

function countOps(graph: Graph, op: string): number {
  return graphNodes(graph).filter((n) => n.op === op).length;
}

const x23 = [{ name: "x", shape: [2, 3] }];

Deno.test("passes: properties on random graphs", async (t) => {
  const passes: [string, (g: Graph) => Graph, number, EvaluateOptions][] = [
    ["simplify", simplify, 1e-12, {}],
    ["cse", cse, 1e-12, {}],
    ["dce", dce, 1e-12, {}],
    // constantFold evaluates in f32 by contract ("like the GPU would"): compare the f32
    // evaluations, which round every op the same way the folder does.
    ["constantFold", constantFold, 1e-6, { precision: "f32" }],
    ["simplify→constantFold→cse→dce", pipeline, 1e-6, { precision: "f32" }],
  ];
  for (const [name, pass, rel, options] of passes) {
    await t.step(`${name}: validates, keeps the signature and the values`, () => {
      fc.assert(
        fc.property(graphCaseArb, ({ graph, feeds }: GraphCase) => {
          validate(graph);
          const after = validate(pass(graph));
          assertSameSignature(graph, after);
          assertSameResults(graph, after, feeds, rel, options);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });
  }

  await t.step("simplify never increases the node count", () => {
    fc.assert(
      fc.property(graphCaseArb, ({ graph }: GraphCase) => {
        const before = graphNodes(graph).length;
        const after = graphNodes(simplify(graph)).length;
        assert.ok(after <= before, `${after} nodes after simplify, ${before} before`);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  await t.step("simplify reaches a fixed point: no rule applies to its result", () => {
    fc.assert(
      fc.property(graphCaseArb, ({ graph }: GraphCase) => {
        const after = simplify(graph);
        for (const node of graphNodes(after)) {
          for (const rule of simplifyRules) {
            const m = match(rule.pattern, node);
            const next = m && rule.rewrite(m);
            assert.ok(
              next === undefined || next === node,
              `rule ${rule.name} still applies to ${node.op}\n${print(after)}`,
            );
          }
        }
        const again = simplify(after);
        for (const name of Object.keys(after.outputs)) {
          assert.equal(again.outputs[name], after.outputs[name]);
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  await t.step("constantFold leaves no foldable node behind", () => {
    const leaves = new Set(["input", "param", "const", "random", "iota", "dropout"]);
    fc.assert(
      fc.property(graphCaseArb, ({ graph }: GraphCase) => {
        const after = constantFold(graph);
        for (const node of graphNodes(after)) {
          const foldable = !leaves.has(node.op) && node.inputs.length > 0 &&
            node.inputs.every((i) => i.op === "const") && node.shape.reduce((a, b) =>
                a * b, 1) <= FOLD_LIMIT;
          assert.ok(!foldable, `${node.op} on constants survived constantFold\n${print(after)}`);
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  await t.step("cse leaves no two structurally equal nodes", () => {
    fc.assert(
      fc.property(graphCaseArb, ({ graph }: GraphCase) => {
        const seen = new Map<string, Node>();
        for (const node of graphNodes(cse(graph))) {
          const key = `${node.op}(${node.inputs.map((i) => i.id)})${
            attrKey(node.attrs)
          }@${node.name}`;
          const other = seen.get(key);
          assert.ok(other === undefined || other === node, `duplicate ${key}`);
          seen.set(key, node);
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  await t.step("dce keeps exactly the reachable params and, unless asked, every input", () => {
    fc.assert(
      fc.property(graphCaseArb, ({ graph, feeds }: GraphCase) => {
        const kept = dce(graph);
        assert.deepEqual(kept.inputs, graph.inputs);
        const pruned = validate(dce(graph, { pruneInputs: true }));
        const used = new Set(graphNodes({ ...graph, inputs: [] }).map((n) => n.id));
        assert.deepEqual(pruned.inputs, graph.inputs.filter((n) => used.has(n.id)));
        const prunedFeeds = {
          inputs: Object.fromEntries(pruned.inputs.map((n) => [n.name!, feeds.inputs![n.name!]])),
          params: feeds.params,
        };
        assertSameResults(graph, pruned, { ...feeds, ...prunedFeeds }, 0);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});

Deno.test("simplify: identities", async (t) => {
  const cases: [string, (x: Tensor) => Tensor][] = [
    ["x*1", (x) => x.mul(1)],
    ["1*x", (x) => constant(1).mul(x)],
    ["x*ones", (x) => x.mul(constant(1, [2, 3]))],
    ["x+0", (x) => x.add(0)],
    ["0+x", (x) => constant(0).add(x)],
    ["x-0", (x) => x.sub(0)],
    ["x/1", (x) => x.div(1)],
    ["--x", (x) => x.neg().neg()],
    ["----x", (x) => x.neg().neg().neg().neg()],
    ["transpose∘transpose", (x) => x.T.T],
    [
      "permute∘inverse permute",
      (x) => x.reshape([1, 2, 3]).permute([2, 0, 1]).permute([1, 2, 0]).reshape([2, 3]),
    ],
    ["reshape to itself", (x) => x.reshape([2, 3])],
    ["reshape∘reshape back", (x) => x.reshape([6]).reshape([3, 2]).reshape([2, 3])],
    ["cast to the same dtype", (x) => new Tensor(makeNode(ops.cast, [x.node], { dtype: "f32" }))],
    ["sum over no axes", (x) => x.sum([])],
    ["mean over no axes", (x) => x.mean([])],
    ["full slice", (x) => x.slice([0, 0], [2, 3])],
    ["zero pad", (x) => x.pad([0, 0], [0, 0])],
    [
      "all of them",
      (x) => x.T.T.mul(1).add(0).sub(0).div(1).neg().neg().reshape([6]).reshape([2, 3]),
    ],
  ];
  for (const [name, f] of cases) {
    await t.step(`${name} → x`, () => {
      const g = trace(f, x23);
      const s = validate(simplify(g));
      assert.equal(s.outputs.out, g.inputs[0], print(s));
    });
  }

  await t.step(
    "x*1 is removed where the 1 is not an identity for the shape (broadcast kept)",
    () => {
      const g = trace((x) => x.mul(constant(1, [4, 3])), [{ name: "x", shape: [3] }]);
      const out = validate(simplify(g)).outputs.out;
      assert.equal(out.op, "broadcast");
      assert.deepEqual(out.shape, [4, 3]);
    },
  );

  await t.step("non-identities stay: x*2, x+1, 0-x, 1/x, x-x", () => {
    const cases: [(x: Tensor) => Tensor, string][] = [
      [(x) => x.mul(2), "mul"],
      [(x) => x.add(1), "add"],
      [(x) => constant(0).sub(x), "sub"],
      [(x) => x.reciprocal(), "div"],
      [(x) => x.sub(x), "sub"],
      [(x) => x.mul(0), "mul"],
    ];
    for (const [f, op] of cases) {
      const g = trace(f, x23);
      const out = validate(simplify(g)).outputs.out;
      assert.equal(out.op, op);
      const feeds = { inputs: { x: [1, -2, 3, 0.5, 5, -6] } };
      assertSameResults(g, simplify(g), feeds, 0);
    }
  });

  await t.step("transpose∘permute composes into one permute", () => {
    const g = trace((x) => x.permute([1, 2, 0]).permute([2, 1, 0]), [{
      name: "x",
      shape: [2, 3, 4],
    }]);
    const out = validate(simplify(g)).outputs.out;
    assert.equal(out.op, "permute");
    assert.equal(out.inputs[0].op, "input");
    assert.deepEqual(out.shape, [2, 4, 3]);
    assert.deepEqual(out.attrs.perm, [0, 2, 1]);
    const feeds = { inputs: { x: Array.from({ length: 24 }, (_, i) => i) } };
    assertSameResults(g, simplify(g), feeds, 0);
  });

  await t.step("reshape∘reshape → a single reshape", () => {
    const g = trace((x) => x.reshape([6]).reshape([3, 2]), x23);
    const out = validate(simplify(g)).outputs.out;
    assert.equal(out.op, "reshape");
    assert.deepEqual(out.shape, [3, 2]);
    assert.equal(out.inputs[0], g.inputs[0]);
  });

  await t.step("broadcast of a fill constant folds into a const", () => {
    const g = trace((x) => x.add(constant(2.5)), x23);
    const add = simplify(g).outputs.out;
    const c = add.inputs[1];
    assert.equal(c.op, "const");
    assert.deepEqual(c.shape, [2, 3]);
    assert.equal(c.attrs.value, 2.5);
    assert.equal(countOps(simplify(g), "broadcast"), 0);
  });

  await t.step("broadcast∘broadcast merges; a reshaped fill is a fill", () => {
    const g = trace((x) => x.broadcastTo([3, 2]).broadcastTo([4, 3, 2]), [{
      name: "x",
      shape: [2],
    }]);
    const out = validate(simplify(g)).outputs.out;
    assert.equal(out.op, "broadcast");
    assert.equal(out.inputs[0], g.inputs[0]);
    const r = trace(() => constant(7, [6]).reshape([2, 3]), []);
    assert.deepEqual(simplify(r).outputs.out.attrs, { value: 7, shape: [2, 3], dtype: "f32" });
  });
});

Deno.test("constantFold", async (t) => {
  await t.step("constant(2).add(3) folds to the const 5", () => {
    const g = trace(() => constant(2).add(3), []);
    const out = validate(constantFold(g)).outputs.out;
    assert.equal(out.op, "const");
    assert.equal(out.attrs.value, 5);
    assert.deepEqual(out.shape, []);
  });

  await t.step("folds inside a graph and leaves the rest", () => {
    const g = trace((x) => x.mul(constant(2).add(3)), x23);
    const f = validate(constantFold(g));
    const out = f.outputs.out;
    assert.equal(out.op, "mul");
    assert.equal(out.inputs[0], g.inputs[0]);
    assert.equal(out.inputs[1].op, "const");
    assert.equal(out.inputs[1].attrs.value, 5);
    assert.deepEqual(out.inputs[1].shape, [2, 3]);
    const res = evaluate(f, { inputs: { x: [1, 2, 3, 4, 5, 6] } }).out.data;
    assert.deepEqual([...res], [5, 10, 15, 20, 25, 30]);
  });

  await t.step("non-uniform results become a data const; uniform ones a fill", () => {
    const g = trace(() => constant([1, 2, 3], [3]).mul(2).add(constant(1, [3])), []);
    const out = constantFold(g).outputs.out;
    assert.deepEqual(out.attrs.data, [3, 5, 7]);
    const u = trace(() => constant([1, 1], [2]).mul(4), []);
    assert.equal(constantFold(u).outputs.out.attrs.value, 4);
  });

  await t.step("integer and bool constants fold in their own dtype", () => {
    const g = trace(() => ({
      i: constant(7, [], "i32").div(constant(2, [], "i32")),
      b: constant(1).gt(0),
      c: constant(2.7).cast("i32"),
    }), []);
    const f = validate(constantFold(g));
    assert.deepEqual(f.outputs.i.attrs, { value: 3, shape: [], dtype: "i32" });
    assert.deepEqual(f.outputs.b.attrs, { value: 1, shape: [], dtype: "bool" });
    assert.deepEqual(f.outputs.c.attrs, { value: 2, shape: [], dtype: "i32" });
  });

  await t.step("results are rounded to f32", () => {
    const g = trace(() => constant(1).div(3), []);
    assert.equal(constantFold(g).outputs.out.attrs.value, Math.fround(1 / 3));
  });

  await t.step(
    "leaves, random and dropout are never folded; big results are not materialised",
    () => {
      const g = trace((x) => x.mul(constant(0, [FOLD_LIMIT + 1]).add(1)), [{
        name: "x",
        shape: [FOLD_LIMIT + 1],
      }]);
      const add = constantFold(g).outputs.out.inputs[1];
      assert.equal(add.op, "add");
      const seed = constant(5, [], "u32");
      const d = trace(() => constant(1, [8]).dropout(0.5, seed, 0), []);
      assert.equal(constantFold(d).outputs.out.op, "dropout");
    },
  );
});

Deno.test("dce and cse", async (t) => {
  await t.step("dce drops unused params and keeps inputs unless pruneInputs", () => {
    const g = trace((x, _unused) => {
      param("dead", [2]);
      return x.mul(param("live", [2])).exp();
    }, [{ name: "x", shape: [2] }, { name: "unused", shape: [3] }]);
    // Params are derived from reachability, so trace already leaves the dead one out...
    assert.deepEqual(g.params.map((p) => p.name), ["live"]);
    // ... and after a rewrite makes one unreachable, dce (or any rebuild) drops it.
    const h = trace((x) => ({ a: x.mul(param("w", [2])), b: x.add(param("v", [2])) }), [{
      name: "x",
      shape: [2],
    }]);
    const onlyA = validate(dce({ ...h, outputs: { a: h.outputs.a } }));
    assert.deepEqual(onlyA.params.map((p) => p.name), ["w"]);
    const kept = validate(dce(g));
    assert.deepEqual(kept.inputs.map((n) => n.name), ["x", "unused"]);
    const pruned = validate(dce(g, { pruneInputs: true }));
    assert.deepEqual(pruned.inputs.map((n) => n.name), ["x"]);
  });

  await t.step("cse merges duplicate subtrees built separately", () => {
    const g = trace((x) => {
      const a = x.mul(2).exp().sum(1);
      const b = x.mul(2).exp().sum(1);
      return a.add(b);
    }, x23);
    const add = validate(cse(g)).outputs.out;
    assert.equal(add.inputs[0], add.inputs[1]);
    assert.equal(countOps(cse(g), "exp"), 1);
    assert.equal(countOps(cse(g), "sum"), 1);
  });

  await t.step("cse merges what rewriting makes equal", () => {
    // x.neg().neg() and x.mul(1) are different trees; after simplify both are x.
    const g = trace((x) => x.neg().neg().exp().add(x.mul(1).exp()), x23);
    const s = cse(simplify(g)).outputs.out;
    assert.equal(s.inputs[0], s.inputs[1]);
  });
});
