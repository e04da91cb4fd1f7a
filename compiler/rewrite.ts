/**
 * The rewrite engine: rules are data (a pattern and a function returning a
 * replacement), and {@link rewrite} applies them bottom-up to a fixed point,
 * with a step guard against rules that undo each other. VeRA, LoRA,
 * simplification and fusion are rule lists on this engine.
 *
 * @module
 */
import {
  attrKey,
  type AttrValue,
  type DType,
  type Graph,
  makeGraph,
  makeNode,
  type Node,
  type Shape,
} from "./ir.ts";

/** A pattern over nodes. Every field present must match. */
export interface Pattern {
  /** Op name, or any of several. */
  readonly op?: string | readonly string[];
  /** Patterns for the operands, positionally (the node must have exactly this many). */
  readonly inputs?: readonly Pattern[];
  /** Binds the matched node under this name in `captures`. */
  readonly capture?: string;
  /** The node's name (module path) equals the string or matches the regex. */
  readonly name?: string | RegExp;
  /** The node's dtype. */
  readonly dtype?: DType;
  /** The exact shape, or a predicate on it. */
  readonly shape?: Shape | ((shape: Shape) => boolean);
  /** Attribute values (compared structurally) or predicates on them. */
  readonly attrs?: Readonly<Record<string, AttrValue | ((value: AttrValue) => boolean)>>;
  /** Any further condition, given the captures so far. */
  readonly where?: (node: Node, captures: Readonly<Record<string, Node>>) => boolean;
}

/** A successful match: the node and its named captures. */
export interface Match {
  /** The node the pattern matched. */
  readonly node: Node;
  /** Nodes bound by `capture` fields. */
  readonly captures: Readonly<Record<string, Node>>;
}

/** A rewrite rule: when `pattern` matches, `rewrite` returns a replacement or nothing. */
export interface Rule {
  /** Shown in loop-guard errors and traces. */
  readonly name: string;
  /** What to look for. */
  readonly pattern: Pattern;
  /** The replacement (same shape and dtype), or `undefined` to leave the node alone. */
  readonly rewrite: (match: Match) => Node | undefined;
}

/** Options of {@link rewrite}. */
export interface RewriteOptions {
  /** Maximum number of successful rule applications at one node before giving up (default 10000). */
  readonly maxSteps?: number;
  /** Called after every successful rewrite (for debugging and counting). */
  readonly onRewrite?: (rule: string, before: Node, after: Node) => void;
}

function matchInto(p: Pattern, node: Node, captures: Record<string, Node>): boolean {
  if (
    p.op !== undefined && (typeof p.op === "string" ? p.op !== node.op : !p.op.includes(node.op))
  ) {
    return false;
  }
  if (p.dtype !== undefined && p.dtype !== node.dtype) return false;
  if (p.name !== undefined) {
    if (node.name === undefined) return false;
    // search() ignores lastIndex, so a /g or /y regex matches every node the same way.
    if (typeof p.name === "string" ? p.name !== node.name : node.name.search(p.name) < 0) {
      return false;
    }
  }
  if (p.shape !== undefined) {
    const ok = typeof p.shape === "function"
      ? p.shape(node.shape)
      : p.shape.join() === node.shape.join() &&
        p.shape.length === node.shape.length;
    if (!ok) return false;
  }
  for (const [key, want] of Object.entries(p.attrs ?? {})) {
    const have = node.attrs[key];
    if (typeof want === "function" ? !want(have) : attrKey(want) !== attrKey(have ?? null)) {
      return false;
    }
  }
  if (p.capture !== undefined) {
    const bound = captures[p.capture];
    if (bound !== undefined && bound !== node) return false;
    captures[p.capture] = node;
  }
  if (p.inputs !== undefined) {
    if (p.inputs.length !== node.inputs.length) return false;
    for (let i = 0; i < p.inputs.length; i++) {
      if (!matchInto(p.inputs[i], node.inputs[i], captures)) return false;
    }
  }
  return p.where === undefined || p.where(node, captures);
}

