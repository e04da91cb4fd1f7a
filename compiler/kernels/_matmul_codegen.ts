// The matmul kernel of a MatmulPlan (compiler/kernels/matmul.ts), built in
// the kernel IR. The register block is unrolled here (named accumulators and
// fragments) so the shader compiler keeps it in registers rather than in an
// indexed private array.

import {
  add,
  binary,
  Body,
  call,
  defineFunction,
  div,
  type Expr,
  f32,
  invocation,
  type KernelFunction,
  type KernelProgram,
  lane,
  load,
  math,
  mul,
  select,
  type SharedArray,
  u32,
  vector,
} from "../kernel_ir/mod.ts";
import type { MatmulTiles } from "./_matmul_types.ts";
import { matmulBuffers, type MatmulPlan, type OperandPlan, vectorised } from "./_matmul_plan.ts";
import { element, type FragmentSource, step } from "./_matmul_fragments.ts";

const and = (a: Expr, b: Expr) => binary("&&", a, b);
const lt = (a: Expr, b: Expr) => binary("<", a, b);
const min = (a: Expr, b: Expr) => math("min", a, b);
const wid = (axis: 0 | 1 | 2) => invocation({ of: "workgroup", axis });
const lid = (axis: 0 | 1 | 2) => invocation({ of: "local", axis });

/** Operand reads straight from its storage buffer, with lanes past the edge clamped to valid addresses. */
function directSource(
  body: Body,
  o: OperandPlan,
  which: "a" | "b",
  count: number,
  limit: number,
  vec4: boolean,
  refs: { first: Expr; base: Expr },
): FragmentSource {
  const { first, base } = refs;
  const array = which === "a" ? "lhs" : "rhs";
  const common = { prefix: which, count, kContiguous: o.kContiguous, vec4 };
  if (o.kContiguous) {
    const rows = Array.from({ length: count }, (_, i) => {
      const start = add(base, mul(min(add(first, u32(i)), u32(Math.max(limit, 1) - 1)), u32(o.ld)));
      return body.letNamed(`${which}_row${i}`, vec4 ? div(start, u32(4)) : start);
    });
    return {
      ...common,
      vector: (i, _kk, k) => load(array, add(rows[i], div(k, u32(4))), "vec4f"),
      scalar: (i, kk, k) => {
        if (!vec4) return element(array, o.random, add(add(rows[i], k), u32(kk)));
        // Scalar reads of a vec4 array happen only in the k tail, where k is a
        // constant: the element's vec4 and lane are then constants too (rows
        // start 16-byte aligned).
        if (k.kind !== "literal") throw new Error("internal: matmul vec4 tail at a variable k");
        const at = k.value + kk;
        return lane(load(array, add(rows[i], u32(at >> 2)), "vec4f"), at & 3);
      },
    };
  }
  if (vec4) {
    // The limit is a multiple of 4, so each group of 4 lanes is wholly in or out.
    const cols = Array.from({ length: count / 4 }, (_, g) => {
      const clamped = min(add(first, u32(4 * g)), u32(Math.max(limit, 4) - 4));
      return body.letNamed(`${which}_col${g}`, div(add(base, clamped), u32(4)));
    });
    return {
      ...common,
      vector: (g, kk, k) => load(array, add(cols[g], mul(add(k, u32(kk)), u32(o.ld / 4))), "vec4f"),
      scalar: () => {
        throw new Error("internal: matmul scalar read of a vec4 operand along N or M");
      },
    };
  }
  const cols = Array.from(
    { length: count },
    (_, i) =>
      body.letNamed(
        `${which}_col${i}`,
        add(base, min(add(first, u32(i)), u32(Math.max(limit, 1) - 1))),
      ),
  );
  return {
    ...common,
    vector: () => {
      throw new Error("internal: matmul vector read of a scalar operand");
    },
    scalar: (i, kk, k) => element(array, o.random, add(cols[i], mul(add(k, u32(kk)), u32(o.ld)))),
  };
}

interface Frame {
  accs: readonly (readonly Expr[])[];
  row0: Expr;
  col0: Expr;
  aBase: Expr;
  bBase: Expr;
}

/** Main loop in steps of tileK, then whole groups of 4, then single k values (all bounds baked). */
function registersBody(body: Body, p: MatmulPlan, f: Frame, vecA: boolean, vecB: boolean): void {
  const { tiles: t, K } = p;
  const a = directSource(body, p.a, "a", t.threadM, p.M, vecA, { first: f.row0, base: f.aBase });
  const b = directSource(body, p.b, "b", t.threadN, p.N, vecB, { first: f.col0, base: f.bBase });
  const kLoop = Math.floor(K / t.tileK) * t.tileK;
  if (kLoop > 0) {
    body.loop(u32(0), u32(kLoop), (k, inner) => {
      for (let g = 0; g < t.tileK / 4; g++) {
        step(inner, f.accs, a, b, 4, g ? add(k, u32(4 * g)) : k, `${g}`);
      }
    }, { step: u32(t.tileK), hint: "k" });
  }
  for (let k = kLoop; k < K; k += 4) {
    step(body, f.accs, a, b, Math.min(4, K - k), u32(k), `t${k}`);
  }
}

