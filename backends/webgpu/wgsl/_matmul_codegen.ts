// WGSL emission for backends/webgpu/wgsl/matmul.ts. The register block is unrolled
// here (named accumulators and fragments) so the shader compiler keeps it in
// registers rather than in an indexed private array.

import type { MatmulTiles, RandomOperand } from "./_matmul_types.ts";
import { wgslBindingDecl } from "./kernel.ts";
import { matmulBindings, type MatmulPlan, type OperandPlan } from "./_matmul_plan.ts";
import { THREEFRY_WGSL, wgslUniformSymmetric } from "./threefry.ts";

const COMPONENT = ["x", "y", "z", "w"];
const u = (n: number) => `${n}u`;

/** Where one operand's per-invocation fragment is read from. */
interface FragmentSource {
  array: string;
  prefix: "a" | "b";
  /** Values per invocation along M (for A) or N (for B). */
  count: number;
  kContiguous: boolean;
  /** The array holds vec4<f32>. */
  vec4: boolean;
  /** The operand has no array: its elements are generated (scalar reads only). */
  random?: RandomOperand;
  /**
   * Index of (lane, k + kk). For vector reads of a k-contiguous operand: the
   * vec4 of lane `lane` (kk = 0); of another operand: the vec4 of lanes
   * 4·lane..4·lane+3. For scalar reads: the element itself.
   */
  index: (lane: number, kk: number, k: string, vector: boolean) => string;
}

/** Scalar element `e` of an operand: a load from its array, or its Threefry value. */
function element(src: Pick<FragmentSource, "array" | "vec4" | "random">, e: string): string {
  if (src.random !== undefined) return wgslUniformSymmetric(src.random, e);
  return `${src.array}[${src.vec4 ? `(${e}) / 4u][(${e}) % 4u` : e}]`;
}

/** Emits the reads of one k group (`kks` values of k) and returns an accessor for (lane, kk). */
function fragment(src: FragmentSource, kks: number, k: string, tag: string) {
  const name = `${src.prefix}${tag}`;
  const lines: string[] = [];
  if (src.vec4 && src.kContiguous && kks === 4) {
    for (let i = 0; i < src.count; i++) {
      lines.push(`let ${name}_${i} = ${src.array}[${src.index(i, 0, k, true)}];`);
    }
    return {
      lines,
      value: (i: number, kk: number) => `${name}_${i}.${COMPONENT[kk]}`,
      vectors: false,
    };
  }
  if (src.vec4 && !src.kContiguous) {
    for (let kk = 0; kk < kks; kk++) {
      for (let g = 0; g < src.count / 4; g++) {
        lines.push(`let ${name}_${kk}_${g} = ${src.array}[${src.index(g, kk, k, true)}];`);
      }
    }
    return {
      lines,
      value: (i: number, kk: number) => `${name}_${kk}_${i >> 2}.${COMPONENT[i & 3]}`,
      vectors: true,
    };
  }
  for (let kk = 0; kk < kks; kk++) {
    for (let i = 0; i < src.count; i++) {
      lines.push(`let ${name}_${kk}_${i} = ${element(src, src.index(i, kk, k, false))};`);
    }
  }
  return { lines, value: (i: number, kk: number) => `${name}_${kk}_${i}`, vectors: false };
}

/** Reads `kks` consecutive k values (starting at WGSL expression `k`) of both operands and accumulates them. */
function step(a: FragmentSource, b: FragmentSource, kks: number, k: string, tag: string): string[] {
  const fa = fragment(a, kks, k, tag);
  const fb = fragment(b, kks, k, tag);
  const lines = [...fa.lines, ...fb.lines];
  const bv = (kk: number, j4: number) =>
    fb.vectors
      ? `b${tag}_${kk}_${j4}`
      : `vec4<f32>(${[0, 1, 2, 3].map((e) => fb.value(4 * j4 + e, kk)).join(", ")})`;
  const fma = (i: number, j4: number, kk: number) =>
    lines.push(
      `acc_${i}_${j4} = fma(vec4<f32>(${fa.value(i, kk)}), ${bv(kk, j4)}, acc_${i}_${j4});`,
    );
  for (let kk = 0; kk < kks; kk++) {
    for (let j4 = 0; j4 < b.count / 4; j4++) {
      for (let i = 0; i < a.count; i++) fma(i, j4, kk);
    }
  }
  return lines;
}

