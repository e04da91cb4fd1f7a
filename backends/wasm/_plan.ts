/**
 * Lowers a graph (after the graph passes) to wasm kernels over one linear
 * memory: decides which nodes get buffers (kernel outputs, leaves, graph
 * outputs; views are folded into reads, single-use elementwise nodes into
 * their consumer's loop), assigns every buffer a fixed address, and emits one
 * `(thread, threads)` function per step.
 *
 * @module
 */
import { type Node, sizeOf, topoSort } from "../../compiler/ir.ts";
import { makeNode } from "../../compiler/ir.ts";
import type { Graph } from "../../compiler/ir.ts";
import { dropoutConstants } from "../../ops/random.ts";
import type { Fn } from "./_encoder.ts";
import { emitConst } from "./_expr.ts";
import { emitGather } from "./_gather.ts";
import { emitLoops, type Operand } from "./_loops.ts";
import { emitMatmul, type MatOperand, scratchBytes } from "./_matmul.ts";
import { ModuleBuilder } from "./_module.ts";
import { emitDropout, emitRandom } from "./_random.ts";
import { emitReduce, reduceLayout } from "./_reduce.ts";
import { emitGroup, fusionGroup } from "./_fusion.ts";
import { emitRowwise } from "./_rowwise.ts";
import { isRowMajor, matrixView, type View, viewOf } from "./_views.ts";
import { VIEW_OPS } from "../../ops/mod.ts";
import { stridesOf } from "../../ops/rules.ts";
import * as ops from "../../ops/mod.ts";

/** One kernel call of a run: its export name and whether threads share it. */
export interface Step {
  readonly name: string;
  readonly parallel: boolean;
  readonly what: string;
}

/** The lowered program. */
export interface WasmPlan {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly pages: number;
  /** Run once after instantiation (random projections). */
  readonly init: readonly Step[];
  readonly steps: readonly Step[];
  /** Byte address of each buffered node. */
  readonly address: ReadonlyMap<number, number>;
}

/**
 * Work (roughly: elements × ops, or multiply-adds / 4) above which a step is
 * split among threads. Waking a worker costs tens of µs (more on a loaded
 * machine), so only steps of a few hundred µs are worth sharing.
 */
const PARALLEL_WORK = 1 << 18;

/**
 * Plans `graph` for `threads` threads.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { planWasm } from "./_plan.ts";
 * import { trace } from "../../compiler/trace.ts";
 * const plan = planWasm(trace((x) => x.exp().mul(2), [{ name: "x", shape: [5] }]), { threads: 1 });
 * strictEqual(plan.steps.length, 1);
 * ```
 */
export function planWasm(graph: Graph, options: { threads: number; fma?: boolean }): WasmPlan {
  const planner = new Planner(graph, options);
  for (const node of planner.nodes) planner.lower(node);
  return planner.finish();
}

/**
 * One planning's state: the nodes in order, the buffer addresses given so far, and the kernels,
 * whose code is emitted by {@link Planner.finish} once every address is known.
 */
class Planner {
  readonly module = new ModuleBuilder();
  readonly nodes: Node[];
  readonly uses = new Map<number, number>();
  readonly outputs: Set<number>;
  readonly consumers = new Map<number, Node[]>();
  readonly address = new Map<number, number>();
  readonly steps: Step[] = [];
  readonly init: Step[] = [];
  // Emission waits until every buffer (and the matmul scratch after them) has its address.
  readonly emitters: [string, (f: Fn) => void][] = [];
  top = 1024;
  scratchPerThread = 0;
  scratchBase = 0;

  constructor(graph: Graph, readonly options: { threads: number; fma?: boolean }) {
    this.nodes = topoSort(Object.values(graph.outputs));
    for (const n of this.nodes) {
      for (const i of n.inputs) this.uses.set(i.id, (this.uses.get(i.id) ?? 0) + 1);
    }
    this.outputs = new Set(Object.values(graph.outputs).map((n) => n.id));
    for (const n of this.nodes) {
      for (const i of n.inputs) this.consumers.set(i.id, [...(this.consumers.get(i.id) ?? []), n]);
    }
  }

