import assert from "node:assert/strict";
import { graphNodes, makeGraph, makeNode, type Node, type OpDef } from "../../compiler/ir.ts";
import { validate } from "../../compiler/validate.ts";
import { match, type Pattern, rewrite, rewriteNodes, type Rule } from "../../compiler/rewrite.ts";
import { param, scope, trace } from "../../compiler/trace.ts";
import { evaluate } from "../../backends/cpu/interpreter.ts";
import * as ops from "../../ops/mod.ts";

const fill = (value: number, shape: readonly number[] = []) =>
  makeNode(ops.const, [], { value, shape: [...shape], dtype: "f32" });
const input = (name: string, shape: number[]) =>
  makeNode(ops.input, [], { shape, dtype: "f32" }, name);
const unary = (op: OpDef, x: Node) => makeNode(op, [x]);

/** A rule renaming one unary op to another. */
function rename(from: OpDef, to: OpDef): Rule {
  return {
    name: `${from.name}→${to.name}`,
    pattern: { op: from.name, inputs: [{ capture: "x" }] },
    rewrite: (m) => unary(to, m.captures.x),
  };
}

const negNeg: Rule = {
  name: "neg-neg",
  pattern: { op: "neg", inputs: [{ op: "neg", inputs: [{ capture: "x" }] }] },
  rewrite: ({ captures }) => captures.x,
};

