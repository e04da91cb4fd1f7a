/**
 * The one WGSL renderer: turns a kernel IR program
 * (`compiler/kernel_ir/ir.ts`) into a WGSL module and the {@link Kernel}
 * the WebGPU runtime dispatches. Every kernel family goes through here, so
 * literal spelling, operator precedence, builtin parameters and the cache
 * key are decided once.
 *
 * @module
 */
import type {
  Expr,
  InvocationId,
  KernelFunction,
  KernelProgram,
  Stmt,
  TreeLane,
  ValueType,
} from "../../../compiler/kernel_ir/ir.ts";
import { type Kernel, type KernelBinding, kernelKey, wgslBindingDecl, wgslF32 } from "./kernel.ts";

const WGSL_TYPE: Record<ValueType, string> = {
  f32: "f32",
  i32: "i32",
  u32: "u32",
  bool: "bool",
  vec2u: "vec2<u32>",
  vec4f: "vec4<f32>",
};

const LANES = ["x", "y", "z", "w"];

/** The entry-point parameter each kind of invocation id is read from. */
const ID_PARAMS = {
  workgroup: "@builtin(workgroup_id) wid: vec3<u32>",
  numWorkgroups: "@builtin(num_workgroups) nwg: vec3<u32>",
  local: "@builtin(local_invocation_id) lid3: vec3<u32>",
  localIndex: "@builtin(local_invocation_index) lid: u32",
} as const;

function idText(id: InvocationId): string {
  switch (id.of) {
    case "workgroup":
      return `wid.${LANES[id.axis]}`;
    case "numWorkgroups":
      return `nwg.${LANES[id.axis]}`;
    case "local":
      return `lid3.${LANES[id.axis]}`;
    case "localIndex":
      return "lid";
  }
}

// A WGSL literal of the given type (non-finite f32 values as bit patterns).
function literalText(value: number, type: ValueType): string {
  switch (type) {
    case "f32":
      if (Number.isNaN(value)) return "bitcast<f32>(0x7fc00000u)";
      if (value === Infinity) return "bitcast<f32>(0x7f800000u)";
      if (value === -Infinity) return "bitcast<f32>(0xff800000u)";
      return `${wgslF32(value)}f`;
    case "i32":
      return value >= 0 ? `${value}i` : `i32(${value})`;
    case "u32":
      return `${value >>> 0}u`;
    case "bool":
      return value !== 0 ? "true" : "false";
    default:
      throw new Error(`kernel IR: no literal of type ${type}`);
  }
}

/**
 * The WGSL text of an expression (binary operations fully parenthesised, so
 * WGSL's rules against mixing operators never bite).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, mul, ref, u32 } from "../../../compiler/kernel_ir/build.ts";
 * import { exprText } from "./render.ts";
 * strictEqual(exprText(add(mul(ref("row", "u32"), u32(8)), ref("j", "u32"))), "((row * 8u) + j)");
 * ```
 */
export function exprText(e: Expr): string {
  switch (e.kind) {
    case "literal":
      return literalText(e.value, e.type);
    case "ref":
      return e.name;
    case "id":
      return idText(e.id);
    case "load":
      return `${e.array}[${exprText(e.index)}]`;
    case "unary":
      return `(${e.op}${exprText(e.x)})`;
    case "binary":
      return `(${exprText(e.a)} ${e.op} ${exprText(e.b)})`;
    case "math":
      return `${e.fn}(${e.args.map(exprText).join(", ")})`;
    case "call":
      return `${e.fn.name}(${e.args.map(exprText).join(", ")})`;
    case "select":
      return `select(${exprText(e.ifFalse)}, ${exprText(e.ifTrue)}, ${exprText(e.cond)})`;
    case "convert":
      return `${WGSL_TYPE[e.type]}(${exprText(e.x)})`;
    case "bitcast":
      return `bitcast<${WGSL_TYPE[e.type]}>(${exprText(e.x)})`;
    case "vector":
      return `${WGSL_TYPE[e.type]}(${e.parts.map(exprText).join(", ")})`;
    case "lane": {
      const x = exprText(e.x);
      return `${/^[A-Za-z_][A-Za-z0-9_]*$/.test(x) ? x : `(${x})`}.${LANES[e.lane]}`;
    }
  }
}

