import assert from "node:assert/strict";
import fc from "fast-check";
import {
  attrKey,
  defineOp,
  type Graph,
  graphNodes,
  makeGraph,
  makeNode,
  type Node,
  topoSort,
  trainableParams,
} from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import { print, printNode } from "../../compiler/print.ts";
import { concat, constant, param, scope, trace, where } from "../../compiler/trace.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";
import { type GraphCase, graphCaseArb } from "./_random_graph.ts";
import * as ops from "../../ops/mod.ts";

const f32 = (shape: number[]) => ({ shape, dtype: "f32" as const });
const input = (name: string, shape: number[], dtype = "f32") =>
  makeNode(ops.input, [], { shape, dtype }, name);
const fillNode = (value: number, shape: number[] = []) =>
  makeNode(ops.const, [], { value, ...f32(shape) });

/** A graph object literal, bypassing makeGraph (so it may break invariants on purpose). */
function rawGraph(parts: Partial<Graph> & Pick<Graph, "outputs">): Graph {
  return { inputs: [], params: [], meta: {}, ...parts };
}

Deno.test("ir: nodes are immutable", async (t) => {
  const x = input("x", [2, 3]);
  const p = makeNode(ops.permute, [x], { perm: [1, 0] });

  await t.step("node, operands, attrs (deeply) and shape are frozen", () => {
    for (const v of [p, p.inputs, p.attrs, p.attrs.perm, p.shape, x.attrs.shape]) {
      assert.ok(Object.isFrozen(v));
    }
  });

  await t.step("writes throw in strict mode", () => {
    const loose = p as unknown as Record<string, unknown> & { shape: number[]; inputs: Node[] };
    assert.throws(() => (loose.op = "exp"), TypeError);
    assert.throws(() => (loose.shape[0] = 7), TypeError);
    assert.throws(() => loose.inputs.push(x), TypeError);
    assert.throws(() => ((p.attrs.perm as number[])[0] = 0), TypeError);
    assert.equal(p.op, "permute");
    assert.deepEqual(p.shape, [3, 2]);
  });

  await t.step("the caller's attrs object is copied, not kept", () => {
    const attrs: Record<string, number[]> = { perm: [1, 0] };
    const q = makeNode(ops.permute, [x], attrs);
    assert.notEqual(q.attrs, attrs);
    attrs.other = [1];
    assert.equal(q.attrs.other, undefined);
  });
});

Deno.test("ir: hash-consing", async (t) => {
  const x = input("x", [2, 3]);

  await t.step("same op, operands and attrs give the same object", () => {
    assert.equal(makeNode(ops.exp, [x]), makeNode(ops.exp, [x], {}));
    assert.equal(makeNode(ops.sum, [x], { axes: [1] }), makeNode(ops.sum, [x], { axes: [1] }));
    assert.equal(input("x", [2, 3]), x);
    // Attribute order does not matter.
    assert.equal(
      makeNode(ops.const, [], { value: 1, shape: [2], dtype: "f32" }),
      makeNode(ops.const, [], { dtype: "f32", shape: [2], value: 1 }),
    );
  });

  await t.step("different attrs, operands, operand order or names give different nodes", () => {
    const y = input("y", [2, 3]);
    assert.notEqual(makeNode(ops.sum, [x], { axes: [0] }), makeNode(ops.sum, [x], { axes: [1] }));
    assert.notEqual(makeNode(ops.exp, [x]), makeNode(ops.exp, [y]));
    assert.notEqual(makeNode(ops.sub, [x, y]), makeNode(ops.sub, [y, x]));
    assert.notEqual(input("a", [2]), input("b", [2]));
    assert.notEqual(input("a", [2]), input("a", [2], "i32"));
    assert.notEqual(input("a", [2]), input("a", [1, 2]));
    assert.notEqual(fillNode(1), makeNode(ops.const, [], { value: 1, shape: [], dtype: "i32" }));
  });

  await t.step("NaN, ±Infinity, null, -0 and 0 are distinct attribute values", () => {
    const consts = [NaN, Infinity, -Infinity, 0, -0, 1].map((v) => fillNode(v));
    assert.equal(new Set(consts).size, consts.length);
    assert.equal(fillNode(NaN), consts[0]);
    assert.ok(Object.is(fillNode(-0).attrs.value, -0));
    // null is not a valid const value, but attributes may be null: tag an input with each.
    const tagged = [null, NaN, Infinity, -Infinity, 0, -0, "null", "NaN"].map((tag) =>
      makeNode(ops.input, [], { ...f32([1]), tag }, "t")
    );
    assert.equal(new Set(tagged).size, tagged.length);
    assert.equal(new Set([null, NaN, Infinity, -Infinity, 0, -0, "null"].map(attrKey)).size, 7);
  });

  await t.step("-0 and 0 consts stay apart through evaluation", () => {
    const g = makeGraph({
      inputs: [],
      outputs: {
        pos: makeNode(ops.div, [fillNode(1), fillNode(0)]),
        neg: makeNode(ops.div, [fillNode(1), fillNode(-0)]),
      },
    });
    const r = evaluate(validate(g));
    assert.equal(r.pos.data[0], Infinity);
    assert.equal(r.neg.data[0], -Infinity);
  });

  await t.step("attrKey is canonical: sorted keys, nested values, undefined keys ignored", () => {
    assert.equal(
      attrKey({ b: 1, a: [1, { d: true, c: "s" }] }),
      '{"a":[1,{"c":"s","d":true}],"b":1}',
    );
    assert.equal(attrKey({ a: 1, b: undefined as unknown as null }), attrKey({ a: 1 }));
    assert.notEqual(attrKey([1, 2]), attrKey("1,2"));
    assert.notEqual(attrKey(1), attrKey("1"));
    assert.notEqual(attrKey(true), attrKey("true"));
  });
});

