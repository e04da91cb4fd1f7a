/**
 * A small WebAssembly binary encoder: just what the kernels need (i32, f32
 * and v128 values, structured control flow, one imported shared memory), so
 * the backend has no assembler dependency and kernels are built as bytes.
 *
 * @module
 */

/** Value types: i32, f32 and the 128-bit SIMD vector. */
export const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
/** A value type byte. */
export type ValType = typeof I32 | typeof F32 | typeof V128;

/**
 * Unsigned LEB128.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { uleb } from "./_encoder.ts";
 * deepStrictEqual(uleb(300), [172, 2]);
 * ```
 */
export function uleb(n: number, out: number[] = []): number[] {
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/**
 * Signed LEB128 of a 32-bit integer.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { sleb } from "./_encoder.ts";
 * deepStrictEqual(sleb(-1), [127]);
 * ```
 */
export function sleb(n: number, out: number[] = []): number[] {
  n |= 0;
  while (true) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const f32Bytes = new Uint8Array(4);
const f32View = new DataView(f32Bytes.buffer);

/**
 * One function body under construction: locals are declared on demand and
 * instructions appended as bytes (SIMD ones through {@link Fn.simd}).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Fn, I32 } from "./_encoder.ts";
 * const f = new Fn([I32], [I32]);
 * f.get(0).i32(1).op(0x6a); // i32.add
 * strictEqual(f.body().length > 0, true);
 * ```
 */
export class Fn {
  readonly code: number[] = [];
  readonly locals: ValType[] = [];
  constructor(readonly params: readonly ValType[], readonly results: readonly ValType[] = []) {}
  /** Declares a local and returns its index. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }
  /** Declares `count` locals of one type and returns their indices. */
  localsOf(type: ValType, count: number): number[] {
    return Array.from({ length: count }, () => this.local(type));
  }
  /** Appends raw bytes. */
  op(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }
  /** A SIMD instruction (0xFD prefix) with optional immediates. */
  simd(code: number, ...imm: number[]): this {
    this.code.push(0xfd);
    uleb(code, this.code);
    for (const b of imm) this.code.push(b);
    return this;
  }
  get(i: number): this {
    return this.op(0x20, ...uleb(i));
  }
  set(i: number): this {
    return this.op(0x21, ...uleb(i));
  }
  tee(i: number): this {
    return this.op(0x22, ...uleb(i));
  }
  i32(v: number): this {
    return this.op(0x41, ...sleb(v));
  }
  f32(v: number): this {
    f32View.setFloat32(0, v, true);
    return this.op(0x43, ...f32Bytes);
  }
  /** v128.const with four i32 lanes. */
  v128i(a: number, b = a, c = a, d = a): this {
    const bytes = new Uint8Array(new Int32Array([a, b, c, d]).buffer);
    return this.simd(12, ...bytes);
  }
  /** v128.const with four f32 lanes. */
  v128f(a: number, b = a, c = a, d = a): this {
    const bytes = new Uint8Array(new Float32Array([a, b, c, d]).buffer);
    return this.simd(12, ...bytes);
  }
  /** Memory access with alignment log2 `align` and a constant byte offset. */
  mem(opcode: number, align: number, offset = 0): this {
    return this.op(opcode, align, ...uleb(offset));
  }
  /** SIMD memory access (v128.load/store, load32_splat, load32_zero). */
  vmem(code: number, align: number, offset = 0): this {
    return this.simd(code, align, ...uleb(offset));
  }
  call(index: number): this {
    return this.op(0x10, ...uleb(index));
  }
  block(): this {
    return this.op(0x02, 0x40);
  }
  loop(): this {
    return this.op(0x03, 0x40);
  }
  if(): this {
    return this.op(0x04, 0x40);
  }
  /** `if` whose branches each leave one value of `type`. */
  ifResult(type: ValType): this {
    return this.op(0x04, type);
  }
  /** i32.add */
  add(): this {
    return this.op(0x6a);
  }
  /** i32.mul */
  mul(): this {
    return this.op(0x6c);
  }
  else(): this {
    return this.op(0x05);
  }
  end(): this {
    return this.op(0x0b);
  }
  br(depth: number): this {
    return this.op(0x0c, ...uleb(depth));
  }
  brIf(depth: number): this {
    return this.op(0x0d, ...uleb(depth));
  }
  /**
   * `for (i = from; i < to; i += step) body()` with i32 locals; `from`/`to`
   * are emitters that push one i32. The body may not branch out of the loop.
   */
  for(i: number, from: () => void, to: () => void, step: number, body: () => void): this {
    from();
    this.set(i);
    this.block();
    this.get(i);
    to();
    this.op(0x4e).brIf(0); // i32.ge_s: nothing to do
    this.loop();
    body();
    this.get(i).i32(step).op(0x6a).tee(i);
    to();
    this.op(0x48).brIf(0); // i32.lt_s: again
    this.end().end();
    return this;
  }
  /** The encoded body: local declarations (run-length), code, end. */
  body(): number[] {
    const groups: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = groups[groups.length - 1];
      if (last !== undefined && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const out: number[] = uleb(groups.length);
    for (const [n, t] of groups) uleb(n, out).push(t);
    for (const b of this.code) out.push(b);
    out.push(0x0b);
    return uleb(out.length).concat(out);
  }
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

/**
 * Encodes a module that imports `env.mem` (a shared memory of `pages` 64 KiB
 * pages) and exports each function under its given name.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encodeModule, Fn, I32 } from "./_encoder.ts";
 * const f = new Fn([I32], [I32]);
 * f.get(0).get(0).op(0x6c); // x * x
 * const bytes = encodeModule([{ name: "sq", fn: f }], 1);
 * strictEqual(WebAssembly.validate(bytes), true);
 * ```
 */
export function encodeModule(
  functions: readonly { readonly name?: string; readonly fn: Fn }[],
  pages: number,
): Uint8Array<ArrayBuffer> {
  const sigs: string[] = [];
  const sigOf = functions.map(({ fn }) => {
    const key = `${fn.params.join(",")}:${fn.results.join(",")}`;
    if (!sigs.includes(key)) sigs.push(key);
    return sigs.indexOf(key);
  });
  const types: number[] = uleb(sigs.length);
  for (const key of sigs) {
    const [p, r] = key.split(":").map((s) => (s === "" ? [] : s.split(",").map(Number)));
    types.push(0x60, ...uleb(p.length), ...p, ...uleb(r.length), ...r);
  }
  const imports = [1, ...name("env"), ...name("mem"), 0x02, 0x03, ...uleb(pages), ...uleb(pages)];
  const funcs = [...uleb(functions.length), ...sigOf.flatMap((s) => uleb(s))];
  const named = functions.map((f, i) => [f.name, i] as const).filter(([n]) => n !== undefined);
  const exports = [
    ...uleb(named.length),
    ...named.flatMap(([n, i]) => [...name(n!), 0, ...uleb(i)]),
  ];
  const code = [...uleb(functions.length), ...functions.flatMap(({ fn }) => fn.body())];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, types),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, code),
  ]);
}