  /** Gives `node` a buffer (once) at the top of memory and returns its byte address. */
  alloc(node: Node): number {
    if (this.address.has(node.id)) return this.address.get(node.id)!;
    this.address.set(node.id, this.top);
    // padding: whole-vector overreads
    this.top += Math.ceil((sizeOf(node.shape) * 4) / 16) * 16 + 16;
    return this.address.get(node.id)!;
  }

  /** Adds a kernel call to every run (or, `once`, to init), shared by threads if `work` is large. */
  kernel(what: string, work: number, emit: (f: Fn) => void, once = false): void {
    const name = `k${this.steps.length + this.init.length}`;
    this.emitters.push([name, emit]);
    (once ? this.init : this.steps).push({ name, parallel: work >= PARALLEL_WORK, what });
  }

  // A property, not a method: view() hands it to viewOf without making a closure per call.
  readonly buffered = (n: Node): boolean => this.address.has(n.id);

  view(n: Node): View {
    return viewOf(n, this.buffered);
  }

  operand(v: View & { kind: "strided" }): Operand {
    return { addr: this.address.get(v.base.id)! + v.offset * 4, strides: v.strides };
  }

  /** Writes `v` (a view or constant) into `node`'s own buffer (at `out`). */
  copyInto(what: string, v: View, out: Operand, shape: readonly number[], dtype: Node): void {
    this.kernel(what, sizeOf(shape), (f) => {
      const ins = v.kind === "strided" ? [this.operand(v)] : [];
      emitLoops(f, shape, out, ins, (load) => {
        if (v.kind === "strided") f.get(load(0));
        else emitConst(f, v.value, dtype.dtype);
      });
    });
  }

  /** Gives a view or constant node its own contiguous buffer. */
  materialize(node: Node): void {
    if (this.buffered(node)) return;
    const v = this.view(node);
    const out = { addr: this.alloc(node), strides: stridesOf(node.shape) };
    this.copyInto(`copy ${node.op}`, v, out, node.shape, node);
  }

  /** Byte address of `node` as a contiguous row-major tensor, copying if it is a strided view. */
  contiguous(node: Node): number {
    const v = this.view(node);
    if (v.kind === "strided" && isRowMajor(v)) {
      return this.address.get(v.base.id)! + v.offset * 4;
    }
    this.materialize(node);
    return this.address.get(node.id)!;
  }

  // A property, not a method: fusionGroup calls it back unbound.
  readonly fusedInto = (n: Node, consumer: Node): boolean =>
    n.def.kind === "elementwise" && this.uses.get(n.id) === 1 && !this.outputs.has(n.id) &&
    consumer.def.kind === "elementwise" && n.shape.join() === consumer.shape.join();

  /** Gives `node` a buffer or a kernel, or folds it into its reader (views, fused elementwise). */
  lower(node: Node): void {
    const kind = node.def.kind;
    if (node.op === "reshape") {
      const inner = this.view(node.inputs[0]);
      if (inner.kind === "strided" && !isRowMajor(inner)) this.materialize(node.inputs[0]);
    }
    if (kind === "leaf") {
      if (node.op !== "const" || node.attrs.data !== undefined) this.alloc(node);
      else if (this.outputs.has(node.id)) this.materialize(node);
      if (node.op === "iota") this.alloc(node);
    } else if (VIEW_OPS.has(node.op)) {
      if (this.outputs.has(node.id)) this.materialize(node);
    } else if (kind === "elementwise") {
      const consumerFuses = (this.consumers.get(node.id) ?? []).some((c) =>
        this.fusedInto(node, c)
      );
      if (!consumerFuses) this.elementwise(node);
    } else this.lowerKernel(node);
  }

