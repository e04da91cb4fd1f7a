import assert from "node:assert/strict";
import { copy } from "../nn/_copy_dir.ts";
import { loadHfModel, readHfWeights } from "../../io/hf_model.ts";
import { type TensorInput, writeSafetensors } from "../../io/safetensors.ts";
import { fixtureDir } from "../nn/_hf_fixtures.ts";

/** A scratch copy of a fixture, edited by `edit`, then loaded. */
async function loadEdited(
  name: string,
  edit: (dir: string) => Promise<void>,
): Promise<Error | undefined> {
  const dir = await Deno.makeTempDir();
  try {
    await copy(fixtureDir(name), dir);
    await edit(dir);
    await loadHfModel(dir);
    return undefined;
  } catch (e) {
    return e as Error;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function editConfig(dir: string, f: (c: Record<string, unknown>) => void): Promise<void> {
  const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  f(c);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(c));
}

Deno.test("HF directories: F32, BF16 and sharded checkpoints load", async () => {
  const sharded = await readHfWeights(fixtureDir("tiny-llama"));
  assert.equal(new Set([...sharded.values()].map((t) => t.file)).size, 3);
  const bf16 = await readHfWeights(fixtureDir("tiny-qwen2"));
  assert.ok([...bf16.values()].every((t) => t.dtype === "BF16"));
});

Deno.test("HF directories: malformed input is an error naming file and field", async (t) => {
  const cases: [string, string, (dir: string) => Promise<void>, RegExp][] = [
    [
      "config.json not JSON",
      "tiny-gpt2",
      (d) => Deno.writeTextFile(`${d}/config.json`, "{"),
      /config\.json: invalid JSON/,
    ],
    [
      "no model_type",
      "tiny-gpt2",
      (d) => editConfig(d, (c) => delete c.model_type),
      /config\.json: field "model_type" must be a string/,
    ],
    [
      "unknown model_type",
      "tiny-gpt2",
      (d) => editConfig(d, (c) => (c.model_type = "bert")),
      /field "model_type": unsupported model_type "bert"/,
    ],
    [
      "bad n_head",
      "tiny-gpt2",
      (d) => editConfig(d, (c) => (c.n_head = 5)),
      /field "n_head" 5 does not divide n_embd 32/,
    ],
    [
      "unknown activation",
      "tiny-gpt2",
      (d) => editConfig(d, (c) => (c.activation_function = "relu")),
      /field "activation_function" "relu" is not supported/,
    ],
    [
      "rope scaling",
      "tiny-llama",
      (d) =>
        editConfig(
          d,
          (c) => (c.rope_parameters = { rope_type: "yarn", rope_theta: 1e4, factor: 4 }),
        ),
      /field "rope_parameters\.rope_type" "yarn" is not supported/,
    ],
    [
      "old-style rope_scaling",
      "tiny-llama",
      (d) => editConfig(d, (c) => (c.rope_scaling = { type: "linear", factor: 2 })),
      /field "rope_scaling" "linear" is not supported/,
    ],
    [
      "sliding window",
      "tiny-qwen2",
      (d) => editConfig(d, (c) => (c.use_sliding_window = true)),
      /field "use_sliding_window" true is not supported/,
    ],
    [
      "hidden_act",
      "tiny-llama",
      (d) => editConfig(d, (c) => (c.hidden_act = "gelu")),
      /field "hidden_act" "gelu" is not supported/,
    ],
    [
      "wrong shape",
      "tiny-llama",
      (d) => editConfig(d, (c) => (c.intermediate_size = 65)),
      /tensor "model\.layers\.0\.mlp\.down_proj\.weight" has shape \[32,64\], config\.json implies \[32,65\]/,
    ],
    [
      "gpt2 wrong shape (stored [in,out])",
      "tiny-gpt2",
      (d) => editConfig(d, (c) => (c.n_inner = 100)),
      /model\.safetensors: tensor "transformer\.h\.0\.mlp\.c_fc\.(weight|bias)" has shape \[(32,)?128\], config\.json implies \[(32,)?100\]/,
    ],
    [
      "index.json not JSON",
      "tiny-llama",
      (d) => Deno.writeTextFile(`${d}/model.safetensors.index.json`, "[]"),
      /model\.safetensors\.index\.json: expected a JSON object/,
    ],
    [
      "index without weight_map",
      "tiny-llama",
      (d) => Deno.writeTextFile(`${d}/model.safetensors.index.json`, "{}"),
      /field "weight_map" must be an object/,
    ],
    [
      "missing shard",
      "tiny-llama",
      (d) => Deno.remove(`${d}/model-00002-of-00003.safetensors`),
      /shard "model-00002-of-00003\.safetensors" \(of tensor "model\.layers\.0\..*"\) is missing/,
    ],
    ["shard path outside the directory", "tiny-llama", async (d) => {
      const idx = JSON.parse(await Deno.readTextFile(`${d}/model.safetensors.index.json`));
      idx.weight_map["lm_head.weight"] = "../x.safetensors";
      await Deno.writeTextFile(`${d}/model.safetensors.index.json`, JSON.stringify(idx));
    }, /entry "lm_head\.weight" must be a shard file name/],
    ["tensor missing from its shard", "tiny-llama", async (d) => {
      const idx = JSON.parse(await Deno.readTextFile(`${d}/model.safetensors.index.json`));
      idx.weight_map["model.extra.weight"] = "model-00001-of-00003.safetensors";
      await Deno.writeTextFile(`${d}/model.safetensors.index.json`, JSON.stringify(idx));
    }, /tensor "model\.extra\.weight" listed in .* is not in the shard/],
    [
      "missing tensor",
      "tiny-gpt2",
      (d) =>
        writeSafetensors(`${d}/model.safetensors`, {
          x: { dtype: "F32", shape: [1], data: new Float32Array(1) },
        }),
      /checkpoint has no tensor "transformer\./,
    ],
    [
      "integer weights",
      "tiny-gpt2",
      (d) =>
        writeSafetensors(`${d}/model.safetensors`, {
          "transformer.wte.weight": { dtype: "I32", shape: [1], data: new Int32Array(1) },
        }),
      /tensor "transformer\.wte\.weight" is I32; weights must be F32, F16 or BF16/,
    ],
    [
      "no weights",
      "tiny-gpt2",
      (d) => Deno.remove(`${d}/model.safetensors`),
      /neither model\.safetensors nor model\.safetensors\.index\.json found/,
    ],
    [
      "no tokenizer",
      "tiny-gpt2",
      (d) => Deno.remove(`${d}/tokenizer.json`),
      /cannot read .*tokenizer\.json/,
    ],
  ];
  for (const [what, fixture, edit, pattern] of cases) {
    await t.step(what, async () => {
      const e = await loadEdited(fixture, edit);
      assert.ok(e, "expected an error");
      assert.match(e.message, pattern);
    });
  }
});

Deno.test("HF directories: mistral within its sliding window caps the positions", async () => {
  const e = await loadEdited("tiny-llama", (d) =>
    editConfig(d, (c) => {
      c.model_type = "mistral";
      c.sliding_window = 16;
    }));
  assert.equal(e, undefined);
});

Deno.test("HF directories: F16 weights and base-model names without the prefix load", async (t) => {
  const src = await loadHfModel(fixtureDir("tiny-gpt2"));
  const stored = await readHfWeights(fixtureDir("tiny-gpt2"));
  await t.step("F16, names saved by GPT2Model (no transformer. prefix)", async () => {
    const dir = await Deno.makeTempDir();
    try {
      await copy(fixtureDir("tiny-gpt2"), dir);
      const tensors: Record<string, TensorInput> = {};
      for (const [name, t] of stored) {
        tensors[name.replace(/^transformer\./, "")] = {
          dtype: "F16",
          shape: t.shape,
          data: t.data,
        };
      }
      await writeSafetensors(`${dir}/model.safetensors`, tensors);
      const m = await loadHfModel(dir);
      assert.equal(m.dtypes["transformer.wte.weight"], "F16");
      const w = m.weights["transformer.h.0.attn.c_attn.weight"];
      const ref = src.weights["transformer.h.0.attn.c_attn.weight"];
      // Same layout (transposed like the F32 file), values within F16 rounding.
      assert.ok(ref.every((v, i) => Math.abs(v - w[i]) <= Math.abs(v) * 1e-3 + 1e-4));
      assert.ok(!("wte.weight" in m.weights));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
