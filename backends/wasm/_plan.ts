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
  const m = new ModuleBuilder();
  const nodes = topoSort(Object.values(graph.outputs));
  const uses = new Map<number, number>();
  for (const n of nodes) for (const i of n.inputs) uses.set(i.id, (uses.get(i.id) ?? 0) + 1);
  const outputs = new Set(Object.values(graph.outputs).map((n) => n.id));
  const address = new Map<number, number>();
  let top = 1024;
  let scratchPerThread = 0;
  const alloc = (node: Node) => {
    if (address.has(node.id)) return address.get(node.id)!;
    address.set(node.id, top);
    top += Math.ceil((sizeOf(node.shape) * 4) / 16) * 16 + 16; // padding: whole-vector overreads
    return address.get(node.id)!;
  };
  const steps: Step[] = [];
  const init: Step[] = [];
  // Emission waits until every buffer (and the matmul scratch after them) has its address.
  const emitters: [string, (f: Fn) => void][] = [];
  let scratchBase = 0;
  const kernel = (what: string, work: number, emit: (f: Fn) => void, once = false) => {
    const name = `k${steps.length + init.length}`;
    emitters.push([name, emit]);
    (once ? init : steps).push({ name, parallel: work >= PARALLEL_WORK, what });
  };
  const consumers = new Map<number, Node[]>();
  for (const n of nodes) {
    for (const i of n.inputs) consumers.set(i.id, [...(consumers.get(i.id) ?? []), n]);
  }
  const buffered = (n: Node) => address.has(n.id);
  const view = (n: Node): View => viewOf(n, buffered);
  const operand = (v: View & { kind: "strided" }): Operand => ({
    addr: address.get(v.base.id)! + v.offset * 4,
    strides: v.strides,
  });

  /** Writes `v` (a view or constant) into `node`'s own buffer (at `out`). */
  const copyInto = (what: string, v: View, out: Operand, shape: readonly number[], dtype: Node) => {
    kernel(what, sizeOf(shape), (f) => {
      const ins = v.kind === "strided" ? [operand(v)] : [];
      emitLoops(f, shape, out, ins, (load) => {
        if (v.kind === "strided") f.get(load(0));
        else emitConst(f, v.value, dtype.dtype);
      });
    });
  };
  /** Gives a view or constant node its own contiguous buffer. */
  const materialize = (node: Node) => {
    if (buffered(node)) return;
    const v = view(node);
    copyInto(
      `copy ${node.op}`,
      v,
      { addr: alloc(node), strides: stridesOf(node.shape) },
      node.shape,
      node,
    );
  };
  /** Byte address of `node` as a contiguous row-major tensor, copying if it is a strided view. */
  const contiguous = (node: Node): number => {
    const v = view(node);
    if (v.kind === "strided" && isRowMajor(v)) {
      return address.get(v.base.id)! + v.offset * 4;
    }
    materialize(node);
    return address.get(node.id)!;
  };
  const fusedInto = (n: Node, consumer: Node) =>
    n.def.kind === "elementwise" && uses.get(n.id) === 1 && !outputs.has(n.id) &&
    consumer.def.kind === "elementwise" && n.shape.join() === consumer.shape.join();

  const elementwise = (root: Node) => {
    const { leaves, ops } = fusionGroup(root, fusedInto);
    const views = leaves.map(view);
    const strided = views.map((v, i) => [v, i] as const).filter(([v]) => v.kind === "strided");
    const slot = new Map(strided.map(([, i], k) => [leaves[i].id, k]));
    const out = alloc(root);
    kernel(`elementwise ${root.op}`, sizeOf(root.shape) * ops, (f) => {
      const ins = strided.map(([v]) => operand(v as View & { kind: "strided" }));
      emitLoops(f, root.shape, { addr: out, strides: stridesOf(root.shape) }, ins, (load) => {
        const leafValue = (n: Node, k: number) => {
          if (slot.has(n.id)) return load(slot.get(n.id)!);
          emitConst(f, (views[k] as { value: number }).value, n.dtype);
          const local = f.local(0x7b);
          f.set(local);
          return local;
        };
        f.get(emitGroup(f, root, leaves, leafValue, m));
      });
    });
  };

  for (const node of nodes) {
    const kind = node.def.kind;
    if (node.op === "reshape") {
      const inner = view(node.inputs[0]);
      if (inner.kind === "strided" && !isRowMajor(inner)) materialize(node.inputs[0]);
    }
    if (kind === "leaf") {
      if (node.op !== "const" || node.attrs.data !== undefined) alloc(node);
      else if (outputs.has(node.id)) materialize(node);
      if (node.op === "iota") alloc(node);
    } else if (VIEW_OPS.has(node.op)) {
      if (outputs.has(node.id)) materialize(node);
    } else if (kind === "elementwise") {
      const consumerFuses = (consumers.get(node.id) ?? []).some((c) => fusedInto(node, c));
      if (!consumerFuses) elementwise(node);
    } else lowerKernel(node);
  }

  function lowerKernel(node: Node) {
    const size = sizeOf(node.shape);
    switch (node.op) {
      case "pad": {
        const before = node.attrs.before as number[];
        const out = alloc(node);
        const strides = stridesOf(node.shape);
        const offset = before.reduce((s, b, i) => s + b * strides[i], 0);
        kernel("pad zeros", 0, (f) => void f.i32(out).i32(0).i32(size * 4).op(0xfc, 11, 0));
        const x = node.inputs[0];
        copyInto("pad", view(x), { addr: out + offset * 4, strides }, x.shape, x);
        return;
      }
      case "concat": {
        const axis = ((node.attrs.axis as number) + node.shape.length) % node.shape.length;
        const out = alloc(node);
        const strides = stridesOf(node.shape);
        let start = 0;
        for (const x of node.inputs) {
          copyInto(
            "concat",
            view(x),
            { addr: out + start * strides[axis] * 4, strides },
            x.shape,
            x,
          );
          start += x.shape[axis];
        }
        return;
      }
      case "matmul": {
        const [a, b] = node.inputs.map(matOperand);
        const r = node.shape.length;
        const [mm, k, n] = [
          node.inputs[0].shape[r - 2],
          node.inputs[0].shape[r - 1],
          node.shape[r - 1],
        ];
        const batch = sizeOf(node.shape.slice(0, r - 2));
        const per = scratchBytes(k, n);
        scratchPerThread = Math.max(scratchPerThread, per);
        const c = alloc(node);
        if (k === 0) {
          kernel("matmul (k = 0)", 0, (f) => void f.i32(c).i32(0).i32(size * 4).op(0xfc, 11, 0));
          return;
        }
        kernel(`matmul ${batch}×${mm}×${n}×${k}`, (batch * mm * n * k) / 4, (f) =>
          emitMatmul(
            f,
            { batch, m: mm, n, k, a, b, c, scratch: scratchBase },
            scratchPerThread,
            options.fma ?? true,
          ));
        return;
      }
      case "sum":
      case "max": {
        const x = node.inputs[0];
        const layout = reduceLayout(x.shape, node.attrs.axes as number[]);
        const source = layout.perm === undefined
          ? x
          : makeNode(ops.permute, [x], { perm: layout.perm });
        const xAddr = contiguous(source);
        const { outer, rows, inner } = layout;
        const out = alloc(node);
        kernel(
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
        return;
      }
      case "gather":
      case "scatterAdd": {
        const [source, indices] = node.inputs.map(contiguous);
        const out = alloc(node);
        const idx = node.inputs[1];
        const table = node.op === "gather" ? node.inputs[0] : node;
        const width = sizeOf(table.shape.slice(1));
        kernel(node.op, sizeOf(idx.shape) * width, (f) =>
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
        return;
      }
      case "random": {
        const { seed, stream, bound } = node.attrs as Record<string, number>;
        const out = alloc(node);
        kernel(
          "random",
          size * 8,
          (f) => emitRandom(f, { out, count: size, seed, stream, bound }),
          true,
        );
        return;
      }
      case "dropout": {
        const [x, seed] = node.inputs.map(contiguous);
        const { threshold, scale } = dropoutConstants(node.attrs.p as number);
        const out = alloc(node);
        const stream = node.attrs.stream as number;
        kernel(
          "dropout",
          size * 8,
          (f) => emitDropout(f, { out, x, seed, count: size, stream, threshold, scale }),
        );
        return;
      }
      default: {
        if (node.def.kind !== "fused") throw new Error(`wasm: no lowering for ${node.op}`);
        const operands = node.inputs.map(contiguous);
        const x = node.inputs[0];
        const cols = x.shape[x.shape.length - 1];
        const rows = cols === 0 ? 0 : sizeOf(x.shape) / cols;
        const out = alloc(node);
        const eps = node.attrs.eps as number | undefined;
        kernel(
          node.op,
          sizeOf(x.shape),
          (f) => emitRowwise(f, { op: node.op, rows, cols, operands, out, eps }, m),
        );
      }
    }
  }

  function matOperand(x: Node): MatOperand {
    let m = matrixView(view(x));
    if (m === undefined) {
      materialize(x);
      m = matrixView(view(x))!;
    }
    return { ...m, addr: address.get(m.base.id)! + m.offset * 4 };
  }

  scratchBase = top;
  top += scratchPerThread * options.threads;
  for (const [name, emit] of emitters) emit(m.kernel(name));
  const pages = Math.max(1, Math.ceil(top / 65536));
  return { bytes: m.encode(pages), pages, init, steps, address };
}
