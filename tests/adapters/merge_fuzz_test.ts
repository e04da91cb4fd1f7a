// Fuzzing merges over adapter configs and tensor sets: every merge either equals a float64
// reference of PEFT's formula or is refused with one `error:` line — never silently different.
import { equal, match, ok } from "node:assert/strict";
import fc from "fast-check";
import { runCli } from "../cli/_capture.ts";
import { readSafetensors } from "../../io/safetensors.ts";
import { matmul64, maxRelError, transpose64, writeBase, writePeftDir } from "./_peft_files.ts";

const IN = 5, OUT = 3, LAYERS = 2;
const MODULES = ["q_proj", "v_proj"];
const modulePath = (layer: number, m: string) => `model.layers.${layer}.self_attn.${m}`;

interface Case {
  kind: "lora" | "vera";
  r: number;
  alpha: number;
  rslora: boolean;
  rankPattern: number | null; // a rank for layer 1's q_proj
  alphaPattern: number | null; // an alpha for every v_proj
  fanInFanOut: boolean;
  targets: string[];
  layers: number[] | null;
  saveScore: boolean;
  mutation: "none" | "shape" | "extra" | "missing" | "transpose-base";
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  kind: fc.constantFrom("lora" as const, "vera" as const),
  r: fc.integer({ min: 1, max: 3 }),
  alpha: fc.integer({ min: -4, max: 8 }).filter((a) => a !== 0),
  rslora: fc.boolean(),
  rankPattern: fc.option(fc.integer({ min: 1, max: 4 })),
  alphaPattern: fc.option(fc.integer({ min: 1, max: 6 })),
  fanInFanOut: fc.boolean(),
  targets: fc.subarray(MODULES, { minLength: 1 }),
  layers: fc.option(fc.subarray([0, 1], { minLength: 1 })),
  saveScore: fc.boolean(),
  mutation: fc.constantFrom("none", "none", "shape", "extra", "missing", "transpose-base"),
});

function selected(c: Case): string[] {
  const out: string[] = [];
  for (let layer = 0; layer < LAYERS; layer++) {
    if (c.layers !== null && !c.layers.includes(layer)) continue;
    for (const m of c.targets) out.push(modulePath(layer, m));
  }
  return out;
}

function rankOf(c: Case, module: string): number {
  if (c.kind === "lora" && c.rankPattern !== null && module === modulePath(1, "q_proj")) {
    return c.rankPattern;
  }
  return c.r;
}

function scaleOf(c: Case, module: string): number {
  const alpha = c.alphaPattern !== null && module.endsWith("v_proj") ? c.alphaPattern : c.alpha;
  const r = rankOf(c, module);
  return c.rslora ? alpha / Math.sqrt(r) : alpha / r;
}