/** Workgroup-memory tiles: [outer][inner / 4] vec4, laid out as the operand is stored. */
function tileShape(o: OperandPlan, t: MatmulTiles, which: "a" | "b") {
  const span = which === "a" ? t.tileM : t.tileN;
  return o.kContiguous ? { outer: span, inner: t.tileK } : { outer: t.tileK, inner: span };
}

function workgroupTiles(p: MatmulPlan): SharedArray[] {
  return (["a", "b"] as const).map((which) => {
    const s = tileShape(p[which], p.tiles, which);
    return { name: `${which}_tile`, element: "vec4f", length: s.outer * s.inner / 4 };
  });
}

/** The cooperative copy of one operand's tile for the k step starting at `k0`. */
function tileCopy(
  body: Body,
  p: MatmulPlan,
  which: "a" | "b",
  vec4: boolean,
  refs: { threads: number; tid: Expr; k0: Expr; base: Expr },
): void {
  const { threads, tid, k0, base } = refs;
  const o = p[which];
  const s = tileShape(o, p.tiles, which);
  const units = (s.outer * s.inner) / 4;
  const first = which === "a" ? mul(wid(1), u32(p.tiles.tileM)) : mul(wid(0), u32(p.tiles.tileN));
  const span = which === "a" ? p.M : p.N;
  const [outerStart, innerStart, outerLimit, innerLimit] = o.kContiguous
    ? [first, k0, span, p.K]
    : [k0, first, p.K, span];
  const array = which === "a" ? "lhs" : "rhs";
  const read = (go: Expr, gi: Expr): Expr => {
    const start = add(base, mul(min(go, u32(Math.max(outerLimit, 1) - 1)), u32(o.ld)));
    if (vec4) {
      const at = div(add(start, min(gi, u32(Math.max(innerLimit, 4) - 4))), u32(4));
      return select(
        and(lt(go, u32(outerLimit)), lt(gi, u32(innerLimit))),
        load(array, at, "vec4f"),
        vector("vec4f", f32(0)),
      );
    }
    return vector(
      "vec4f",
      ...[0, 1, 2, 3].map((e) => {
        const at = add(start, min(add(gi, u32(e)), u32(Math.max(innerLimit, 1) - 1)));
        return select(
          and(lt(go, u32(outerLimit)), lt(add(gi, u32(e)), u32(innerLimit))),
          element(array, o.random, at),
          f32(0),
        );
      }),
    );
  };
  const copy = (into: Body, s0: number) => {
    const unit = into.let(add(tid, u32(s0)), "unit");
    const go = into.let(add(outerStart, div(unit, u32(s.inner / 4))), "go");
    const gi = into.let(
      add(innerStart, mul(binary("%", unit, u32(s.inner / 4)), u32(4))),
      "gi",
    );
    into.store(`${which}_tile`, unit, read(go, gi));
  };
  for (let s0 = 0; s0 < units; s0 += threads) {
    if (s0 + threads > units) {
      body.when(lt(add(tid, u32(s0)), u32(units)), (guarded) => copy(guarded, s0));
    } else copy(body, s0);
  }
}

/** Fragment reads from a workgroup tile at group `kq` (k = 4·kq + kk within the tile). */
function tileSource(o: OperandPlan, t: MatmulTiles, which: "a" | "b"): FragmentSource {
  const count = which === "a" ? t.threadM : t.threadN;
  const lane0 = which === "a" ? mul(lid(1), u32(t.threadM)) : mul(lid(0), u32(t.threadN));
  const s = tileShape(o, t, which);
  const array = `${which}_tile`;
  const index = o.kContiguous
    ? (i: number, _kk: number, kq: Expr) => add(mul(add(lane0, u32(i)), u32(s.inner / 4)), kq)
    : (g: number, kk: number, kq: Expr) =>
      add(
        add(mul(add(mul(kq, u32(4)), u32(kk)), u32(s.inner / 4)), div(lane0, u32(4))),
        u32(g),
      );
  return {
    prefix: which,
    count,
    kContiguous: o.kContiguous,
    vec4: true,
    vector: (i, kk, kq) => load(array, index(i, kk, kq), "vec4f"),
    scalar: () => {
      throw new Error("internal: matmul scalar read of a workgroup tile");
    },
  };
}

function workgroupBody(body: Body, p: MatmulPlan, f: Frame, vecA: boolean, vecB: boolean): void {
  const t = p.tiles;
  if (p.K === 0) return;
  const threads = (t.tileM / t.threadM) * (t.tileN / t.threadN);
  const tid = body.letNamed("tid", add(mul(lid(1), u32(t.tileN / t.threadN)), lid(0)));
  const [a, b] = [tileSource(p.a, t, "a"), tileSource(p.b, t, "b")];
  body.loop(u32(0), u32(p.K), (k0, outer) => {
    tileCopy(outer, p, "a", vecA, { threads, tid, k0, base: f.aBase });
    tileCopy(outer, p, "b", vecB, { threads, tid, k0, base: f.bBase });
    outer.barrier();
    outer.loop(u32(0), u32(t.tileK / 4), (kq, inner) => {
      step(inner, f.accs, a, b, 4, kq, "");
    }, { hint: "kq" });
    outer.barrier();
  }, { step: u32(t.tileK), hint: "k" });
}