/** Operand reads straight from its storage buffer, with lanes past the edge clamped to valid addresses. */
function directSource(
  o: OperandPlan,
  which: "a" | "b",
  count: number,
  limit: number,
  vec4: boolean,
) {
  const first = which === "a" ? "row0" : "col0";
  const setup: string[] = [];
  let index: FragmentSource["index"];
  if (o.kContiguous) {
    for (let i = 0; i < count; i++) {
      const start = `${which}_base + min(${first} + ${u(i)}, ${u(Math.max(limit, 1) - 1)}) * ${
        u(o.ld)
      }`;
      setup.push(`let ${which}_row${i} = ${vec4 ? `(${start}) / 4u` : start};`);
    }
    const row = (i: number) => vec4 ? `${which}_row${i} * 4u` : `${which}_row${i}`;
    index = (i, kk, k, vector) =>
      vector ? `${which}_row${i} + (${k}) / 4u` : `${row(i)} + ${k} + ${u(kk)}`;
  } else if (vec4) {
    // The limit is a multiple of 4, so each group of 4 lanes is wholly in or out.
    for (let g = 0; g < count / 4; g++) {
      const clamped = `min(${first} + ${u(4 * g)}, ${u(Math.max(limit, 4) - 4)})`;
      setup.push(`let ${which}_col${g} = (${which}_base + ${clamped}) / 4u;`);
    }
    index = (g, kk, k) => `${which}_col${g} + (${k} + ${u(kk)}) * ${u(o.ld / 4)}`;
  } else {
    for (let i = 0; i < count; i++) {
      setup.push(
        `let ${which}_col${i} = ${which}_base + min(${first} + ${u(i)}, ${
          u(Math.max(limit, 1) - 1)
        });`,
      );
    }
    index = (i, kk, k) => `${which}_col${i} + (${k} + ${u(kk)}) * ${u(o.ld)}`;
  }
  const array = which === "a" ? "lhs" : "rhs";
  const { kContiguous, random } = o;
  return {
    setup,
    src: { array, prefix: which, count, kContiguous, vec4, index, random } as FragmentSource,
  };
}

/** Main loop in steps of tileK, then whole groups of 4, then single k values (all bounds baked). */
function registersBody(p: MatmulPlan, vecA: boolean, vecB: boolean): string[] {
  const { tiles: t, K } = p;
  const a = directSource(p.a, "a", t.threadM, p.M, vecA);
  const b = directSource(p.b, "b", t.threadN, p.N, vecB);
  const lines = [...a.setup, ...b.setup];
  const kLoop = Math.floor(K / t.tileK) * t.tileK;
  if (kLoop > 0) {
    lines.push(`for (var k = 0u; k < ${u(kLoop)}; k = k + ${u(t.tileK)}) {`);
    for (let g = 0; g < t.tileK / 4; g++) {
      lines.push(
        ...step(a.src, b.src, 4, g ? `k + ${u(4 * g)}` : "k", `${g}`).map((l) => `  ${l}`),
      );
    }
    lines.push("}");
  }
  for (let k = kLoop; k < K; k += 4) {
    lines.push(...step(a.src, b.src, Math.min(4, K - k), u(k), `t${k}`));
  }
  return lines;
}

/** Workgroup-memory tiles: [outer][inner / 4] vec4, laid out as the operand is stored. */
function tileShape(o: OperandPlan, t: MatmulTiles, which: "a" | "b") {
  const span = which === "a" ? t.tileM : t.tileN;
  return o.kContiguous ? { outer: span, inner: t.tileK } : { outer: t.tileK, inner: span };
}

function workgroupDecls(p: MatmulPlan): string[] {
  return (["a", "b"] as const).map((which) => {
    const s = tileShape(p[which], p.tiles, which);
    return `var<workgroup> ${which}_tile: array<vec4<f32>, ${s.outer * s.inner / 4}>;`;
  });
}