Deno.test("merge fuzz: equal to PEFT's formula in float64, or one clean error", async () => {
  const dir = await Deno.makeTempDir();
  let run = 0;
  const outcomes = { merged: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) => {
      const here = `${dir}/${run++}`;
      await Deno.mkdir(here);
      const stored = (shape: [number, number]) => (c.fanInFanOut ? [shape[1], shape[0]] : shape);
      const baseShapes: Record<string, number[]> = { "score.weight": [2, IN] };
      for (let l = 0; l < LAYERS; l++) {
        for (const m of MODULES) baseShapes[`${modulePath(l, m)}.weight`] = stored([OUT, IN]);
      }
      const modules = selected(c);
      if (c.mutation === "transpose-base") {
        // The base stores a targeted weight the other way round (not square: detectable).
        baseShapes[`${modules[0]}.weight`] = stored([IN, OUT]);
      }
      const base = await writeBase(`${here}/base.safetensors`, baseShapes, run);
      const tensors: Record<string, { shape: number[] }> = {};
      for (const m of modules) {
        if (c.kind === "lora") {
          tensors[`${m}.lora_A.weight`] = { shape: [rankOf(c, m), IN] };
          tensors[`${m}.lora_B.weight`] = { shape: [OUT, rankOf(c, m)] };
        } else {
          tensors[`${m}.vera_lambda_b`] = { shape: [OUT] };
          tensors[`${m}.vera_lambda_d`] = { shape: [c.r] };
        }
      }
      if (c.kind === "vera") {
        tensors.vera_A = { shape: [c.r, IN] };
        tensors.vera_B = { shape: [OUT, c.r] };
      }
      if (c.saveScore) tensors["score.weight"] = { shape: [2, IN] };
      const first = Object.keys(tensors)[0];
      if (c.mutation === "shape") {
        tensors[first] = { shape: [...tensors[first].shape].reverse().concat([1]) };
      }
      if (c.mutation === "extra") {
        tensors["model.layers.0.self_attn.k_proj.lora_A.weight"] = { shape: [c.r, IN] };
      }
      if (c.mutation === "missing") delete tensors[first];
      const common = {
        r: c.r,
        target_modules: c.targets,
        bias: "none",
        fan_in_fan_out: c.fanInFanOut,
        ...(c.layers !== null ? { layers_to_transform: c.layers, layers_pattern: "layers" } : {}),
        ...(c.saveScore ? { modules_to_save: ["score"] } : {}),
      };
      const config = c.kind === "lora"
        ? {
          ...common,
          peft_type: "LORA",
          lora_alpha: c.alpha,
          use_rslora: c.rslora,
          rank_pattern: c.rankPattern !== null ? { [modulePath(1, "q_proj")]: c.rankPattern } : {},
          alpha_pattern: c.alphaPattern !== null ? { v_proj: c.alphaPattern } : {},
        }
        : { ...common, peft_type: "VERA", projection_prng_key: 0 };
      const values = await writePeftDir(`${here}/adapter`, config, tensors, run);
      const out = `${here}/merged.safetensors`;
      const result = await runCli([
        ...["merge", "--backend", "cpu", "--base", `${here}/base.safetensors`],
        ...["--adapter", `${here}/adapter`, "--out", out],
      ]);
      if (c.mutation !== "none") {
        equal(result.code, 1, `a ${c.mutation} adapter was merged: ${JSON.stringify(c)}`);
        equal(result.err.length, 1);
        match(result.err[0], /^error: /);
        outcomes.refused++;
        return;
      }
      equal(result.code, 0, `${JSON.stringify(c)}: ${result.err.join(" | ")}`);
      outcomes.merged++;
      const merged = await readSafetensors(out);
      for (const m of modules) {
        let delta: Float64Array;
        if (c.kind === "lora") {
          const r = rankOf(c, m);
          delta = matmul64(values[`${m}.lora_B.weight`], values[`${m}.lora_A.weight`], OUT, r, IN)
            .map((v) => v * scaleOf(c, m));
        } else {
          // ΔW = (λb[:,None] ⊙ B[:OUT]) @ (λd[:,None] ⊙ A[:, :IN])
          const lb = values[`${m}.vera_lambda_b`], ld = values[`${m}.vera_lambda_d`];
          const b = Float64Array.from(values.vera_B, (v, i) => v * lb[Math.floor(i / c.r)]);
          const a = Float64Array.from(values.vera_A, (v, i) => v * ld[Math.floor(i / IN)]);
          delta = matmul64(b, a, OUT, c.r, IN);
        }
        const storedDelta = c.fanInFanOut ? transpose64(delta, OUT, IN) : delta;
        const want = Float64Array.from(base[`${m}.weight`], (v, i) => v + storedDelta[i]);
        const got = merged.tensors.get(`${m}.weight`)!.data as Float32Array;
        ok(maxRelError(got, want) < 1e-5, `${JSON.stringify(c)}: ${m}`);
      }
      for (const [name, w] of Object.entries(base)) {
        if (modules.some((m) => `${m}.weight` === name)) continue;
        const want = c.saveScore && name === "score.weight" ? values["score.weight"] : w;
        ok(
          maxRelError(merged.tensors.get(name)!.data as Float32Array, want) === 0,
          `${name} copied`,
        );
      }
    }),
    { numRuns: 40, seed: 20261204 },
  );
  ok(outcomes.merged > 5 && outcomes.refused > 5, JSON.stringify(outcomes));
  await Deno.remove(dir, { recursive: true });
});
