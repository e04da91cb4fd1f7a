import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  CHECKPOINT_METADATA_KEY,
  decodeCheckpoint,
  encodeCheckpoint,
  GPT_METADATA_KEY,
  loadBaseModel,
  loadCheckpoint,
  saveBaseModel,
  saveCheckpoint,
} from "../../train/checkpoint.ts";
import { encodeSafetensors, writeSafetensors } from "../../io/safetensors.ts";
import { gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";

const SAMPLE = {
  step: 12,
  params: {
    "classifier.weight": new Float32Array([1.5, -2, 0.25, NaN]),
    "optim.exp_avg.classifier.weight": new Float32Array([0, 1e-30, -0, 3]),
  },
  shapes: { "classifier.weight": [2, 2] },
  data: { epoch: 1, index: 3, seed: 7 },
  rng: { seed: 7 },
  config: { method: "vera", targets: ["q_proj", "v_proj"] },
};

async function tempFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".tmp")) names.push(e.name);
  return names;
}

Deno.test("checkpoint", async (t) => {
  const dir = await Deno.makeTempDir();

  await t.step("round-trips params (bit for bit), shapes, step, data, RNG and config", async () => {
    const path = `${dir}/ckpt.safetensors`;
    await saveCheckpoint(path, SAMPLE);
    const back = await loadCheckpoint(path);
    equal(back.step, 12);
    for (const [name, v] of Object.entries(SAMPLE.params)) {
      deepEqual(new Uint32Array(back.params[name].buffer), new Uint32Array(v.buffer), name);
    }
    deepEqual(back.shapes, {
      "classifier.weight": [2, 2],
      "optim.exp_avg.classifier.weight": [4],
    });
    deepEqual(back.data, SAMPLE.data);
    deepEqual(back.rng, SAMPLE.rng);
    deepEqual(back.config, SAMPLE.config);
    deepEqual(await tempFiles(dir), [], "no temporary file is left");
  });

  await t.step("bad files and bad checkpoints are clear errors", async () => {
    await rejects(loadCheckpoint(`${dir}/missing.safetensors`), /cannot read checkpoint .*missing/);
    const plain = `${dir}/plain.safetensors`;
    await Deno.writeFile(plain, encodeSafetensors({}));
    await rejects(loadCheckpoint(plain), /plain.safetensors: not a wgrad checkpoint/);
    const future = encodeSafetensors({}, {
      [CHECKPOINT_METADATA_KEY]: JSON.stringify({ format: "wgrad-checkpoint/9", step: 1 }),
    });
    throws(() => decodeCheckpoint(future), /unsupported checkpoint format "wgrad-checkpoint\/9"/);
    throws(() => encodeCheckpoint({ step: -1, params: {} }), /step must be an integer ≥ 0/);
    throws(
      () => encodeCheckpoint({ step: 1, params: { w: [1] as unknown as Float32Array } }),
      /"w" must be a Float32Array/,
    );
  });

  await t.step("a failed rename leaves no partial file and no temporary file", async () => {
    const blocked = `${dir}/blocked.safetensors`;
    await Deno.mkdir(`${blocked}/inside`, { recursive: true });
    await rejects(saveCheckpoint(blocked, SAMPLE));
    ok((await Deno.stat(blocked)).isDirectory, "the target is untouched");
    deepEqual(await tempFiles(dir), []);
  });

  await t.step("a process killed mid-write leaves the previous checkpoint readable", async () => {
    const path = `${dir}/killed.safetensors`;
    const n = 32 * 1024 * 1024; // 128 MiB: the kill lands while the new file is being written
    await saveCheckpoint(path, { step: 1, params: { w: new Float32Array(n).fill(1) } });
    const script = `${dir}/writer.ts`;
    await Deno.writeTextFile(
      script,
      `import { saveCheckpoint } from ${
        JSON.stringify(import.meta.resolve("../../train/checkpoint.ts"))
      };\n` +
        `await saveCheckpoint(Deno.args[0], { step: 2, params: { w: new Float32Array(${n}).fill(2) } });\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "-A", script, path],
      cwd: dir,
      stdout: "null",
      stderr: "null",
    }).spawn();
    let seen = false;
    for (let i = 0; i < 20_000 && !seen; i++) {
      for (const name of await tempFiles(dir)) {
        seen ||= name.startsWith(".killed.safetensors.") &&
          (await Deno.stat(`${dir}/${name}`).catch(() => ({ size: 0 }))).size > 0;
      }
      if (!seen) await new Promise((r) => setTimeout(r, 1));
    }
    child.kill("SIGKILL");
    const status = await child.status;
    ok(seen, "the child started writing");
    ok(!status.success, "the child was killed before it finished");
    const back = await loadCheckpoint(path);
    equal(back.step, 1);
    ok(back.params.w.every((v) => v === 1), "the old values, complete");
    equal(back.params.w.length, n);
  });

  await t.step("base model files carry their GPT config; bad ones are clear errors", async () => {
    const config = {
      vocabSize: 16,
      maxSeqLen: 4,
      dModel: 4,
      heads: 2,
      layers: 1,
      head: "lm" as const,
    };
    const graph = gptGraph(config, { batch: 1, seqLen: 4 });
    const params = initParams(graph, { seed: 2 });
    const path = `${dir}/base.safetensors`;
    await saveBaseModel(path, config, graph, params);
    const base = await loadBaseModel(path);
    deepEqual(base.config, config);
    deepEqual(base.weights, params);
    const bad = `${dir}/bad.safetensors`;
    await writeSafetensors(bad, {}, {
      [GPT_METADATA_KEY]: JSON.stringify({ ...config, heads: 3 }),
    });
    await rejects(
      loadBaseModel(bad),
      /bad "wgrad.gpt" metadata: gpt: 3 heads do not divide dModel 4/,
    );
    await writeSafetensors(bad, {}, { [GPT_METADATA_KEY]: "{" });
    await rejects(loadBaseModel(bad), /bad\.safetensors: bad "wgrad.gpt" metadata/);
  });

  await Deno.remove(dir, { recursive: true });
});

Deno.test("a base model's config is read field by field, bounded by its weights", async () => {
  const dir = await Deno.makeTempDir();
  const config = { vocabSize: 16, maxSeqLen: 4, dModel: 4, heads: 1, layers: 1, head: "lm" };
  const graph = gptGraph(config as typeof config & { head: "lm" }, { batch: 1, seqLen: 4 });
  const params = initParams(graph);
  const tensors = Object.fromEntries(
    graph.params.map((
      p,
    ) => [p.name!, { dtype: "F32" as const, shape: p.shape, data: params[p.name!] }]),
  );
  const path = `${dir}/base.safetensors`;
  const cases: [unknown, RegExp][] = [
    [null, /"wgrad\.gpt" metadata: must be a JSON object, got null/],
    [[1], /must be a JSON object, got \[1\]/],
    [{ ...config, dModel: undefined }, /"dModel" must be an integer ≥ 1, got undefined/],
    [{ ...config, heads: "1" }, /"heads" must be an integer ≥ 1, got "1"/],
    [{ ...config, layers: 0 }, /"layers" must be an integer ≥ 1, got 0/],
    [{ ...config, layers: 1.5 }, /"layers" must be an integer ≥ 1, got 1\.5/],
    [{ ...config, layers: 1e6 }, /"layers" is 1000000, more than the file's tensors/],
    [{ ...config, maxSeqLen: 1e9 }, /"maxSeqLen" is 1000000000, more than its weights can embed/],
    [{ ...config, head: "seq2seq" }, /"head" must be "lm" or "classifier", got "seq2seq"/],
  ];
  for (const [meta, expected] of cases) {
    await writeSafetensors(path, tensors, { [GPT_METADATA_KEY]: JSON.stringify(meta) });
    const error = await loadBaseModel(path).then(() => null, (e: Error) => e);
    ok(error !== null, JSON.stringify(meta));
    ok(error.message.startsWith(`${path}: bad "wgrad.gpt" metadata: `), error.message);
    ok(expected.test(error.message), `${error.message} !~ ${expected}`);
    ok(!/Cannot read|undefined \(reading/.test(error.message), error.message);
  }
  await writeSafetensors(path, tensors, { [GPT_METADATA_KEY]: "{not json" });
  await rejects(loadBaseModel(path), /base\.safetensors: bad "wgrad\.gpt" metadata: not JSON \(/);
  await writeSafetensors(path, tensors, { [GPT_METADATA_KEY]: JSON.stringify(config) });
  equal((await loadBaseModel(path)).config.layers, 1);
  await Deno.remove(dir, { recursive: true });
});
