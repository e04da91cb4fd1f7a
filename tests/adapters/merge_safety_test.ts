// Merges never write a wrong weight: every PEFT option that changes the weights is applied
// exactly or refused by name, every shape is checked exactly, and an adapter file is used
// completely or refused. Each step is a regression test of an input that used to merge silently.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { runCli } from "../cli/_capture.ts";
import { readSafetensors } from "../../io/safetensors.ts";
import {
  matmul64,
  maxRelError,
  randomValues,
  transpose64,
  writeBase,
  writePeftDir,
} from "./_peft_files.ts";

const LLAMA: Record<string, number[]> = {
  "model.embed_tokens.weight": [10, 6],
  "model.layers.0.self_attn.q_proj.weight": [4, 6],
  "model.layers.0.self_attn.v_proj.weight": [4, 6],
  "model.layers.1.self_attn.q_proj.weight": [4, 6],
  "model.layers.1.self_attn.v_proj.weight": [4, 6],
  "model.norm.weight": [6],
};

const LORA = { peft_type: "LORA", bias: "none", lora_dropout: 0 };

async function merge(dir: string, base: string, adapter: string) {
  const out = `${dir}/merged-${crypto.randomUUID().slice(0, 6)}.safetensors`;
  const run = await runCli([
    "merge",
    "--backend",
    "cpu",
    "--base",
    base,
    "--adapter",
    adapter,
    "--out",
    out,
  ]);
  return { run, out };
}

async function refused(dir: string, base: string, adapter: string, expected: RegExp) {
  const { run, out } = await merge(dir, base, adapter);
  equal(run.code, 1, `merged but should not have: ${run.out.join("\n")}`);
  equal(run.err.length, 1, run.err.join("\n"));
  match(run.err[0], /^error: /);
  match(run.err[0], expected);
  ok(!(await Deno.stat(out).then(() => true, () => false)), "nothing written");
}

/** The merged weights PEFT's formula gives, in float64: W + scale·(B A), transposed when stored [in, out]. */
function loraReference(
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  shape: { out: number; in: number; r: number; scale: number; fanInFanOut?: boolean },
): Float64Array {
  const delta = matmul64(b, a, shape.out, shape.r, shape.in);
  const stored = shape.fanInFanOut ? transpose64(delta, shape.out, shape.in) : delta;
  return Float64Array.from(w, (v, i) => v + shape.scale * stored[i]);
}

