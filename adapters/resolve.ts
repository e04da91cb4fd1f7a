/**
 * One check for every adapter file before it is used (merge, export, import):
 * the config selects targets with PEFT's rule, every tensor the targets need
 * is present with exactly the right shape, every `modules_to_save` tensor
 * fits the base, and every tensor in the file is used — or the adapter is
 * refused, naming the first tensor or field that does not fit.
 *
 * @module
 */
import { findTargets, type Target, weightsGraph } from "./targets.ts";
import {
  lambdaBName,
  lambdaDName,
  resolveVeraConfig,
  type VeraAdapter,
  type VeraConfig,
} from "./vera.ts";
import {
  type LoraAdapter,
  loraAName,
  loraBName,
  type LoraConfig,
  loraRank,
  resolveLoraConfig,
} from "./lora.ts";
import type { Adapter } from "./merge.ts";

/** An adapter as read from a file: its config and tensors by graph name (`vera_A`/`vera_B` bare). */
export interface AdapterSource {
  /** `vera` or `lora`. */
  readonly kind: "vera" | "lora";
  /** The adapter config (camel-cased; PEFT files through `describePeftConfig`). */
  readonly config: VeraConfig | LoraConfig;
  /** Tensors by graph name. */
  readonly tensors: Readonly<Record<string, Float32Array>>;
  /** Their shapes. */
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  /** VeRA's projections: stored in the file (PEFT) or regenerated from the seed (compact). */
  readonly projections: "stored" | "seed";
  /** The file or directory, for errors. */
  readonly where: string;
}

/** Options of {@link resolveAdapter}. */
export interface ResolveOptions {
  /**
   * How the base shapes are given: as stored in the file (`[in, out]` where `fanInFanOut` says so;
   * the default) or in the graph's `[out, in]` layout (a model loaded into graph layout).
   */
  readonly baseLayout?: "stored" | "graph";
}

/** A checked adapter and the tensors it uses. */
export interface ResolvedAdapter {
  /** The adapter, with targets resolved against the base (or the file's own modules). */
  readonly adapter: Adapter;
  /** The tensors the adapter uses (all of the file's). */
  readonly tensors: Record<string, Float32Array>;
  /** `modules_to_save` tensors the base has (replaced by a merge). */
  readonly savedInBase: readonly string[];
  /** `modules_to_save` tensors the base lacks (added by a merge, e.g. a new head). */
  readonly savedNew: readonly string[];
}

const ADAPTER_SUFFIX = /^(.+)\.(lora_A\.weight|lora_B\.weight|vera_lambda_b|vera_lambda_d)$/;

const shapeText = (shape: readonly number[] | undefined) =>
  shape ? `[${shape.join(", ")}]` : "none";

/** Logical `[out, in]` shapes of a base's rank-2 weights (`[in, out]` stored with fan_in_fan_out). */
function logicalShapes(
  base: Readonly<Record<string, readonly number[]>>,
  fanInFanOut: boolean,
): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, shape] of Object.entries(base)) {
    if (!name.endsWith(".weight") || shape.length !== 2) continue;
    out[name] = fanInFanOut ? [shape[1], shape[0]] : [...shape];
  }
  return out;
}

/** Without a base: the modules the file itself adapts, with shapes read off its tensors. */
function shapesFromFile(source: AdapterSource): Record<string, number[]> {
  const modules = new Set<string>();
  for (const name of Object.keys(source.tensors)) {
    const m = ADAPTER_SUFFIX.exec(name);
    if (m) modules.add(m[1]);
  }
  const out: Record<string, number[]> = {};
  for (const module of modules) {
    const s = source.shapes;
    if (source.kind === "lora") {
      const a = s[loraAName(module)], b = s[loraBName(module)];
      out[`${module}.weight`] = [b?.[0] ?? 0, a?.[1] ?? 0];
    } else {
      out[`${module}.weight`] = [s[lambdaBName(module)]?.[0] ?? 0, s.vera_A?.[1] ?? 0];
    }
  }
  return out;
}

/**
 * Checks an adapter file against a base model's stored tensor shapes (or, without a base,
 * against itself) and returns the adapter it describes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveAdapter } from "./resolve.ts";
 * const source = {
 *   kind: "lora" as const, projections: "seed" as const, where: "a",
 *   config: { r: 1, alpha: 1, targetModules: ["q"] },
 *   tensors: { "q.lora_A.weight": new Float32Array(2), "q.lora_B.weight": new Float32Array(3) },
 *   shapes: { "q.lora_A.weight": [1, 2], "q.lora_B.weight": [3, 1] },
 * };
 * assert.equal(resolveAdapter(source, { "q.weight": [3, 2] }).adapter.targets.length, 1);
 * assert.throws(() => resolveAdapter(source, { "q.weight": [2, 3] }), /lora_A.weight is \[1, 2\], .* need \[1, 3\]/);
 * ```
 */