/** The cooperative copy of one operand's tile for the k step starting at `k0`. */
function tileCopy(p: MatmulPlan, which: "a" | "b", vec4: boolean, threads: number): string[] {
  const o = p[which];
  const s = tileShape(o, p.tiles, which);
  const units = (s.outer * s.inner) / 4;
  const first = which === "a" ? `wid.y * ${u(p.tiles.tileM)}` : `wid.x * ${u(p.tiles.tileN)}`;
  const span = which === "a" ? p.M : p.N;
  const [outerStart, innerStart, outerLimit, innerLimit] = o.kContiguous
    ? [first, "k0", span, p.K]
    : ["k0", first, p.K, span];
  const array = which === "a" ? "lhs" : "rhs";
  const base = `${which}_base + min(go, ${u(Math.max(outerLimit, 1) - 1)}) * ${u(o.ld)}`;
  const read = vec4
    ? `select(vec4<f32>(0.0), ${array}[(${base} + min(gi, ${
      u(Math.max(innerLimit, 4) - 4)
    })) / 4u], ` +
      `go < ${u(outerLimit)} && gi < ${u(innerLimit)})`
    : `vec4<f32>(${
      [0, 1, 2, 3].map((e) =>
        `select(0.0, ${
          element(
            { array, vec4: false, random: o.random },
            `${base} + min(gi + ${u(e)}, ${u(Math.max(innerLimit, 1) - 1)})`,
          )
        }, ` +
        `go < ${u(outerLimit)} && gi + ${u(e)} < ${u(innerLimit)})`
      ).join(", ")
    })`;
  const lines: string[] = [];
  for (let s0 = 0; s0 < units; s0 += threads) {
    const guard = s0 + threads > units ? `if (tid + ${u(s0)} < ${u(units)}) ` : "";
    lines.push(
      `${guard}{`,
      `  let unit = tid + ${u(s0)};`,
      `  let go = ${outerStart} + unit / ${u(s.inner / 4)};`,
      `  let gi = ${innerStart} + (unit % ${u(s.inner / 4)}) * 4u;`,
      `  ${which}_tile[unit] = ${read};`,
      "}",
    );
  }
  return lines;
}

/** Fragment reads from a workgroup tile at group `kq` (k = 4·kq + kk within the tile). */
function tileSource(o: OperandPlan, t: MatmulTiles, which: "a" | "b"): FragmentSource {
  const count = which === "a" ? t.threadM : t.threadN;
  const lane0 = which === "a" ? `lid.y * ${u(t.threadM)}` : `lid.x * ${u(t.threadN)}`;
  const s = tileShape(o, t, which);
  const index: FragmentSource["index"] = o.kContiguous
    ? (i, _kk, kq) => `(${lane0} + ${u(i)}) * ${u(s.inner / 4)} + ${kq}`
    : (g, kk, kq) => `(${kq} * 4u + ${u(kk)}) * ${u(s.inner / 4)} + ${lane0} / 4u + ${u(g)}`;
  return {
    array: `${which}_tile`,
    prefix: which,
    count,
    kContiguous: o.kContiguous,
    vec4: true,
    index,
  };
}

function workgroupBody(p: MatmulPlan, vecA: boolean, vecB: boolean): string[] {
  const t = p.tiles;
  if (p.K === 0) return [];
  const threads = (t.tileM / t.threadM) * (t.tileN / t.threadN);
  const inner = step(tileSource(p.a, t, "a"), tileSource(p.b, t, "b"), 4, "kq", "");
  return [
    `let tid = lid.y * ${u(t.tileN / t.threadN)} + lid.x;`,
    `for (var k0 = 0u; k0 < ${u(p.K)}; k0 = k0 + ${u(t.tileK)}) {`,
    ...[...tileCopy(p, "a", vecA, threads), ...tileCopy(p, "b", vecB, threads)].map((l) =>
      `  ${l}`
    ),
    "  workgroupBarrier();",
    `  for (var kq = 0u; kq < ${u(t.tileK / 4)}; kq = kq + 1u) {`,
    ...inner.map((l) => `    ${l}`),
    "  }",
    "  workgroupBarrier();",
    "}",
  ];
}