  /** One loop over `root` and the single-use elementwise nodes fused into it. */
  elementwise(root: Node): void {
    const { leaves, ops } = fusionGroup(root, this.fusedInto);
    const views = leaves.map((n) => this.view(n));
    const strided = views.map((v, i) => [v, i] as const).filter(([v]) => v.kind === "strided");
    const slot = new Map(strided.map(([, i], k) => [leaves[i].id, k]));
    const out = this.alloc(root);
    this.kernel(`elementwise ${root.op}`, sizeOf(root.shape) * ops, (f) => {
      const ins = strided.map(([v]) => this.operand(v as View & { kind: "strided" }));
      emitLoops(f, root.shape, { addr: out, strides: stridesOf(root.shape) }, ins, (load) => {
        const leafValue = (n: Node, k: number) => {
          if (slot.has(n.id)) return load(slot.get(n.id)!);
          emitConst(f, (views[k] as { value: number }).value, n.dtype);
          const local = f.local(0x7b);
          f.set(local);
          return local;
        };
        f.get(emitGroup(f, root, leaves, leafValue, this.module));
      });
    });
  }

  /** A node that gets a kernel of its own, by op. */
  lowerKernel(node: Node): void {
    switch (node.op) {
      case "pad":
        return this.pad(node);
      case "concat":
        return this.concat(node);
      case "matmul":
        return this.matmul(node);
      case "sum":
      case "max":
        return this.reduce(node);
      case "gather":
      case "scatterAdd":
        return this.gather(node);
      case "random":
        return this.random(node);
      case "dropout":
        return this.dropout(node);
      default:
        if (node.def.kind !== "fused") throw new Error(`wasm: no lowering for ${node.op}`);
        return this.rowwise(node);
    }
  }

  pad(node: Node): void {
    const size = sizeOf(node.shape);
    const before = node.attrs.before as number[];
    const out = this.alloc(node);
    const strides = stridesOf(node.shape);
    const offset = before.reduce((s, b, i) => s + b * strides[i], 0);
    this.kernel("pad zeros", 0, (f) => void f.i32(out).i32(0).i32(size * 4).op(0xfc, 11, 0));
    const x = node.inputs[0];
    this.copyInto("pad", this.view(x), { addr: out + offset * 4, strides }, x.shape, x);
  }

  concat(node: Node): void {
    const axis = ((node.attrs.axis as number) + node.shape.length) % node.shape.length;
    const out = this.alloc(node);
    const strides = stridesOf(node.shape);
    let start = 0;
    for (const x of node.inputs) {
      const at = { addr: out + start * strides[axis] * 4, strides };
      this.copyInto("concat", this.view(x), at, x.shape, x);
      start += x.shape[axis];
    }
  }

  matmul(node: Node): void {
    const size = sizeOf(node.shape);
    const [a, b] = node.inputs.map((x) => this.matOperand(x));
    const r = node.shape.length;
    const [mm, k, n] = [
      node.inputs[0].shape[r - 2],
      node.inputs[0].shape[r - 1],
      node.shape[r - 1],
    ];
    const batch = sizeOf(node.shape.slice(0, r - 2));
    const per = scratchBytes(k, n);
    this.scratchPerThread = Math.max(this.scratchPerThread, per);
    const c = this.alloc(node);
    if (k === 0) {
      this.kernel("matmul (k = 0)", 0, (f) => void f.i32(c).i32(0).i32(size * 4).op(0xfc, 11, 0));
      return;
    }
    // The scratch's base and size are read at emission, when every buffer has its address.
    this.kernel(`matmul ${batch}×${mm}×${n}×${k}`, (batch * mm * n * k) / 4, (f) =>
      emitMatmul(
        f,
        { batch, m: mm, n, k, a, b, c, scratch: this.scratchBase },
        this.scratchPerThread,
        this.options.fma ?? true,
      ));
  }