/**
 * `fn epilogue(acc, row, col, batch, index) -> f32`: the plan's epilogues
 * applied in order, or undefined when it has none.
 */
function epilogueFunction(p: MatmulPlan): KernelFunction | undefined {
  if (p.epilogues.length === 0) return undefined;
  return defineFunction(
    "epilogue",
    [["acc", "f32"], ["row", "u32"], ["col", "u32"], ["batch", "u32"], ["index", "u32"]],
    "f32",
    ([acc, row, col, batch, index], body) => {
      let value = acc;
      for (const e of p.epilogues) {
        const next = e.apply({ acc: value, row, col, batch, index }, body);
        if (next.type !== "f32") throw new Error(`matmul: an epilogue gives ${next.type}, not f32`);
        value = body.let(next, "acc");
      }
      body.return(value);
    },
  );
}

/** `fn store(batch, row, col, v: vec4f)`: writes the lanes of `v` that fall inside C. */
function storeFunction(p: MatmulPlan, vecC: boolean): KernelFunction {
  const { M, N } = p;
  const epilogue = epilogueFunction(p);
  return defineFunction(
    "store",
    [["batch", "u32"], ["row", "u32"], ["col", "u32"], ["v", "vec4f"]],
    undefined,
    ([batch, row, col, v], body) => {
      body.when(
        binary("||", binary(">=", row, u32(M)), binary(">=", col, u32(N))),
        (exit) => exit.return(),
      );
      const index = body.letNamed("index", add(mul(add(mul(batch, u32(M)), row), u32(N)), col));
      const value = (c: number) =>
        epilogue === undefined
          ? lane(v, c)
          : call(epilogue, lane(v, c), row, add(col, u32(c)), batch, add(index, u32(c)));
      if (vecC) {
        body.store("dst", div(index, u32(4)), vector("vec4f", ...[0, 1, 2, 3].map(value)));
        return;
      }
      for (let c = 0; c < 4; c++) {
        const write = (into: Body) => into.store("dst", add(index, u32(c)), value(c));
        if (c === 0) write(body);
        else body.when(lt(add(col, u32(c)), u32(N)), write);
      }
    },
  );
}

/**
 * The kernel program of a plan, labelled and dispatched as given.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { emitMatmulProgram } from "./_matmul_codegen.ts";
 * import { planMatmul } from "./_matmul_plan.ts";
 * import { MATMUL_TILES_CPU_SMALL } from "./matmul.ts";
 * const plan = planMatmul({ M: 8, N: 8, K: 8 }, MATMUL_TILES_CPU_SMALL);
 * const program = emitMatmulProgram(plan, { label: "demo", dispatch: [1, 1, 1] });
 * strictEqual(program.family, "matmul");
 * strictEqual(program.workgroupSize.join(), "8,8,1");
 * ```
 */
export function emitMatmulProgram(
  p: MatmulPlan,
  options: { label: string; dispatch: readonly [number, number, number] },
): KernelProgram {
  const { tiles: t, M, N } = p;
  const registers = t.staging === "registers";
  const vec = vectorised(p);
  const store = storeFunction(p, vec.c);
  const body = new Body();
  const batch = body.letNamed("batch", wid(2));
  const row0 = body.letNamed(
    "row0",
    add(mul(wid(1), u32(t.tileM)), mul(lid(1), u32(t.threadM))),
  );
  const col0 = body.letNamed(
    "col0",
    add(mul(wid(0), u32(t.tileN)), mul(lid(0), u32(t.threadN))),
  );
  const aBase = body.letNamed("a_base", add(u32(p.a.offset), mul(batch, u32(p.a.batchStride))));
  const bBase = body.letNamed("b_base", add(u32(p.b.offset), mul(batch, u32(p.b.batchStride))));
  const accs = Array.from(
    { length: t.threadM },
    (_, i) =>
      Array.from(
        { length: t.threadN / 4 },
        (_, j4) => body.varNamed(`acc_${i}_${j4}`, "vec4f", vector("vec4f", f32(0))),
      ),
  );
  const frame = { accs, row0, col0, aBase, bBase };
  if (registers) registersBody(body, p, frame, vec.a, vec.b);
  else workgroupBody(body, p, frame, vec.a, vec.b);
  accs.forEach((row, i) =>
    row.forEach((acc, j4) =>
      body.call(store, batch, add(row0, u32(i)), add(col0, u32(4 * j4)), acc)
    )
  );
  return {
    family: "matmul",
    label: options.label,
    comment: `matmul C[b] = op(A[b]) · op(B[b]): batch ${p.batch}, M ${M}, N ${N}, K ${p.K}`,
    buffers: matmulBuffers(p),
    shared: registers ? [] : workgroupTiles(p),
    workgroupSize: [t.tileN / t.threadN, t.tileM / t.threadM, 1],
    dispatch: options.dispatch,
    body: body.stmts,
  };
}