Deno.test("ir: ids and construction", async (t) => {
  await t.step("ids increase in creation order; operands are older than users", () => {
    const a = input("ids-test", [3]);
    const b = makeNode(ops.exp, [a]);
    const c = makeNode(ops.add, [a, b]);
    assert.ok(a.id < b.id && b.id < c.id);
    // A hash-consed hit keeps its old id.
    assert.equal(makeNode(ops.exp, [a]).id, b.id);
  });

  await t.step("ill-typed nodes cannot be built; errors name the op and the operands", () => {
    const x = input("x", [2, 3]);
    const y = input("y", [3]);
    assert.throws(() => makeNode(ops.add, [x, y]), /add: .*equal shapes.*f32\[2,3\], f32\[3\]/);
    assert.throws(() => defineOp({ ...ops.add }), /op add is defined twice/);
    assert.throws(() => makeNode(ops.permute, [x], { perm: [0, 0] }), /permute/);
    assert.throws(
      () => makeNode(ops.input, [], { shape: [-1], dtype: "f32" }, "bad"),
      /invalid dimension -1/,
    );
    assert.throws(
      () => makeNode(ops.input, [], { shape: [2], dtype: "f64" }, "bad"),
      /unknown dtype "f64"/,
    );
  });

  await t.step("makeGraph derives params (reachable, sorted by name) and freezes the graph", () => {
    const g = trace((x) => {
      const b = param("b", [3]);
      const a = scope("enc", () => param("a", [3], { role: "frozen" }));
      return { y: x.mul(b).add(a), z: x };
    }, [{ name: "x", shape: [3] }]);
    assert.deepEqual(g.params.map((p) => p.name), ["b", "enc.a"]);
    assert.deepEqual(trainableParams(g).map((p) => p.name), ["b"]);
    assert.ok(Object.isFrozen(g) && Object.isFrozen(g.outputs) && Object.isFrozen(g.params));
    assert.deepEqual(makeGraph({ inputs: g.inputs, outputs: { z: g.outputs.z } }).params, []);
  });
});