export function resolveAdapter(
  source: AdapterSource,
  base?: Readonly<Record<string, readonly number[]>>,
  options: ResolveOptions = {},
): ResolvedAdapter {
  const flip = options.baseLayout !== "graph";
  const { where } = source;
  const fail = (message: string): never => {
    throw new Error(`${where}: ${message}`);
  };
  let adapter: Adapter;
  try {
    adapter = source.kind === "vera"
      ? resolveVera(source, base, flip)
      : resolveLora(source.config as LoraConfig, base ?? shapesFromFile(source), flip);
  } catch (e) {
    const message = (e as Error).message;
    throw new Error(message.startsWith(where) ? message : `${where}: ${message}`);
  }
  const expected = new Map<string, readonly number[]>();
  for (const t of adapter.targets) {
    if (adapter.kind === "vera") {
      expected.set(lambdaBName(t.module), [t.outFeatures]);
      expected.set(lambdaDName(t.module), [adapter.config.r]);
    } else {
      const r = loraRank(adapter.config, t.module);
      expected.set(loraAName(t.module), [r, t.inFeatures]);
      expected.set(loraBName(t.module), [t.outFeatures, r]);
    }
  }
  if (adapter.kind === "vera" && adapter.projections === "stored") {
    expected.set("vera_A", [adapter.config.r, adapter.maxIn]);
    expected.set("vera_B", [adapter.maxOut, adapter.config.r]);
  }
  const tensors: Record<string, Float32Array> = {};
  for (const [name, shape] of expected) {
    const have = source.shapes[name];
    if (have === undefined) fail(`missing tensor ${name} ${shapeText(shape)}`);
    if (have.join() !== shape.join()) {
      fail(
        `tensor ${name} is ${shapeText(have)}, the adapter config and the base need ${
          shapeText(shape)
        }`,
      );
    }
    tensors[name] = source.tensors[name];
  }
  const keep = adapter.config.modulesToSave;
  const savedInBase: string[] = [], savedNew: string[] = [];
  for (const name of Object.keys(source.tensors).sort()) {
    if (expected.has(name)) continue;
    const module = name.slice(0, name.lastIndexOf("."));
    // PEFT wraps a module for modules_to_save when its path ends with an entry.
    if (!keep.some((m) => module.endsWith(m)) || ADAPTER_SUFFIX.test(name)) {
      fail(
        `tensor ${name} is not used by this adapter config (targets: ${
          adapter.targets.map((t) => t.module).join(", ")
        }); refusing a file that is not used completely`,
      );
    }
    const baseShape = base?.[name];
    if (base !== undefined && baseShape === undefined) savedNew.push(name);
    else if (baseShape !== undefined && baseShape.join() !== source.shapes[name].join()) {
      fail(
        `modules_to_save tensor ${name} is ${shapeText(source.shapes[name])}, the base's is ${
          shapeText(baseShape)
        }`,
      );
    } else savedInBase.push(name);
    tensors[name] = source.tensors[name];
  }
  return { adapter, tensors, savedInBase, savedNew };
}

function resolveLora(
  config: LoraConfig,
  base: Readonly<Record<string, readonly number[]>>,
  flip: boolean,
): LoraAdapter {
  const resolved = resolveLoraConfig({ ...config, dropout: 0 });
  const shapes = logicalShapes(base, flip && resolved.fanInFanOut);
  const targets = findTargets(weightsGraph(shapes), resolved);
  return { kind: "lora", config: resolved, targets };
}

function resolveVera(
  source: AdapterSource,
  base: Readonly<Record<string, readonly number[]>> | undefined,
  flip: boolean,
): VeraAdapter {
  const config = resolveVeraConfig({ ...(source.config as VeraConfig), dropout: 0 });
  const shapes = base ?? shapesFromFile(source);
  const targets: Target[] = findTargets(
    weightsGraph(logicalShapes(shapes, flip && config.fanInFanOut)),
    config,
  );
  const widest = {
    in: Math.max(...targets.map((t) => t.inFeatures)),
    out: Math.max(...targets.map((t) => t.outFeatures)),
  };
  if (source.projections === "seed") {
    return {
      kind: "vera",
      config,
      targets,
      maxIn: widest.in,
      maxOut: widest.out,
      projections: "seed",
    };
  }
  const a = source.shapes.vera_A, b = source.shapes.vera_B;
  if (a === undefined || b === undefined) {
    throw new Error(
      "the VeRA adapter stores no vera_A/vera_B (saved with save_projection=False: PEFT's " +
        "projections come from PyTorch's generator, so they cannot be regenerated here)",
    );
  }
  if (a.length !== 2 || a[0] !== config.r || (base !== undefined && a[1] < widest.in)) {
    throw new Error(
      `tensor vera_A is ${shapeText(a)}, the adapter needs [${config.r}, ≥ ${widest.in}]`,
    );
  }
  if (b.length !== 2 || b[1] !== config.r || b[0] < widest.out) {
    throw new Error(
      `tensor vera_B is ${shapeText(b)}, the adapter needs [≥ ${widest.out}, ${config.r}]`,
    );
  }
  return { kind: "vera", config, targets, maxIn: a[1], maxOut: b[0], projections: "stored" };
}