/** The whole WGSL module for a plan. */
export function emitMatmulWgsl(p: MatmulPlan): string {
  const { tiles: t, M, N } = p;
  const registers = t.staging === "registers";
  // vec4 reads need aligned rows; outside the registers-mode k loop (which has
  // a scalar tail) they also need whole vec4s along the stored rows. A
  // generated operand is computed one element at a time.
  const vec = (o: OperandPlan) =>
    !o.random && o.aligned && ((registers && o.kContiguous) || o.inner % 4 === 0);
  const [vecA, vecB, vecC] = [vec(p.a), vec(p.b), N % 4 === 0];
  const vec4Arrays = new Set([vecA && "lhs", vecB && "rhs", vecC && "dst"]);
  const accs: string[] = [];
  for (let i = 0; i < t.threadM; i++) {
    for (let j4 = 0; j4 < t.threadN / 4; j4++) accs.push(`acc_${i}_${j4}`);
  }
  const epilogue = (c: number) =>
    p.epilogues.length
      ? `epilogue(v.${COMPONENT[c]}, row, col + ${u(c)}, batch, index + ${u(c)})`
      : `v.${COMPONENT[c]}`;
  const storeBody = vecC
    ? [`dst[index / 4u] = vec4<f32>(${[0, 1, 2, 3].map(epilogue).join(", ")});`]
    : [0, 1, 2, 3].map((c) =>
      `${c ? `if (col + ${u(c)} < ${u(N)}) ` : ""}{ dst[index + ${u(c)}] = ${epilogue(c)}; }`
    );
  const indent = (lines: string[]) => lines.map((l) => `  ${l}`);
  return [
    `// matmul C[b] = op(A[b]) · op(B[b]): batch ${p.batch}, M ${M}, N ${N}, K ${p.K}`,
    ...matmulBindings(p).map((b, i) =>
      wgslBindingDecl(b, i, vec4Arrays.has(b.name) ? "array<vec4<f32>>" : "array<f32>")
    ),
    ...(registers ? [] : workgroupDecls(p)),
    ...(p.a.random || p.b.random ? [THREEFRY_WGSL] : []),
    "",
    ...(p.epilogues.length
      ? [
        "fn epilogue(acc_in: f32, row: u32, col: u32, batch: u32, index: u32) -> f32 {",
        "  var acc = acc_in;",
        ...indent(p.epilogues.map((e) => `acc = ${e.expr};`)),
        "  return acc;",
        "}",
        "",
      ]
      : []),
    "fn store(batch: u32, row: u32, col: u32, v: vec4<f32>) {",
    `  if (row >= ${u(M)} || col >= ${u(N)}) { return; }`,
    `  let index = (batch * ${u(M)} + row) * ${u(N)} + col;`,
    ...indent(storeBody),
    "}",
    "",
    `@compute @workgroup_size(${t.tileN / t.threadN}, ${t.tileM / t.threadM}, 1)`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
    ...indent([
      "let batch = wid.z;",
      `let row0 = wid.y * ${u(t.tileM)} + lid.y * ${u(t.threadM)};`,
      `let col0 = wid.x * ${u(t.tileN)} + lid.x * ${u(t.threadN)};`,
      `let a_base = ${u(p.a.offset)} + batch * ${u(p.a.batchStride)};`,
      `let b_base = ${u(p.b.offset)} + batch * ${u(p.b.batchStride)};`,
      ...accs.map((name) => `var ${name} = vec4<f32>(0.0);`),
      ...(registers ? registersBody(p, vecA, vecB) : workgroupBody(p, vecA, vecB)),
      ...accs.map((name) => {
        const [i, j4] = name.split("_").slice(1).map(Number);
        return `store(batch, row0 + ${u(i)}, col0 + ${u(4 * j4)}, ${name});`;
      }),
    ]),
    "}",
    "",
  ].join("\n");
}
