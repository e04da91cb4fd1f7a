/**
 * Tracing: run a TypeScript function on symbolic {@link Tensor}s and record
 * the ops it performs as a {@link Graph}. `scope` and `param` give parameters
 * PyTorch-style module paths.
 *
 * @module
 */
import {
  type AttrValue,
  checkDType,
  checkShape,
  type DType,
  type Graph,
  makeGraph,
  makeNode,
  type Node,
  type ParamRole,
} from "./ir.ts";
import { type ParamInit, Tensor, wrap } from "./tensor.ts";
import * as ops from "../ops/mod.ts";

export {
  concat,
  constant,
  iota,
  type ParamInit,
  randomUniform,
  Tensor,
  type TensorLike,
  where,
} from "./tensor.ts";

interface TraceContext {
  readonly scopes: string[];
  readonly params: Map<string, Node>;
  nextStream: number;
}

let active: TraceContext | undefined;

function context(what: string): TraceContext {
  if (active === undefined) throw new Error(`${what} can only be called inside trace()`);
  return active;
}

/** The current module path joined with `name`. */
function scopedName(ctx: TraceContext, name: string): string {
  return [...ctx.scopes, name].filter((s) => s !== "").join(".");
}

/** Runs `fn` with `name` appended to the module path of the params it declares. */
export function scope<T>(name: string | number, fn: () => T): T {
  const ctx = context("scope()");
  ctx.scopes.push(String(name));
  try {
    return fn();
  } finally {
    ctx.scopes.pop();
  }
}

/** Options of {@link param}. */
export interface ParamOptions {
  /** How `initParams` fills it (default zeros). */
  readonly init?: ParamInit;
  /** Trainable (default) or frozen. */
  readonly role?: ParamRole;
  /** Element type (default f32). */
  readonly dtype?: DType;
}

/** Declares a parameter at the current module path; declaring the same path twice is an error. */
export function param(name: string, shape: readonly number[], options: ParamOptions = {}): Tensor {
  const ctx = context("param()");
  const path = scopedName(ctx, name);
  if (ctx.params.has(path)) throw new Error(`param "${path}" is declared twice`);
  const node = makeNode(ops.param, [], {
    shape: [...checkShape(shape, `param "${path}"`)],
    dtype: checkDType(options.dtype ?? "f32", `param "${path}"`),
    role: options.role ?? "trainable",
    init: (options.init ?? { kind: "zeros" }) as unknown as AttrValue,
  }, path);
  ctx.params.set(path, node);
  return wrap(node);
}

/** A fresh stream id for a random site (each dropout call gets its own). */
export function nextStream(): number {
  return context("nextStream()").nextStream++;
}

/** Declares one input of a traced function. */
export interface InputSpec {
  /** Name the caller feeds it by. */
  readonly name: string;
  /** Static shape. */
  readonly shape: readonly number[];
  /** Element type (default f32). */
  readonly dtype?: DType;
}

/** What a traced function may return. */
export type TraceResult = Tensor | readonly Tensor[] | Readonly<Record<string, Tensor>>;

/**
 * Runs `fn` on symbolic inputs and returns the Graph it computes. A single
 * result is named `out`; an array gives `out0`, `out1`, ...; a record keeps
 * its keys.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { param, trace } from "./trace.ts";
 * const g = trace((x) => x.matmul(param("w", [2, 3]).T).sum(), [{ name: "x", shape: [4, 3] }]);
 * deepStrictEqual(g.params.map((p) => p.name), ["w"]);
 * ```
 */
export function trace(
  fn: (...inputs: Tensor[]) => TraceResult,
  specs: readonly InputSpec[],
  meta: Readonly<Record<string, unknown>> = {},
): Graph {
  if (active !== undefined) throw new Error("trace() cannot be nested");
  const names = new Set<string>();
  const inputs = specs.map((spec) => {
    if (names.has(spec.name)) throw new Error(`input "${spec.name}" is declared twice`);
    names.add(spec.name);
    const dtype = checkDType(spec.dtype ?? "f32", `input "${spec.name}"`);
    return makeNode(ops.input, [], {
      shape: [...checkShape(spec.shape, `input "${spec.name}"`)],
      dtype,
    }, spec.name);
  });
  active = { scopes: [], params: new Map(), nextStream: 0 };
  let result: TraceResult;
  try {
    result = fn(...inputs.map(wrap));
  } finally {
    active = undefined;
  }
  return makeGraph({ inputs, outputs: namedOutputs(result), meta });
}

function namedOutputs(result: TraceResult): Record<string, Node> {
  if (result instanceof Tensor) return { out: result.node };
  if (Array.isArray(result)) {
    return Object.fromEntries(
      result.map((t: Tensor, i: number) => [`out${i}`, checkTensor(t, `out${i}`)]),
    );
  }
  return Object.fromEntries(
    Object.entries(result as Record<string, Tensor>).map(([k, t]) => [k, checkTensor(t, k)]),
  );
}

function checkTensor(t: unknown, name: string): Node {
  if (!(t instanceof Tensor)) throw new Error(`trace: output "${name}" is not a Tensor`);
  return t.node;
}