Deno.test("ir: validate", async (t) => {
  const g = trace((x) => x.mul(param("w", [3])).exp().sum(1), [{ name: "x", shape: [2, 3] }]);
  const out = g.outputs.out;
  const exp = out.inputs[0];

  await t.step("accepts traced graphs", () => {
    assert.equal(validate(g), g);
    const big = trace((x, y) => ({
      a: x.matmul(y.T).softmax(0),
      b: concat([x, y], 0).normalize().max(1, true),
      c: x.sum(0, true).broadcastTo([2, 3]).pad([1, 0], [0, 1]).slice([0, 1], [2, 4]),
      d: where(x.gt(0), x, x.neg().exp()).cast("i32"),
    }), [{ name: "x", shape: [2, 3] }, { name: "y", shape: [4, 3] }]);
    validate(big);
    fc.assert(fc.property(graphCaseArb, ({ graph }: GraphCase) => void validate(graph)), {
      numRuns: 100,
      seed: 3,
    });
  });

  await t.step("rejects a node whose stored shape or dtype lies", () => {
    const liar = { ...exp, shape: [9] } as Node;
    const bad = rawGraph({ inputs: g.inputs, params: g.params, outputs: { out: liar } });
    assert.throws(
      () => validate(bad),
      /invalid graph: stored type f32\[9\] but op infers f32\[2,3\]/,
    );
    const user = { ...out, inputs: [liar] } as Node;
    assert.throws(
      () => validate(rawGraph({ inputs: g.inputs, params: g.params, outputs: { out: user } })),
      /stored type f32\[9\]/,
    );
    const dtypeLiar = { ...exp, dtype: "i32" } as Node;
    assert.throws(
      () => validate(rawGraph({ inputs: g.inputs, params: g.params, outputs: { out: dtypeLiar } })),
      /stored type i32\[2,3\] but op infers f32\[2,3\]/,
    );
  });

  await t.step("rejects two params with one name", () => {
    const w2 = makeNode(ops.param, [], { ...f32([4]), role: "trainable" }, "w");
    const two = makeGraph({ inputs: g.inputs, outputs: { out, other: w2 } });
    assert.throws(() => validate(two), /two different params named "w"/);
    const frozen = makeNode(ops.param, [], { ...f32([3]), role: "frozen" }, "w");
    assert.throws(
      () => validate(makeGraph({ inputs: g.inputs, outputs: { out, other: frozen } })),
      /two different params named "w"/,
    );
  });

  await t.step("rejects an input that is used but not declared", () => {
    const undeclared = makeGraph({ inputs: [], outputs: { out } });
    assert.throws(() => validate(undeclared), /input "x" is used but not declared in graph.inputs/);
  });

  await t.step("rejects a params list that does not match the reachable params", () => {
    assert.throws(() => validate({ ...g, params: [] }), /graph.params does not match/);
    const stray = makeNode(ops.param, [], { ...f32([1]), role: "trainable" }, "stray");
    assert.throws(
      () => validate({ ...g, params: [...g.params, stray] }),
      /graph.params does not match/,
    );
  });

  await t.step("rejects broken signatures and structure", () => {
    assert.throws(() => validate({ ...g, outputs: {} }), /no outputs/);
    assert.throws(
      () => validate({ ...g, inputs: [...g.inputs, ...g.inputs] }),
      /input "x" appears twice/,
    );
    assert.throws(() => validate({ ...g, inputs: [exp] }), /graph input is a exp node/);
    const clash = makeNode(ops.param, [], { ...f32([2, 3]), role: "trainable" }, "x");
    assert.throws(
      () => validate(makeGraph({ inputs: g.inputs, outputs: { out, clash } })),
      /"x" is both an input and a param/,
    );
    const young = { ...exp, id: 0 } as Node;
    assert.throws(
      () => validate(rawGraph({ inputs: g.inputs, params: g.params, outputs: { out: young } })),
      /operand #\d+ is not older than its user/,
    );
    const leafWithOperands = { ...fillNode(12345.5), inputs: [g.inputs[0]] } as Node;
    assert.throws(
      () => validate(rawGraph({ inputs: g.inputs, outputs: { out: leafWithOperands } })),
      /a leaf has operands/,
    );
    const unknown = { ...exp, op: "nope" } as Node;
    assert.throws(
      () => validate(rawGraph({ inputs: g.inputs, params: g.params, outputs: { out: unknown } })),
      /node op "nope" is not its definition's \(exp\)/,
    );
  });

  await t.step("errors name the offending node", () => {
    const liar = { ...exp, shape: [9] } as Node;
    assert.throws(
      () => validate(rawGraph({ inputs: g.inputs, params: g.params, outputs: { out: liar } })),
      (e: Error) => e.message.includes(printNode(liar)),
    );
  });

  await t.step("rejects a used input that is not the declared one (same name, other shape)", () => {
    // BUG (compiler/validate.ts): the "every reachable input declared" check compares names
    // only, so a graph reading x:f32[3,2] while declaring x:f32[2,3] passes, and evaluate
    // silently feeds the declared value to the other node.
    const declared = input("x", [2, 3]);
    const used = input("x", [3, 2]);
    const mismatched = makeGraph({ inputs: [declared], outputs: { y: makeNode(ops.exp, [used]) } });
    assert.throws(() => validate(mismatched), /invalid graph/);
  });
});