Deno.test("LoRA merges honour use_rslora, rank_pattern, alpha_pattern exactly", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  const w = await writeBase(base, LLAMA);
  const q1 = "model.layers.1.self_attn.q_proj";
  for (
    const [name, extra, rankOf, alphaOf] of [
      ["rslora", { use_rslora: true }, () => 2, () => 3],
      ["rank_pattern", { rank_pattern: { [q1]: 1 } }, (m: string) => m === q1 ? 1 : 2, () => 3],
      [
        "alpha_pattern",
        { alpha_pattern: { "v_proj": 5 } },
        () => 2,
        (m: string) => m.endsWith("v_proj") ? 5 : 3,
      ],
      [
        "all three",
        {
          use_rslora: true,
          rank_pattern: { "layers.1.self_attn.v_proj": 3 },
          alpha_pattern: { q_proj: -2 },
        },
        (m: string) => m === "model.layers.1.self_attn.v_proj" ? 3 : 2,
        (m: string) => m.endsWith("q_proj") ? -2 : 3,
      ],
    ] as const
  ) {
    const modules = Object.keys(LLAMA).filter((k) => k.includes("_proj")).map((k) =>
      k.slice(0, -7)
    );
    const tensors: Record<string, { shape: number[] }> = {};
    for (const m of modules) {
      tensors[`${m}.lora_A.weight`] = { shape: [rankOf(m), 6] };
      tensors[`${m}.lora_B.weight`] = { shape: [4, rankOf(m)] };
    }
    const adapter = `${dir}/${name.replace(/ /g, "_")}`;
    const values = await writePeftDir(adapter, {
      ...LORA,
      r: 2,
      lora_alpha: 3,
      target_modules: ["q_proj", "v_proj"],
      ...extra,
    }, tensors);
    const { run, out } = await merge(dir, base, adapter);
    equal(run.code, 0, run.err.join("\n"));
    const merged = await readSafetensors(out);
    for (const m of modules) {
      const r = rankOf(m);
      const scale = "use_rslora" in extra ? alphaOf(m) / Math.sqrt(r) : alphaOf(m) / r;
      const want = loraReference(
        w[`${m}.weight`],
        values[`${m}.lora_A.weight`],
        values[`${m}.lora_B.weight`],
        {
          out: 4,
          in: 6,
          r,
          scale,
        },
      );
      const got = merged.tensors.get(`${m}.weight`)!.data as Float32Array;
      ok(maxRelError(got, want) < 1e-6, `${name}: ${m}`);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fan_in_fan_out: weights stored [in, out] get ΔWᵀ, square ones included", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  const shapes = {
    "transformer.h.0.attn.c_attn.weight": [6, 9],
    "transformer.h.0.attn.c_proj.weight": [6, 6],
    "transformer.h.0.attn.c_proj.bias": [6],
  };
  const w = await writeBase(base, shapes);
  const adapter = `${dir}/a`;
  const values = await writePeftDir(adapter, {
    ...LORA,
    r: 2,
    lora_alpha: 4,
    fan_in_fan_out: true,
    target_modules: ["c_attn", "c_proj"],
  }, {
    "transformer.h.0.attn.c_attn.lora_A.weight": { shape: [2, 6] },
    "transformer.h.0.attn.c_attn.lora_B.weight": { shape: [9, 2] },
    "transformer.h.0.attn.c_proj.lora_A.weight": { shape: [2, 6] },
    "transformer.h.0.attn.c_proj.lora_B.weight": { shape: [6, 2] },
  });
  const { run, out } = await merge(dir, base, adapter);
  equal(run.code, 0, run.err.join("\n"));
  const merged = await readSafetensors(out);
  for (
    const [m, outF] of [["transformer.h.0.attn.c_attn", 9], [
      "transformer.h.0.attn.c_proj",
      6,
    ]] as const
  ) {
    const want = loraReference(
      w[`${m}.weight`],
      values[`${m}.lora_A.weight`],
      values[`${m}.lora_B.weight`],
      {
        out: outF,
        in: 6,
        r: 2,
        scale: 2,
        fanInFanOut: true,
      },
    );
    ok(maxRelError(merged.tensors.get(`${m}.weight`)!.data as Float32Array, want) < 1e-6, m);
  }
  deepEqual(
    merged.tensors.get("transformer.h.0.attn.c_proj.bias")!.data,
    w["transformer.h.0.attn.c_proj.bias"],
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("options that change weights and are not implemented are refused by name", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  await writeBase(base, LLAMA);
  const q = "model.layers.0.self_attn.q_proj";
  const loraTensors = {
    [`${q}.lora_A.weight`]: { shape: [2, 6] },
    [`${q}.lora_B.weight`]: { shape: [4, 2] },
  };
  const veraTensors = {
    [`${q}.vera_lambda_b`]: { shape: [4] },
    [`${q}.vera_lambda_d`]: { shape: [2] },
    vera_A: { shape: [2, 6] },
    vera_B: { shape: [4, 2] },
  };
  const lora = { ...LORA, r: 2, lora_alpha: 2, target_modules: [q] };
  const vera = {
    peft_type: "VERA",
    r: 2,
    target_modules: [q],
    projection_prng_key: 0,
    bias: "none",
  };
  const cases: [string, Record<string, unknown>, Record<string, { shape: number[] }>, RegExp][] = [
    ["dora", { ...lora, use_dora: true }, {
      ...loraTensors,
      [`${q}.lora_magnitude_vector`]: { shape: [4] },
    }, /"use_dora" is set \(true\): DoRA's magnitude vectors is not supported/],
    ["lora bias", { ...lora, lora_bias: true }, loraTensors, /"lora_bias" is set/],
    ["bias all", { ...lora, bias: "all" }, loraTensors, /"bias" "all" is not supported/],
    [
      "vera bias",
      { ...vera, bias: "vera_only" },
      veraTensors,
      /"bias" "vera_only" is not supported/,
    ],
    [
      "layer replication",
      { ...lora, layer_replication: [[0, 2]] },
      loraTensors,
      /"layer_replication" is set/,
    ],
    [
      "unknown option",
      { ...lora, use_magic: true },
      loraTensors,
      /"use_magic" is an option this version does not know/,
    ],
    [
      "infinite alpha",
      { ...lora, lora_alpha: 1e999 },
      loraTensors,
      /"lora_alpha" must be a finite number, got null/,
    ],
    [
      "string alpha",
      { ...lora, lora_alpha: "8" },
      loraTensors,
      /"lora_alpha" must be a finite number, got "8"/,
    ],
    [
      "null config",
      null as unknown as Record<string, unknown>,
      loraTensors,
      /adapter_config\.json: must be a JSON object, got null/,
    ],
    [
      "no targets",
      { ...lora, target_modules: null },
      loraTensors,
      /"target_modules" must name at least one module/,
    ],
    [
      "regex + layers",
      { ...lora, target_modules: ".*q_proj", layers_to_transform: [0] },
      loraTensors,
      /"layers_to_transform" cannot be used when target_modules is a regex/,
    ],
    ["vera without projections", { ...vera, save_projection: false }, {
      [`${q}.vera_lambda_b`]: { shape: [4] },
      [`${q}.vera_lambda_d`]: { shape: [2] },
    }, /stores no vera_A\/vera_B/],
  ];
  for (const [name, config, tensors, expected] of cases) {
    const adapter = `${dir}/${name.replace(/ /g, "_")}`;
    await writePeftDir(adapter, config, tensors);
    if (name === "infinite alpha") {
      // JSON.stringify writes Infinity as null; write the overflowing literal PEFT files can hold.
      await Deno.writeTextFile(
        `${adapter}/adapter_config.json`,
        JSON.stringify(config).replace("null", "1e999"),
      );
      await refused(
        dir,
        base,
        adapter,
        /"lora_alpha" must be a finite number, got Infinity|got null/,
      );
      continue;
    }
    await refused(dir, base, adapter, expected);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("every shape is checked exactly, not by element count", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  await writeBase(base, {
    "model.layers.0.mlp.up_proj.weight": [32, 4],
    "model.layers.0.mlp.down_proj.weight": [4, 32],
  });
  const up = "model.layers.0.mlp.up_proj", down = "model.layers.0.mlp.down_proj";
  const lora = { ...LORA, r: 4, lora_alpha: 4, target_modules: ["up_proj"] };
  await writePeftDir(`${dir}/a_transposed`, lora, {
    [`${up}.lora_A.weight`]: { shape: [4, 4] },
    [`${up}.lora_B.weight`]: { shape: [32, 4] },
  });
  // lora_A [r, in] = [4, 4] fits; now store lora_A of down_proj as [32, 4] instead of [4, 32].
  await writePeftDir(`${dir}/a_swapped`, { ...lora, target_modules: ["down_proj"] }, {
    [`${down}.lora_A.weight`]: { shape: [32, 4] },
    [`${down}.lora_B.weight`]: { shape: [4, 4] },
  });
  await refused(dir, base, `${dir}/a_swapped`, /lora_A\.weight is \[32, 4\], .* need \[4, 32\]/);
  const vera = { peft_type: "VERA", r: 4, target_modules: ["up_proj"], bias: "none" };
  await writePeftDir(`${dir}/d_square`, vera, {
    [`${up}.vera_lambda_b`]: { shape: [32] },
    [`${up}.vera_lambda_d`]: { shape: [4, 4] },
    vera_A: { shape: [4, 4] },
    vera_B: { shape: [32, 4] },
  });
  await refused(dir, base, `${dir}/d_square`, /vera_lambda_d is \[4, 4\], .* need \[4\]/);
  // A base whose weight is stored transposed: the adapter's lora_B no longer fits it.
  const flipped = `${dir}/flipped.safetensors`;
  await writeBase(flipped, { [`${up}.weight`]: [4, 32] });
  await refused(
    dir,
    flipped,
    `${dir}/a_transposed`,
    /lora_A\.weight is \[4, 4\], .* need \[4, 32\]/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an adapter file is used completely or refused, naming the first unused tensor", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  await writeBase(base, LLAMA);
  const lora = { ...LORA, r: 2, lora_alpha: 2, target_modules: ["q_proj"] };
  const pair = (m: string) => ({
    [`${m}.lora_A.weight`]: { shape: [2, 6] },
    [`${m}.lora_B.weight`]: { shape: [4, 2] },
  });
  const q0 = "model.layers.0.self_attn.q_proj", q1 = "model.layers.1.self_attn.q_proj";
  const cases: [string, Record<string, unknown>, Record<string, { shape: number[] }>, RegExp][] = [
    [
      "other layer",
      lora,
      { ...pair(q0), ...pair(q1), ...pair("model.layers.2.self_attn.q_proj") },
      /tensor model\.layers\.2\.self_attn\.q_proj\.lora_A\.weight is not used/,
    ],
    [
      "other module",
      lora,
      { ...pair(q0), ...pair(q1), ...pair("model.layers.0.self_attn.k_proj") },
      /model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight is not used/,
    ],
    [
      "extra name",
      lora,
      { ...pair(q0), ...pair(q1), "model.layers.0.foo": { shape: [3] } },
      /tensor model\.layers\.0\.foo is not used/,
    ],
    [
      "excluded layer",
      { ...lora, layers_to_transform: [0] },
      { ...pair(q0), ...pair(q1) },
      /model\.layers\.1\.self_attn\.q_proj\.lora_A\.weight is not used/,
    ],
  ];
  for (const [name, config, tensors, expected] of cases) {
    const adapter = `${dir}/${name.replace(/ /g, "_")}`;
    await writePeftDir(adapter, config, tensors);
    await refused(dir, base, adapter, expected);
  }
  // A 2-layer adapter on a 1-layer base.
  const small = `${dir}/small.safetensors`;
  await writeBase(small, { [`${q0}.weight`]: [4, 6] });
  await writePeftDir(`${dir}/two_layers`, lora, { ...pair(q0), ...pair(q1) });
  await refused(
    dir,
    small,
    `${dir}/two_layers`,
    /model\.layers\.1\.self_attn\.q_proj\.lora_A\.weight is not used/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("export validates exactly as merge does, in every format", async () => {
  const dir = await Deno.makeTempDir();
  const q0 = "model.layers.0.self_attn.q_proj";
  const lora = { ...LORA, r: 2, lora_alpha: 2, target_modules: ["q_proj"] };
  const broken: [string, Record<string, unknown>, Record<string, { shape: number[] }>, RegExp][] = [
    ["swapped A", lora, {
      [`${q0}.lora_A.weight`]: { shape: [6, 2] },
      [`${q0}.lora_B.weight`]: { shape: [4, 2] },
    }, /lora_A\.weight is \[6, 2\]/],
    ["unused", lora, {
      [`${q0}.lora_A.weight`]: { shape: [2, 6] },
      [`${q0}.lora_B.weight`]: { shape: [4, 2] },
      "model.x.lora_A.weight": { shape: [2, 6] },
    }, /not used|missing tensor/],
    ["missing B", lora, { [`${q0}.lora_A.weight`]: { shape: [2, 6] } }, /missing tensor .*lora_B/],
    ["dora", { ...lora, use_dora: true }, {
      [`${q0}.lora_A.weight`]: { shape: [2, 6] },
      [`${q0}.lora_B.weight`]: { shape: [4, 2] },
    }, /use_dora/],
    ["vera d", { peft_type: "VERA", r: 2, target_modules: ["q_proj"] }, {
      [`${q0}.vera_lambda_b`]: { shape: [4] },
      [`${q0}.vera_lambda_d`]: { shape: [2, 2] },
      vera_A: { shape: [2, 6] },
      vera_B: { shape: [4, 2] },
    }, /vera_lambda_d is \[2, 2\]/],
  ];
  for (const [name, config, tensors, expected] of broken) {
    const adapter = `${dir}/${name.replace(/ /g, "_")}`;
    await writePeftDir(adapter, config, tensors);
    for (
      const [format, out] of [["peft", `${dir}/o_${name}`], [
        "compact",
        `${dir}/o_${name}.safetensors`,
      ], ["zip", `${dir}/o_${name}.zip`]]
    ) {
      const run = await runCli([
        "export",
        "--adapter",
        adapter,
        "--format",
        format,
        "--out",
        out.replace(/ /g, "_"),
      ]);
      equal(run.code, 1, `${name} as ${format} was exported`);
      match(run.err[0], expected, `${name} as ${format}`);
      ok(!(await Deno.stat(out.replace(/ /g, "_")).then(() => true, () => false)));
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("modules_to_save tensors are always carried into the merged model", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/base.safetensors`;
  const w = await writeBase(base, { ...LLAMA, "lm_head.weight": [10, 6] });
  const q0 = "model.layers.0.self_attn.q_proj";
  const score = randomValues(12, 3);
  await writePeftDir(`${dir}/cls`, {
    ...LORA,
    r: 2,
    lora_alpha: 2,
    target_modules: [q0],
    modules_to_save: ["score"],
  }, {
    [`${q0}.lora_A.weight`]: { shape: [2, 6] },
    [`${q0}.lora_B.weight`]: { shape: [4, 2] },
    "score.weight": { shape: [2, 6], data: score },
  });
  const { run, out } = await merge(dir, base, `${dir}/cls`);
  equal(run.code, 0, run.err.join("\n"));
  match(run.out[0], /replaced 0, added 1,/);
  const merged = await readSafetensors(out);
  deepEqual(merged.tensors.get("score.weight")?.shape, [2, 6]);
  deepEqual(merged.tensors.get("score.weight")?.data, score);
  deepEqual(merged.tensors.get("lm_head.weight")?.data, w["lm_head.weight"]);
  // A saved tensor the base has, with another shape, is refused.
  await writePeftDir(`${dir}/bad_head`, {
    ...LORA,
    r: 2,
    lora_alpha: 2,
    target_modules: [q0],
    modules_to_save: ["lm_head"],
  }, {
    [`${q0}.lora_A.weight`]: { shape: [2, 6] },
    [`${q0}.lora_B.weight`]: { shape: [4, 2] },
    "lm_head.weight": { shape: [6, 10] },
  });
  await refused(
    dir,
    base,
    `${dir}/bad_head`,
    /modules_to_save tensor lm_head\.weight is \[6, 10\], the base's is \[10, 6\]/,
  );
  await Deno.remove(dir, { recursive: true });
});