Deno.test("rewrite: match", async (t) => {
  const x = input("x", [2, 3]);
  const y = input("y", [2, 3]);
  const xx = makeNode(ops.mul, [x, x]);
  const xy = makeNode(ops.mul, [x, y]);

  await t.step("op names and op lists", () => {
    assert.ok(match({ op: "mul" }, xy));
    assert.ok(match({ op: ["add", "mul"] }, xy));
    assert.equal(match({ op: ["add", "sub"] }, xy), undefined);
    assert.ok(match({}, xy), "an empty pattern matches anything");
  });

  await t.step("operands are positional and their count must agree", () => {
    assert.ok(match({ inputs: [{ op: "input", name: "x" }, { name: "y" }] }, xy));
    assert.equal(match({ inputs: [{ name: "y" }, { name: "x" }] }, xy), undefined);
    assert.equal(match({ inputs: [{ name: "x" }] }, xy), undefined);
    assert.equal(match({ inputs: [] }, xy), undefined);
    assert.ok(match({ inputs: [] }, x));
  });

  await t.step("captures bind nodes; one name used twice must bind the same node", () => {
    const m = match(
      { op: "mul", capture: "root", inputs: [{ capture: "a" }, { capture: "b" }] },
      xy,
    )!;
    assert.equal(m.node, xy);
    assert.equal(m.captures.root, xy);
    assert.equal(m.captures.a, x);
    assert.equal(m.captures.b, y);
    const square: Pattern = { op: "mul", inputs: [{ capture: "a" }, { capture: "a" }] };
    assert.equal(match(square, xx)?.captures.a, x);
    assert.equal(match(square, xy), undefined);
    // Consistency holds across depths too.
    const nested: Pattern = {
      op: "add",
      inputs: [{ capture: "v" }, { op: "exp", inputs: [{ capture: "v" }] }],
    };
    assert.ok(match(nested, makeNode(ops.add, [x, unary(ops.exp, x)])));
    assert.equal(match(nested, makeNode(ops.add, [y, unary(ops.exp, x)])), undefined);
  });

  await t.step("names: exact string or regex; unnamed nodes never match a name", () => {
    const g = trace(
      (h) => h.matmul(scope("layers.0.attn", () => param("q_proj.weight", [3, 3])).T),
      [
        { name: "h", shape: [2, 3] },
      ],
    );
    const w = g.params[0];
    assert.ok(match({ op: "param", name: "layers.0.attn.q_proj.weight" }, w));
    assert.equal(match({ name: "q_proj.weight" }, w), undefined);
    assert.ok(match({ name: /\.q_proj\.weight$/ }, w));
    assert.equal(match({ name: /k_proj/ }, w), undefined);
    assert.equal(match({ name: /.*/ }, xy), undefined);
    const linear: Pattern = {
      op: "matmul",
      inputs: [{ capture: "x" }, {
        op: "permute",
        inputs: [{ op: "param", name: /q_proj/, capture: "w" }],
      }],
    };
    assert.equal(match(linear, g.outputs.out)?.captures.w, w);
  });

  await t.step("a name regex is stateless, even with the g flag", () => {
    // BUG (compiler/rewrite.ts, matchInto): `p.name.test(node.name)` advances `lastIndex` of a
    // global or sticky regex, so the same pattern matches every other layer: a LoRA/VeRA
    // target rule `{ name: /q_proj/g }` silently adapts layers 0, 2, 4, ... only.
    const layers = [0, 1, 2, 3].map((i) =>
      makeNode(
        ops.param,
        [],
        { shape: [2], dtype: "f32", role: "trainable" },
        `layers.${i}.q_proj.weight`,
      )
    );
    for (const flags of ["g", "y", "gi"]) {
      const pattern: Pattern = { op: "param", name: new RegExp("layers\\.\\d\\.q_proj", flags) };
      assert.deepEqual(
        layers.map((p) => match(pattern, p) !== undefined),
        [true, true, true, true],
        flags,
      );
    }
  });

  await t.step("shape: exact or a predicate; dtype", () => {
    assert.ok(match({ shape: [2, 3] }, x));
    assert.equal(match({ shape: [3, 2] }, x), undefined);
    assert.equal(match({ shape: [2, 3, 1] }, x), undefined);
    assert.equal(match({ shape: [] }, x), undefined);
    assert.ok(match({ shape: [] }, fill(1)));
    assert.equal(match({ shape: [1] }, fill(1)), undefined);
    assert.ok(match({ shape: (s) => s.length === 2 && s[0] < s[1] }, x));
    assert.equal(match({ shape: (s) => s.length === 3 }, x), undefined);
    assert.ok(match({ dtype: "f32" }, x));
    assert.equal(match({ dtype: "i32" }, x), undefined);
    assert.ok(match({ dtype: "bool" }, makeNode(ops.gt, [x, y])));
  });

  await t.step("attrs: structural values or predicates", () => {
    const s = makeNode(ops.sum, [x], { axes: [0, 1] });
    assert.ok(match({ op: "sum", attrs: { axes: [0, 1] } }, s));
    assert.equal(match({ attrs: { axes: [1, 0] } }, s), undefined);
    assert.equal(match({ attrs: { axes: [0] } }, s), undefined);
    assert.ok(match({ attrs: { axes: (v) => Array.isArray(v) && v.includes(1) } }, s));
    assert.equal(match({ attrs: { axes: (v) => v === null } }, s), undefined);
    // A missing attribute compares as null.
    assert.ok(match({ attrs: { keepdims: null } }, s));
    assert.equal(match({ attrs: { keepdims: false } }, s), undefined);
    const nested = makeNode(ops.param, [], {
      shape: [2],
      dtype: "f32",
      role: "frozen",
      init: { kind: "normal", std: 0.5 },
    }, "p");
    assert.ok(match({ attrs: { init: { std: 0.5, kind: "normal" }, role: "frozen" } }, nested));
    assert.equal(match({ attrs: { init: { kind: "normal", std: 0.25 } } }, nested), undefined);
    assert.equal(match({ attrs: { value: 0 } }, fill(-0)), undefined, "-0 is not 0 for attrs");
  });

  await t.step("where sees the node and the captures of its operands", () => {
    const seen: string[] = [];
    const p: Pattern = {
      op: "mul",
      inputs: [{ capture: "a" }, { capture: "b" }],
      where: (node, captures) => {
        seen.push(Object.keys(captures).sort().join());
        return node === xy && captures.a !== captures.b;
      },
    };
    assert.ok(match(p, xy));
    assert.equal(match(p, xx), undefined);
    assert.deepEqual(seen, ["a,b", "a,b"]);
    assert.equal(match({ where: () => false }, x), undefined);
  });
});

