// The kernel IR on its own: the builder rejects ill-typed programs when they
// are built, the WGSL renderer spells every construct one way, and a
// hand-built program using loops, a shared-array tree reduction, vectors and
// Threefry runs on WebGPU with the values the TypeScript references give.
import assert from "node:assert/strict";
import {
  add,
  binary,
  Body,
  call,
  convert,
  defineFunction,
  f32,
  invocation,
  lane,
  lit,
  load,
  mul,
  ref,
  select,
  u32,
  vector,
} from "../../compiler/kernel_ir/mod.ts";
import type { KernelProgram } from "../../compiler/kernel_ir/mod.ts";
import { exprText, renderWgsl, toKernel } from "../../backends/webgpu/wgsl/render.ts";
import { readFloat32, requestGpu, runKernels } from "../../backends/webgpu/device.ts";
import { uniformSymmetricExpr } from "../../prng/threefry_kernel.ts";
import { uniformSymmetric } from "../../prng/threefry.ts";

const gpuTest = { sanitizeOps: false, sanitizeResources: false };

function program(parts: Partial<KernelProgram> & Pick<KernelProgram, "body">): KernelProgram {
  return {
    family: "test",
    label: "test",
    buffers: [{ name: "out0", access: "read_write", element: "f32" }],
    shared: [],
    workgroupSize: [1, 1, 1],
    dispatch: [1, 1, 1],
    ...parts,
  };
}

Deno.test("the builder rejects ill-typed programs as they are built", async (t) => {
  await t.step("operands of different types", () => {
    assert.throws(() => add(u32(1), f32(1)), /u32 \+ f32/);
    assert.throws(() => select(lit(true, "bool"), f32(1), u32(1)), /branches differ/);
    assert.throws(() => select(u32(1), f32(1), f32(0)), /condition must be bool/);
    assert.throws(() => load("in0", f32(0), "f32"), /index into in0/);
  });
  await t.step("a vector combines with a scalar of its element type only", () => {
    assert.equal(mul(vector("vec4f", f32(1)), f32(2)).type, "vec4f");
    assert.throws(() => mul(vector("vec4f", f32(1)), u32(2)), /differ/);
    assert.throws(() => vector("vec4f", f32(1), f32(2)), /1 or 4 parts/);
    assert.throws(() => lane(vector("vec2u", u32(1)), 2), /lane 2/);
  });
  await t.step("statements check their operands", () => {
    const body = new Body();
    assert.throws(() => body.var("u32", f32(0)), /initialised with a f32/);
    const total = body.var("f32", f32(0));
    assert.throws(() => body.assign(total, u32(1)), /assigned a u32/);
    assert.throws(() => body.treeReduce(48, []), /not a power of two/);
    assert.throws(() => lit(0.5, "i32"), /not an integer/);
  });
  await t.step("calls match the callee's signature", () => {
    const inc = defineFunction("inc", [["x", "u32"]], "u32", ([x], b) => b.return(add(x, u32(1))));
    assert.throws(() => call(inc, f32(1)), /inc\(u32\) called with \(f32\)/);
    const effect = defineFunction("effect", [], undefined, () => {});
    assert.throws(() => call(effect), /returns nothing/);
  });
});