/**
 * Matches one pattern against one node.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { match } from "./rewrite.ts";
 * import { trace } from "./trace.ts";
 * const g = trace((x) => x.exp(), [{ name: "x", shape: [2] }]);
 * strictEqual(match({ op: "exp", inputs: [{ capture: "x" }] }, g.outputs.out)?.captures.x.name, "x");
 * ```
 */
export function match(pattern: Pattern, node: Node): Match | undefined {
  const captures: Record<string, Node> = {};
  return matchInto(pattern, node, captures) ? { node, captures } : undefined;
}

/** Rebuilds `node` on new operands (hash-consed: identical operands give the same node). */
export function rebuild(node: Node, inputs: readonly Node[]): Node {
  if (inputs.every((n, i) => n === node.inputs[i])) return node;
  return makeNode(node.def, inputs, node.attrs, node.name);
}

/**
 * Applies `rules` everywhere in `roots`, bottom-up, until none applies.
 * Returns the rewritten roots in the same order.
 */
export function rewriteNodes(
  roots: readonly Node[],
  rules: readonly Rule[],
  options: RewriteOptions = {},
): Node[] {
  const maxSteps = options.maxSteps ?? 10_000;
  const memo = new Map<number, Node>();
  const recent: string[] = [];

  const visit = (root: Node): Node => {
    // Iterative post-order over the operands, so deep graphs don't overflow the stack.
    const stack: Node[] = [root];
    while (stack.length > 0) {
      const node = stack[stack.length - 1];
      if (memo.has(node.id)) {
        stack.pop();
        continue;
      }
      const pending = node.inputs.filter((i) => !memo.has(i.id));
      if (pending.length > 0) {
        stack.push(...pending);
        continue;
      }
      stack.pop();
      // Provisional entries: a rule whose replacement contains the node itself terminates.
      memo.set(node.id, node);
      let current = rebuild(node, node.inputs.map((i) => memo.get(i.id)!));
      if (!memo.has(current.id)) memo.set(current.id, current);
      const chain = [node, current];
      let steps = 0;
      for (let changed = true; changed;) {
        changed = false;
        for (const rule of rules) {
          const m = match(rule.pattern, current);
          if (m === undefined) continue;
          const next = rule.rewrite(m);
          if (next === undefined || next === current) continue;
          if (next.shape.join() !== current.shape.join() || next.dtype !== current.dtype) {
            throw new Error(`rewrite rule "${rule.name}" changed the type of a ${current.op} node`);
          }
          if (++steps > maxSteps) {
            throw new Error(
              `rewrite did not reach a fixed point after ${maxSteps} steps at one ${node.op} node (last rules: ${
                recent.join(", ")
              })`,
            );
          }
          recent.push(rule.name);
          if (recent.length > 5) recent.shift();
          options.onRewrite?.(rule.name, current, next);
          current = visit(next);
          chain.push(current);
          changed = true;
          break;
        }
      }
      // Every node on the way maps to the final form, so shared subgraphs rewrite once.
      for (const c of chain) memo.set(c.id, current);
    }
    return memo.get(root.id)!;
  };
  return roots.map(visit);
}

/**
 * Rewrites a graph with `rules` to a fixed point; inputs and output names are kept.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { rewrite } from "./rewrite.ts";
 * import { makeNode } from "./ir.ts";
 * import { trace } from "./trace.ts";
 * const g = trace((x) => x.neg().neg(), [{ name: "x", shape: [2] }]);
 * const rules = [{
 *   name: "neg-neg",
 *   pattern: { op: "neg", inputs: [{ op: "neg", inputs: [{ capture: "x" }] }] },
 *   rewrite: (m: { captures: Record<string, ReturnType<typeof makeNode>> }) => m.captures.x,
 * }];
 * strictEqual(rewrite(g, rules).outputs.out.op, "input");
 * ```
 */
export function rewrite(graph: Graph, rules: readonly Rule[], options: RewriteOptions = {}): Graph {
  const names = Object.keys(graph.outputs);
  const roots = rewriteNodes(names.map((k) => graph.outputs[k]), rules, options);
  return makeGraph({
    inputs: graph.inputs,
    outputs: Object.fromEntries(names.map((k, i) => [k, roots[i]])),
    meta: graph.meta,
  });
}