Deno.test("rewrite: engine", async (t) => {
  await t.step("runs a rule chain a→b→c to a fixed point, in any rule order", () => {
    const g = trace((x) => x.exp().add(1), [{ name: "x", shape: [2] }]);
    for (
      const rules of [[rename(ops.exp, ops.tanh), rename(ops.tanh, ops.neg)], [
        rename(ops.tanh, ops.neg),
        rename(ops.exp, ops.tanh),
      ]]
    ) {
      const seen: string[] = [];
      const r = validate(rewrite(g, rules, { onRewrite: (name) => seen.push(name) }));
      const add = r.outputs.out;
      assert.equal(add.inputs[0].op, "neg");
      assert.equal(add.inputs[0].inputs[0], g.inputs[0]);
      assert.deepEqual(seen, ["exp→tanh", "tanh→neg"]);
    }
  });

  await t.step("rewrites bottom-up and revisits parents of rewritten nodes", () => {
    // neg(exp(x)): exp → neg makes the parent a neg(neg(x)), which then folds to x.
    const g = trace((x) => x.exp().neg().mul(2), [{ name: "x", shape: [3] }]);
    const order: string[] = [];
    const r = rewrite(g, [negNeg, rename(ops.exp, ops.neg)], {
      onRewrite: (name, before) => order.push(`${name}@${before.op}`),
    });
    assert.equal(r.outputs.out.inputs[0], g.inputs[0]);
    assert.deepEqual(order, ["exp→neg@exp", "neg-neg@neg"]);
  });

  await t.step("keeps inputs, output names and meta; params are re-derived", () => {
    const g = trace((x, _unused) => ({ a: x.mul(param("w", [2])), b: x.exp() }), [
      { name: "x", shape: [2] },
      { name: "unused", shape: [1] },
    ], { tag: 1 });
    const dropW: Rule = {
      name: "drop-w",
      pattern: { op: "param", name: "w" },
      rewrite: ({ node }) => fill(3, node.shape),
    };
    const r = validate(rewrite(g, [dropW]));
    assert.deepEqual(Object.keys(r.outputs), ["a", "b"]);
    assert.deepEqual(r.inputs, g.inputs);
    assert.deepEqual(r.meta, { tag: 1 });
    assert.deepEqual(r.params, []);
    assert.equal(r.outputs.b, g.outputs.b);
    assert.deepEqual([...evaluate(r, { inputs: { x: [1, 2], unused: [0] } }).a.data], [3, 6]);
  });

  await t.step("rules returning undefined or the node itself change nothing", () => {
    const g = trace((x) => x.exp().tanh(), [{ name: "x", shape: [2] }]);
    let calls = 0;
    const rules: Rule[] = [
      { name: "undefined", pattern: {}, rewrite: () => (calls++, undefined) },
      { name: "same", pattern: {}, rewrite: ({ node }) => (calls++, node) },
    ];
    let rewrites = 0;
    const r = rewrite(g, rules, { onRewrite: () => rewrites++ });
    assert.equal(r.outputs.out, g.outputs.out);
    assert.equal(rewrites, 0);
    assert.equal(calls, 2 * graphNodes(g).length);
  });

  await t.step("rules that undo each other hit the loop guard with a clear error", () => {
    const double: Rule = {
      name: "x*2→x+x",
      pattern: { op: "mul", inputs: [{ capture: "x" }, { op: "const", attrs: { value: 2 } }] },
      rewrite: ({ captures }) => makeNode(ops.add, [captures.x, captures.x]),
    };
    const undouble: Rule = {
      name: "x+x→x*2",
      pattern: { op: "add", inputs: [{ capture: "x" }, { capture: "x" }] },
      rewrite: ({ captures }) => makeNode(ops.mul, [captures.x, fill(2, captures.x.shape)]),
    };
    const g = trace((x) => x.add(x).exp(), [{ name: "x", shape: [3] }]);
    let steps = 0;
    assert.throws(
      () => rewrite(g, [double, undouble], { maxSteps: 50, onRewrite: () => steps++ }),
      (e: Error) =>
        /fixed point after 50 steps/.test(e.message) && /x\*2→x\+x/.test(e.message) &&
        /x\+x→x\*2/.test(e.message),
    );
    // The guard counts per node; the nested visit of a replacement may add one step.
    assert.ok(steps >= 50 && steps <= 52, `${steps} steps`);
    // Each rule alone terminates.
    assert.equal(rewrite(g, [undouble]).outputs.out.inputs[0].op, "mul");
  });

  await t.step("a rule whose replacement contains the matched node terminates", () => {
    const g = trace((x) => x.exp().neg(), [{ name: "x", shape: [2] }]);
    // Unguarded x → x+0 on every exp: the exp inside the replacement is not revisited.
    const wrap: Rule = {
      name: "wrap",
      pattern: { op: "exp" },
      rewrite: ({ node }) => makeNode(ops.add, [node, fill(0, node.shape)]),
    };
    let count = 0;
    const r = validate(rewrite(g, [wrap], { onRewrite: () => count++ }));
    assert.equal(count, 1);
    const add = r.outputs.out.inputs[0];
    assert.equal(add.op, "add");
    assert.equal(add.inputs[0], g.outputs.out.inputs[0]);
    // Guarded on a where predicate that looks at captures, wrapping leaves too.
    const wrapInputs: Rule = {
      name: "wrap-input",
      pattern: { op: "input", capture: "x", where: (n) => n.shape.length === 1 },
      rewrite: ({ captures }) => makeNode(ops.mul, [captures.x, fill(1, captures.x.shape)]),
    };
    const w = validate(rewrite(g, [wrapInputs]));
    assert.equal(w.outputs.out.inputs[0].inputs[0].op, "mul");
    assert.deepEqual(
      [...evaluate(w, { inputs: { x: [0, 1] } }).out.data],
      [...evaluate(g, { inputs: { x: [0, 1] } }).out.data],
    );
  });

  await t.step("a rule that changes the shape or dtype is rejected", () => {
    const g = trace((x) => x.exp(), [{ name: "x", shape: [2, 3] }]);
    const shape: Rule = {
      name: "shrink",
      pattern: { op: "exp" },
      rewrite: ({ node }) => makeNode(ops.sum, [node.inputs[0]], { axes: [0] }),
    };
    assert.throws(
      () => rewrite(g, [shape]),
      /rewrite rule "shrink" changed the type of a exp node/,
    );
    const dtype: Rule = {
      name: "to-int",
      pattern: { op: "exp" },
      rewrite: ({ node }) => makeNode(ops.cast, [node], { dtype: "i32" }),
    };
    assert.throws(() => rewrite(g, [dtype]), /rewrite rule "to-int" changed the type/);
    const transpose: Rule = {
      name: "T",
      pattern: { op: "exp" },
      rewrite: ({ node }) => makeNode(ops.permute, [node], { perm: [1, 0] }),
    };
    assert.throws(() => rewrite(g, [transpose]), /changed the type/);
  });

  await t.step("shared subgraphs are rewritten once", () => {
    const g = trace((x) => {
      const s = x.neg().neg();
      return { a: s.exp(), b: s.tanh().add(s), c: s };
    }, [{ name: "x", shape: [2] }]);
    let count = 0;
    const r = validate(rewrite(g, [negNeg], { onRewrite: () => count++ }));
    assert.equal(count, 1);
    assert.equal(r.outputs.c, g.inputs[0]);
    assert.equal(r.outputs.a.inputs[0], g.inputs[0]);
    assert.equal(r.outputs.b.inputs[1], g.inputs[0]);
    // The same through rewriteNodes, with roots given in any order and repeated.
    count = 0;
    const roots = rewriteNodes([g.outputs.c, g.outputs.a, g.outputs.c], [negNeg], {
      onRewrite: () => count++,
    });
    assert.equal(count, 1);
    assert.deepEqual(roots.map((n) => n.op), ["input", "exp", "input"]);
  });

  await t.step("a rule is applied once per distinct node, even on a wide diamond", () => {
    let x = input("w", [2]);
    for (let i = 0; i < 40; i++) x = makeNode(ops.add, [unary(ops.exp, x), unary(ops.tanh, x)]);
    let count = 0;
    const [r] = rewriteNodes([x], [rename(ops.exp, ops.neg)], { onRewrite: () => count++ });
    assert.equal(count, 40);
    assert.equal(topoOps(r).filter((op) => op === "exp").length, 0);
  });

  await t.step("deep chains do not overflow the stack", () => {
    const depth = 20000;
    let chain = input("deep", [2]);
    for (let i = 0; i < depth; i++) chain = unary(i % 2 === 0 ? ops.exp : ops.neg, chain);
    let count = 0;
    const [renamed] = rewriteNodes([chain], [rename(ops.exp, ops.tanh)], {
      onRewrite: () => count++,
    });
    assert.equal(count, depth / 2);
    assert.equal(renamed.op, "neg");
    assert.equal(renamed.inputs[0].op, "tanh");
    // 20000 nested negs cancel pairwise.
    let negs = input("deep", [2]);
    for (let i = 0; i < depth; i++) negs = unary(ops.neg, negs);
    const g = makeGraph({ inputs: [input("deep", [2])], outputs: { out: negs } });
    const r = validate(rewrite(g, [negNeg]));
    assert.equal(r.outputs.out, g.inputs[0]);
    // A rule that grows every node of the chain.
    const [grown] = rewriteNodes([chain], [{
      name: "neg→mul",
      pattern: { op: "neg", capture: "n" },
      rewrite: ({ captures }) =>
        makeNode(ops.mul, [captures.n.inputs[0], fill(-1, captures.n.shape)]),
    }]);
    assert.equal(grown.op, "mul");
  });
});

function topoOps(root: Node): string[] {
  return graphNodes(makeGraph({ inputs: [], outputs: { r: root } })).map((n) => n.op);
}