Deno.test("ir: print", async (t) => {
  await t.step(
    "a readable listing: inputs with types, params with roles, one line per node, outputs",
    () => {
      const g = trace((x, _u) => ({
        y: x.mul(scope("enc", () => param("w", [3], { role: "frozen" }))).add(
          constant([1, 2, 3], [3]),
        ).sum(1),
        z: x.T.matmul(param("b", [2, 1])).mul(2),
        x,
      }), [{ name: "x", shape: [2, 3] }, { name: "u", shape: [], dtype: "i32" }]);
      assert.equal(
        print(g),
        [
          "{ lambda x:f32[2,3] u:i32[] ;",
          "  param b:f32[2,1] trainable",
          "  param enc.w:f32[3] frozen",
          "  let",
          "    %1:f32[2,3] = broadcast enc.w",
          "    %2:f32[2,3] = mul x %1",
          "    %3:f32[3] = const[data=[1,2,3]]",
          "    %4:f32[2,3] = broadcast %3",
          "    %5:f32[2,3] = add %2 %4",
          "    %6:f32[2] = sum[axes=[1]] %5",
          "    %7:f32[3,2] = permute[perm=[1,0]] x",
          "    %8:f32[3,1] = matmul %7 b",
          "    %9:f32[] = const[value=2]",
          "    %10:f32[3,1] = broadcast %9",
          "    %11:f32[3,1] = mul %8 %10",
          "  in { y: %6, z: %11, x: x } }",
        ].join("\n"),
      );
    },
  );

  await t.step("long attributes are cut; printNode shows one node", () => {
    const c = constant(Array.from({ length: 40 }, (_, i) => i), [40]);
    const text = print(makeGraph({ inputs: [], outputs: { c: c.node } }));
    assert.match(text, /^ {4}%1:f32\[40\] = const\[data=\[0,1,2,[0-9,]*\.\.\.\]$/m);
    const line = text.split("\n")[2];
    assert.ok(line.length < 80, line);
    const x = input("x", [2]);
    assert.equal(
      printNode(makeNode(ops.exp, [x])),
      `#${makeNode(ops.exp, [x]).id}:f32[2] = exp(input#${x.id}:f32[2])`,
    );
  });
});

Deno.test("ir: topoSort and graphNodes", async (t) => {
  await t.step("every node once, operands before users, exactly the reachable set", () => {
    fc.assert(
      fc.property(graphCaseArb, ({ graph }: GraphCase) => {
        const roots = Object.values(graph.outputs);
        const order = topoSort(roots);
        const position = new Map(order.map((n, i) => [n.id, i]));
        assert.equal(position.size, order.length, "a node appears twice");
        for (const n of order) {
          for (const i of n.inputs) assert.ok(position.get(i.id)! < position.get(n.id)!);
        }
        // Reachable set, computed independently.
        const reach = new Set<number>();
        const stack = [...roots];
        while (stack.length > 0) {
          const n = stack.pop()!;
          if (!reach.has(n.id)) (reach.add(n.id), stack.push(...n.inputs));
        }
        assert.deepEqual(new Set(position.keys()), reach);
        // Roots order does not change the set, and the result is deterministic.
        assert.deepEqual(topoSort(roots), order);
        assert.deepEqual(new Set(topoSort([...roots].reverse())), new Set(order));
      }),
      { numRuns: 100, seed: 7 },
    );
  });

  await t.step("graphNodes includes unused inputs", () => {
    const g = trace((x, _unused) => x.exp(), [{ name: "x", shape: [2] }, {
      name: "unused",
      shape: [3],
    }]);
    const names = graphNodes(g).filter((n) => n.op === "input").map((n) => n.name);
    assert.deepEqual(names.sort(), ["unused", "x"]);
    assert.equal(topoSort(Object.values(g.outputs)).filter((n) => n.op === "input").length, 1);
  });

  await t.step("deep chains do not overflow the stack", () => {
    let n = input("deep", [2]);
    for (let i = 0; i < 30000; i++) n = makeNode(i % 2 ? ops.neg : ops.exp, [n]);
    const g = makeGraph({ inputs: [input("deep", [2])], outputs: { out: n } });
    assert.equal(topoSort([n]).length, 30001);
    validate(g);
    assert.equal(print(g).split("\n").length, 30003);
  });
});