// The WGSL lines of one statement, each prefixed by `pad`.
function stmtLines(s: Stmt, pad: string): string[] {
  const block = (stmts: readonly Stmt[]) => stmts.flatMap((t) => stmtLines(t, `${pad}  `));
  switch (s.kind) {
    case "let":
      return [`${pad}let ${s.name} = ${exprText(s.value)};`];
    case "var":
      return [
        `${pad}var ${s.name}: ${WGSL_TYPE[s.type]}${
          s.init === undefined ? "" : ` = ${exprText(s.init)}`
        };`,
      ];
    case "assign":
      return [`${pad}${s.name} = ${exprText(s.value)};`];
    case "store":
      return [`${pad}${s.array}[${exprText(s.index)}] = ${exprText(s.value)};`];
    case "loop":
      return [
        `${pad}for (var ${s.name} = ${exprText(s.from)}; ${s.name} < ${
          exprText(s.to)
        }; ${s.name} = ${s.name} + ${exprText(s.step)}) {`,
        ...block(s.body),
        `${pad}}`,
      ];
    case "if":
      return [
        `${pad}if (${exprText(s.cond)}) {`,
        ...block(s.then),
        ...(s.otherwise === undefined ? [] : [`${pad}} else {`, ...block(s.otherwise)]),
        `${pad}}`,
      ];
    case "return":
      return [`${pad}return${s.value === undefined ? "" : ` ${exprText(s.value)}`};`];
    case "barrier":
      return [`${pad}workgroupBarrier();`];
    case "call":
      return [`${pad}${s.fn.name}(${s.args.map(exprText).join(", ")});`];
    case "treeReduce":
      return treeReduceLines(s.width, s.lanes, pad);
  }
}

function treeReduceLines(
  width: number,
  lanes: Extract<Stmt, { kind: "treeReduce" }>["lanes"],
  pad: string,
): string[] {
  const combine = (op: TreeLane["combine"], a: string, b: string) =>
    op === "+" ? `${a} + ${b}` : `${typeof op === "string" ? op : op.name}(${a}, ${b})`;
  return [
    "workgroupBarrier();",
    `for (var s = ${width >> 1}u; s > 0u; s = s >> 1u) {`,
    "  if (lid < s) {",
    ...lanes.map((l) =>
      `    ${l.array}[lid] = ${combine(l.combine, `${l.array}[lid]`, `${l.array}[lid + s]`)};`
    ),
    "  }",
    "  workgroupBarrier();",
    "}",
  ].map((l) => `${pad}${l}`);
}

/** Visits every expression and statement of a body, functions called included (once each). */
class Walk {
  readonly functions: KernelFunction[] = [];
  readonly ids = new Set<InvocationId["of"]>();
  readonly #seen = new Map<string, KernelFunction>();

  body(stmts: readonly Stmt[], inFunction: string | undefined): void {
    for (const s of stmts) this.#stmt(s, inFunction);
  }