Deno.test("the WGSL renderer", async (t) => {
  await t.step("literals: f32 suffixes, non-finite bit patterns, negative i32", () => {
    assert.equal(exprText(f32(0.1)), "0.10000000149011612f");
    assert.equal(exprText(f32(NaN)), "bitcast<f32>(0x7fc00000u)");
    assert.equal(exprText(lit(-2147483648, "i32")), "i32(-2147483648)");
    assert.equal(exprText(lit(true, "bool")), "true");
    assert.equal(exprText(f32(2)), "2.0f");
    assert.equal(exprText(f32(-Infinity)), "bitcast<f32>(0xff800000u)");
    assert.equal(exprText(lit(-3, "i32")), "i32(-3)");
  });
  await t.step("operations are parenthesised and select keeps WGSL's argument order", () => {
    const e = select(binary("<", ref("a", "u32"), u32(3)), f32(1), f32(0));
    assert.equal(exprText(e), "select(0.0f, 1.0f, (a < 3u))");
    assert.equal(exprText(lane(add(ref("v", "vec4f"), f32(1)), 2)), "((v + 1.0f)).z");
  });
  await t.step("functions are emitted once each, callees first", () => {
    const inner = defineFunction("inner", [["x", "f32"]], "f32", ([x], b) => b.return(mul(x, x)));
    const outer = defineFunction(
      "outer",
      [["x", "f32"]],
      "f32",
      ([x], b) => b.return(add(call(inner, x), call(inner, f32(2)))),
    );
    const body = new Body();
    body.store("out0", u32(0), call(outer, call(inner, f32(3))));
    const wgsl = renderWgsl(program({ body: body.stmts }));
    assert.equal(wgsl.match(/fn inner/g)?.length, 1);
    assert.match(wgsl, /fn inner\(x: f32\) -> f32 \{\n {2}return \(x \* x\);\n\}/);
    assert.ok(wgsl.indexOf("fn inner") < wgsl.indexOf("fn outer"));
  });
  await t.step("two different functions with one name are an error", () => {
    const a = defineFunction("f", [], "f32", (_, b) => b.return(f32(1)));
    const b2 = defineFunction("f", [], "f32", (_, b) => b.return(f32(2)));
    const body = new Body();
    body.store("out0", u32(0), add(call(a), call(b2)));
    assert.throws(() => renderWgsl(program({ body: body.stmts })), /two different functions/);
  });
  await t.step(
    "main declares exactly the builtins its body reads; functions may not read them",
    () => {
      const body = new Body();
      body.store("out0", invocation({ of: "localIndex" }), f32(1));
      const wgsl = renderWgsl(program({ body: body.stmts }));
      assert.match(wgsl, /fn main\(@builtin\(local_invocation_index\) lid: u32\)/);
      const reads = defineFunction(
        "reads",
        [],
        "u32",
        (_, b) => b.return(invocation({ of: "localIndex" })),
      );
      const bad = new Body();
      bad.store("out0", call(reads), f32(1));
      assert.throws(() => renderWgsl(program({ body: bad.stmts })), /reads an invocation id/);
    },
  );
  await t.step("the cache key follows the WGSL, not the dispatch", () => {
    const body = new Body();
    body.store("out0", u32(0), f32(1));
    const a = toKernel(program({ body: body.stmts }));
    const b = toKernel(program({ body: body.stmts, dispatch: [4, 1, 1] }));
    const other = new Body();
    other.store("out0", u32(0), f32(2));
    assert.equal(a.key, b.key);
    assert.notEqual(a.key, toKernel(program({ body: other.stmts })).key);
  });
});

Deno.test(
  "a hand-built program runs on WebGPU: loop, tree reduction, vectors, Threefry",
  gpuTest,
  async () => {
    // Workgroup w (of 3) sums, over its 64 invocations, the uniform values at
    // indices w·300 .. w·300+299 (a strided loop), then writes the total and,
    // through a vec4, four lanes of its first values.
    const width = 64;
    const per = 300;
    const random = { seed: 7, stream: 3, bound: 0.5 };
    const body = new Body();
    const w = body.letNamed("w", invocation({ of: "workgroup", axis: 0 }));
    const lid = invocation({ of: "localIndex" });
    const acc = body.var("f32", f32(0), "acc");
    body.loop(lid, u32(per), (j, inner) => {
      inner.assign(acc, add(acc, uniformSymmetricExpr(random, add(mul(w, u32(per)), j))));
    }, { step: u32(width) });
    body.store("partial", lid, acc);
    body.treeReduce(width, [{ array: "partial", combine: "+" }]);
    body.when(binary("==", lid, u32(0)), (leader) => {
      leader.store("out0", mul(w, u32(5)), load("partial", u32(0), "f32"));
      const first = leader.let(
        vector(
          "vec4f",
          ...[0, 1, 2, 3].map((k) => uniformSymmetricExpr(random, add(mul(w, u32(per)), u32(k)))),
        ),
      );
      for (let k = 0; k < 4; k++) {
        leader.store("out0", add(mul(w, u32(5)), u32(k + 1)), lane(first, k));
      }
    });
    const kernel = toKernel(program({
      body: body.stmts,
      shared: [{ name: "partial", element: "f32", length: width }],
      workgroupSize: [width, 1, 1],
      dispatch: [3, 1, 1],
    }));
    assert.match(kernel.wgsl, /\n {2}let w = wid\.x;\n/);
    const gpu = await requestGpu();
    const out = gpu.buffers.acquire(15 * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    await runKernels(gpu, [{ kernel, buffers: [out] }]);
    const got = await readFloat32(gpu, out);
    gpu.buffers.release(out);
    const values = uniformSymmetric(random.seed, random.stream, 3 * per, random.bound);
    for (let g = 0; g < 3; g++) {
      const slice = Array.from(values.slice(g * per, (g + 1) * per));
      const total = slice.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(got[g * 5] - total) < 1e-4, `workgroup ${g}: ${got[g * 5]} vs ${total}`);
      // The generated values are bit-identical to the TypeScript reference.
      assert.deepEqual(
        Array.from(got.slice(g * 5 + 1, g * 5 + 5)),
        slice.slice(0, 4).map(Math.fround),
      );
    }
    // convert() of a value to its own type is the value itself (no redundant cast is emitted).
    assert.equal(convert("f32", acc), acc);
  },
);