  reduce(node: Node): void {
    const x = node.inputs[0];
    const layout = reduceLayout(x.shape, node.attrs.axes as number[]);
    const source = layout.perm === undefined
      ? x
      : makeNode(ops.permute, [x], { perm: layout.perm });
    const xAddr = this.contiguous(source);
    const { outer, rows, inner } = layout;
    const out = this.alloc(node);
    this.kernel(
      `${node.op}`,
      sizeOf(x.shape),
      (f) =>
        emitReduce(f, {
          op: node.op as "sum",
          dtype: node.dtype,
          outer,
          rows,
          inner,
          x: xAddr,
          out,
        }),
    );
  }

  gather(node: Node): void {
    const [source, indices] = node.inputs.map((x) => this.contiguous(x));
    const out = this.alloc(node);
    const idx = node.inputs[1];
    const table = node.op === "gather" ? node.inputs[0] : node;
    const width = sizeOf(table.shape.slice(1));
    this.kernel(node.op, sizeOf(idx.shape) * width, (f) =>
      emitGather(f, {
        op: node.op as "gather",
        float: node.dtype === "f32",
        count: sizeOf(idx.shape),
        width,
        rows: node.shape[0],
        source,
        indices,
        out,
      }));
  }

  random(node: Node): void {
    const size = sizeOf(node.shape);
    const { seed, stream, bound } = node.attrs as Record<string, number>;
    const out = this.alloc(node);
    this.kernel(
      "random",
      size * 8,
      (f) => emitRandom(f, { out, count: size, seed, stream, bound }),
      true,
    );
  }

  dropout(node: Node): void {
    const size = sizeOf(node.shape);
    const [x, seed] = node.inputs.map((n) => this.contiguous(n));
    const { threshold, scale } = dropoutConstants(node.attrs.p as number);
    const out = this.alloc(node);
    const stream = node.attrs.stream as number;
    this.kernel(
      "dropout",
      size * 8,
      (f) => emitDropout(f, { out, x, seed, count: size, stream, threshold, scale }),
    );
  }

  /** A fused row-wise op (softmax, layer norm, ...) over the last axis, from its op's rule. */
  rowwise(node: Node): void {
    const rule = node.def.rowwise;
    if (rule === undefined) throw new Error(`wasm: ${node.op} has no rowwise rule`);
    const x = node.inputs[0];
    // Operands of lower rank than the row (labels, a per-row cotangent) hold one value per row.
    const perRow = (n: Node) => n.shape.length < x.shape.length;
    const operands = node.inputs.map((n) => ({
      addr: this.contiguous(n),
      type: n.dtype === "i32" ? "i32" as const : "f32" as const,
      perRow: perRow(n),
    }));
    const cols = x.shape[x.shape.length - 1];
    const rows = cols === 0 ? 0 : sizeOf(x.shape) / cols;
    const out = { addr: this.alloc(node), perRow: perRow(node) };
    this.kernel(
      node.op,
      sizeOf(x.shape),
      (f) =>
        emitRowwise(f, { rule: (row) => rule(row, node), rows, cols, operands, out }, this.module),
    );
  }

  /** `x` as a matmul operand: a strided matrix view, copied first if it is not one. */
  matOperand(x: Node): MatOperand {
    let m = matrixView(this.view(x));
    if (m === undefined) {
      this.materialize(x);
      m = matrixView(this.view(x))!;
    }
    return { ...m, addr: this.address.get(m.base.id)! + m.offset * 4 };
  }

  /** Places the matmul scratch after the buffers, emits every kernel and encodes the module. */
  finish(): WasmPlan {
    this.scratchBase = this.top;
    this.top += this.scratchPerThread * this.options.threads;
    for (const [name, emit] of this.emitters) emit(this.module.kernel(name));
    const pages = Math.max(1, Math.ceil(this.top / 65536));
    const { init, steps, address } = this;
    return { bytes: this.module.encode(pages), pages, init, steps, address };
  }
}