  #stmt(s: Stmt, fn: string | undefined): void {
    switch (s.kind) {
      case "let":
      case "assign":
        return this.#expr(s.value, fn);
      case "var":
        if (s.init) this.#expr(s.init, fn);
        return;
      case "store":
        this.#expr(s.index, fn);
        return this.#expr(s.value, fn);
      case "loop":
        [s.from, s.to, s.step].forEach((e) => this.#expr(e, fn));
        return this.body(s.body, fn);
      case "if":
        this.#expr(s.cond, fn);
        this.body(s.then, fn);
        if (s.otherwise) this.body(s.otherwise, fn);
        return;
      case "return":
        if (s.value) this.#expr(s.value, fn);
        return;
      case "call":
        this.#function(s.fn);
        return s.args.forEach((a) => this.#expr(a, fn));
      case "treeReduce":
        this.#id("localIndex", fn);
        for (const lane of s.lanes) {
          if (typeof lane.combine !== "string") this.#function(lane.combine);
        }
        return;
      case "barrier":
        return;
    }
  }

  #expr(e: Expr, fn: string | undefined): void {
    switch (e.kind) {
      case "id":
        return this.#id(e.id.of, fn);
      case "load":
        return this.#expr(e.index, fn);
      case "unary":
      case "convert":
      case "bitcast":
      case "lane":
        return this.#expr(e.x, fn);
      case "binary":
        this.#expr(e.a, fn);
        return this.#expr(e.b, fn);
      case "math":
      case "vector":
        (e.kind === "math" ? e.args : e.parts).forEach((a) => this.#expr(a, fn));
        return;
      case "call":
        this.#function(e.fn);
        return e.args.forEach((a) => this.#expr(a, fn));
      case "select":
        [e.cond, e.ifTrue, e.ifFalse].forEach((a) => this.#expr(a, fn));
        return;
    }
  }

  #id(of: InvocationId["of"], fn: string | undefined): void {
    // WGSL exposes builtins only as entry-point parameters.
    if (fn !== undefined) throw new Error(`kernel IR: function ${fn} reads an invocation id`);
    this.ids.add(of);
  }

  #function(f: KernelFunction): void {
    const known = this.#seen.get(f.name);
    if (known === f) return;
    if (known !== undefined) throw new Error(`kernel IR: two different functions named ${f.name}`);
    this.#seen.set(f.name, f);
    this.body(f.body, f.name);
    this.functions.push(f); // after its callees
  }
}

// The WGSL text of one helper function (its callees are not included).
function functionText(f: KernelFunction): string {
  // Library functions (Threefry) are shared objects called by many kernels: render each once.
  const known = functionTexts.get(f);
  if (known !== undefined) return known;
  const params = f.params.map((p) => `${p.name}: ${WGSL_TYPE[p.type]}`).join(", ");
  const returns = f.returns === undefined ? "" : ` -> ${WGSL_TYPE[f.returns]}`;
  const text = [
    `fn ${f.name}(${params})${returns} {`,
    ...f.body.flatMap((s) => stmtLines(s, "  ")),
    "}",
  ].join("\n");
  functionTexts.set(f, text);
  return text;
}

const functionTexts = new WeakMap<KernelFunction, string>();

/**
 * The WGSL module of a kernel program: buffer and shared-array
 * declarations, the helper functions it calls (callees first), and `main`
 * with exactly the builtin parameters its body reads.
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { Body, f32, invocation } from "../../../compiler/kernel_ir/mod.ts";
 * import { renderWgsl } from "./render.ts";
 * const body = new Body();
 * body.store("out0", invocation({ of: "localIndex" }), f32(1));
 * const wgsl = renderWgsl({
 *   family: "ones", label: "ones", shared: [], workgroupSize: [4, 1, 1], dispatch: [1, 1, 1],
 *   buffers: [{ name: "out0", access: "read_write", element: "f32" }], body: body.stmts,
 * });
 * match(wgsl, /out0\[lid\] = 1\.0f;/);
 * ```
 */
export function renderWgsl(program: KernelProgram): string {
  const walk = new Walk();
  walk.body(program.body, undefined);
  const params = (Object.keys(ID_PARAMS) as (keyof typeof ID_PARAMS)[])
    .filter((of) => walk.ids.has(of)).map((of) => ID_PARAMS[of]);
  const [x, y, z] = program.workgroupSize;
  return [
    ...(program.comment ? [`// ${program.comment}`] : []),
    ...program.buffers.map((b, i) =>
      wgslBindingDecl(bindingOf(b), i, `array<${WGSL_TYPE[b.element]}>`)
    ),
    ...program.shared.map((s) =>
      `var<workgroup> ${s.name}: array<${WGSL_TYPE[s.element]}, ${s.length}>;`
    ),
    ...walk.functions.map(functionText),
    [
      `@compute @workgroup_size(${x}, ${y}, ${z})`,
      `fn main(${params.join(", ")}) {`,
      ...program.body.flatMap((s) => stmtLines(s, "  ")),
      "}",
    ].join("\n"),
    "",
  ].join("\n\n");
}

function bindingOf(b: KernelProgram["buffers"][number]): KernelBinding {
  return { name: b.name, type: b.access === "read" ? "storage-read" : "storage" };
}

/**
 * Renders a program and wraps it as the runtime's {@link Kernel}: WGSL,
 * bindings, dispatch, label, and the one cache key (family + hash of the
 * bindings and WGSL).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Body, f32, invocation } from "../../../compiler/kernel_ir/mod.ts";
 * import { toKernel } from "./render.ts";
 * const body = new Body();
 * body.store("out0", invocation({ of: "localIndex" }), f32(1));
 * const kernel = toKernel({
 *   family: "ones", label: "ones", shared: [], workgroupSize: [4, 1, 1], dispatch: [1, 1, 1],
 *   buffers: [{ name: "out0", access: "read_write", element: "f32" }], body: body.stmts,
 * });
 * strictEqual(kernel.key.startsWith("ones:"), true);
 * strictEqual(kernel.bindings[0].type, "storage");
 * ```
 */
export function toKernel(program: KernelProgram): Kernel {
  const wgsl = renderWgsl(program);
  const bindings = program.buffers.map(bindingOf);
  return {
    key: kernelKey(program.family, bindings, wgsl),
    wgsl,
    bindings,
    workgroupSize: program.workgroupSize,
    dispatch: program.dispatch,
    label: program.label,
  };
}
