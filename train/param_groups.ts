/**
 * Parameter groups: which trainable params read which learning-rate input,
 * and with which weight decay.
 */
import type { Node } from "../compiler/ir.ts";

/** How a group picks its params: a predicate, a regex (searched in the name) or module names. */
export type ParamMatcher = ((paramName: string) => boolean) | RegExp | readonly string[];

/**
 * A parameter group (PyTorch's `param_groups`): its params read the learning
 * rate from the scalar input `lr.<name>` instead of `lr`.
 */
export interface ParamGroup {
  /** Group name: the learning-rate input is `lr.<name>`. */
  readonly name: string;
  /**
   * Which trainable params belong to the group: a predicate on the param's
   * module path, a regex searched in it, or a list of module names, each
   * matching whole dot-separated components (`"classifier"` matches
   * `classifier.weight`, `"q_proj"` matches `layers.0.attn.q_proj.vera_lambda_d`).
   */
  readonly match: ParamMatcher;
  /** Overrides the optimizer's weight decay for this group. */
  readonly weightDecay?: number;
}

/** The learning-rate input of a group (`lr` for the default group). */
export function lrInputName(group?: string): string {
  return group === undefined ? "lr" : `lr.${group}`;
}

function matches(matcher: ParamMatcher, name: string): boolean {
  if (typeof matcher === "function") return matcher(name) === true;
  if (matcher instanceof RegExp) return name.search(matcher) !== -1;
  const padded = `.${name}.`;
  return matcher.some((module) => padded.includes(`.${module}.`));
}

/** Checks the groups and returns each trainable param's group index (-1: the default group). */
export function assignGroups(
  params: readonly Node[],
  groups: readonly ParamGroup[],
): number[] {
  const names = new Set<string>();
  for (const group of groups) {
    const m = group.match;
    if (typeof group.name !== "string" || group.name === "") {
      throw new Error(`trainStep: every param group needs a non-empty name`);
    }
    if (names.has(group.name)) {
      throw new Error(`trainStep: param group "${group.name}" is declared twice`);
    }
    names.add(group.name);
    if (typeof m !== "function" && !(m instanceof RegExp) && !Array.isArray(m)) {
      throw new Error(
        `trainStep: group "${group.name}": match must be a function, a RegExp or a list of module names`,
      );
    }
  }
  const assignment = params.map((p) => {
    const hits = groups.flatMap((g, i) => (matches(g.match, p.name!) ? [i] : []));
    if (hits.length > 1) {
      throw new Error(
        `trainStep: param "${p.name}" matches several groups (${
          hits.map((i) => groups[i].name).join(", ")
        }); as in PyTorch, a param may belong to one group only`,
      );
    }
    return hits.length === 1 ? hits[0] : -1;
  });
  groups.forEach((g, i) => {
    if (!assignment.includes(i)) {
      throw new Error(
        `trainStep: param group "${g.name}" matches no trainable param (trainable: ${
          params.map((p) => p.name).join(", ")
        })`,
      );
    }
  });
  return assignment;
}
