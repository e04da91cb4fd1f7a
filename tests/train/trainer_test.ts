import { deepEqual, equal, match, notDeepEqual, ok, rejects } from "node:assert/strict";
import type { Graph } from "../../compiler/ir.ts";
import { rewrite } from "../../compiler/rewrite.ts";
import { type GptConfig, gptGraph } from "../../nn/gpt.ts";
import { initParams } from "../../nn/init.ts";
import { freezeRule, vera } from "../../adapters/vera.ts";
import { lora } from "../../adapters/lora.ts";
import { ClassificationBatcher, classificationBatches } from "../../data/batches.ts";
import type { BatchState } from "../../data/batches.ts";
import { adamw, trainStep } from "../../train/optim.ts";
import { constant, warmupCosine } from "../../train/schedule.ts";
import { cpuRunner, type RunnerFactory, type RunOptions } from "../../train/runner.ts";
import { loadCheckpoint } from "../../train/checkpoint.ts";
import {
  classifierEvalBatches,
  NonFiniteError,
  sourceOf,
  train,
  type TrainOptions,
} from "../../train/trainer.ts";

const CONFIG: GptConfig = {
  vocabSize: 260,
  maxSeqLen: 8,
  dModel: 8,
  heads: 2,
  layers: 1,
  head: "classifier",
};
const SHAPE = { batch: 4, seqLen: 8 };
const EVAL = { batchSize: 4, seqLen: 8 };
const GROUPS = [{ name: "head", match: ["classifier"] }];
const LR = { default: constant(2e-2), head: constant(2e-2) };

type Method = "vera" | "lora" | "full" | "head";

function adapted(model: Graph, method: Method): Graph {
  const common = { targetModules: ["q_proj", "v_proj"], modulesToSave: ["classifier"] };
  if (method === "vera") return vera(model, { r: 4, ...common }).graph;
  if (method === "lora") return lora(model, { r: 2, ...common }).graph;
  return method === "full" ? model : rewrite(model, [freezeRule(["classifier"])]);
}

function setup(method: Method, dropout = 0) {
  const graph = adapted(gptGraph({ ...CONFIG, dropout }, SHAPE), method);
  const evalGraph = adapted(gptGraph(CONFIG, SHAPE), method);
  const step = trainStep(graph, { optimizer: adamw(), groups: GROUPS, clipNorm: 1 });
  return { graph, evalGraph, step, params: initParams(graph, { seed: 1 }) };
}

const FIXED = {
  tokens: Int32Array.from({ length: 32 }, (_, i) => (i * 37 + 11) % 256),
  labels: Int32Array.from([0, 1, 1, 0]),
  lastIndex: Int32Array.from([7, 5, 3, 6]),
};
const fixedBatch = () => ({ next: () => FIXED, state: null });

const EXAMPLES = Array.from({ length: 10 }, (_, i) => ({
  text: i % 2 ? `spam offer ${i}` : `hello ${i}`,
  label: i % 2,
}));
const BATCHING = { batchSize: 4, seqLen: 8, seed: 3, epochs: Infinity, dropLast: true };
const shuffled = (state: unknown) =>
  sourceOf(
    state === undefined
      ? classificationBatches(EXAMPLES, BATCHING)
      : ClassificationBatcher.fromState(EXAMPLES, BATCHING, state as BatchState),
  );

/** A CPU runner that calls `hook` before its n-th run (1-based), and records what each run read. */
function hooked(hook: (n: number, inner: ReturnType<typeof cpuRunner>) => Promise<void>) {
  const reads: (readonly string[] | undefined)[] = [];
  const factory: RunnerFactory = (graph) => {
    const inner = cpuRunner(graph);
    if (graph.meta.updates === undefined) return inner;
    let n = 0;
    return {
      ...inner,
      async run(inputs, options?: RunOptions) {
        await hook(++n, inner);
        reads.push(options?.read);
        return inner.run(inputs, options);
      },
    };
  };
  return { factory, reads };
}

async function lines(path: string): Promise<Record<string, number>[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("train: the loss falls on a fixed batch, and only the method's params train", async (t) => {
  for (const method of ["vera", "lora", "full", "head"] as const) {
    await t.step(method, async () => {
      const { graph, step, params } = setup(method);
      const result = await train({
        step,
        params,
        data: fixedBatch,
        steps: 25,
        lr: LR,
        logEvery: 1,
        progress: "none",
      });
      const losses = result.records.map((r) => r.loss!);
      equal(losses.length, 25);
      ok(losses[24] < 0.8 * losses[0], `${method}: ${losses[0]} → ${losses[24]}`);
      const trainable = graph.params.filter((p) => p.attrs.role === "trainable").map((p) => p.name);
      deepEqual(
        Object.keys(result.params).filter((k) => !k.startsWith("optim.")).sort(),
        trainable,
      );
      const expected: Record<Method, RegExp> = {
        vera: /^(classifier\.|.*vera_lambda_[bd]$)/,
        lora: /^(classifier\.|.*lora_[AB]\.weight$)/,
        full: /./,
        head: /^classifier\./,
      };
      ok(trainable.every((n) => expected[method].test(n!)), trainable.join(", "));
      if (method === "vera") {
        const lambdaB = result.params["layers.0.attn.q_proj.vera_lambda_b"];
        ok(lambdaB.some((v) => v !== 0), "the adapter itself trains (lambda_b left zero)");
      }
    });
  }
});

Deno.test("train: reads back only on logged steps; writes metrics.jsonl, loss.svg and progress lines", async () => {
  const dir = await Deno.makeTempDir();
  const { evalGraph, step, params } = setup("vera");
  const { factory, reads } = hooked(() => Promise.resolve());
  const progress: string[] = [];
  const result = await train({
    step,
    params,
    data: shuffled,
    steps: 6,
    lr: LR,
    logEvery: 4,
    evalEvery: 3,
    eval: { graph: evalGraph, batches: () => classifierEvalBatches(EXAMPLES, EVAL) },
    outDir: `${dir}/run`,
    runner: factory,
    progress: "lines",
    log: (line) => progress.push(line),
  });
  const logged = [1, 3, 4, 6];
  deepEqual(
    reads.map((r, i) => [i + 1, r?.length ?? -1]),
    // loss, grad_norm and the device's first-non-finite-step flag, on logged steps only.
    Array.from({ length: 6 }, (_, i) => [i + 1, logged.includes(i + 1) ? 3 : 0]),
  );
  const records = await lines(`${dir}/run/metrics.jsonl`);
  deepEqual(records.map((r) => r.step), logged);
  for (const r of records) {
    for (const key of ["loss", "lr", "grad_norm", "tokens_per_s", "lr.head"]) {
      ok(Number.isFinite(r[key]), `step ${r.step}: ${key}`);
    }
  }
  deepEqual(records.map((r) => "eval_accuracy" in r), [false, true, false, true]);
  equal(records[3].eval_accuracy, result.eval!.accuracy);
  equal(result.eval!.count, 10);
  const svg = await Deno.readTextFile(`${dir}/run/loss.svg`);
  ok(svg.startsWith("<svg") && svg.includes("validation"), svg.slice(0, 80));
  // Compiling and the final evaluation are announced as phases of their own; one line per logged step.
  deepEqual(progress.map((l) => l.startsWith("step ") ? "step" : l), [
    "compiling the training step…",
    "step",
    "step",
    "step",
    "running the final evaluation…",
    "step",
  ]);
  const stepLines = progress.filter((l) => l.startsWith("step "));
  match(
    stepLines[1],
    /^step 3\/6 {2}loss \d\.\d{4} {2}lr 2\.00e-2 {2}\d+ tok\/s {2}ETA \S+ {2}val loss/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: a run resumed from its checkpoint equals the uninterrupted run, bit for bit", async () => {
  const dir = await Deno.makeTempDir();
  const { evalGraph, step, params } = setup("lora", 0.1);
  ok(step.inputs.some((n) => n.name === "dropoutSeed"), "the RNG state matters: dropout is on");
  const options = (name: string): TrainOptions => ({
    step,
    params,
    data: shuffled,
    steps: 8,
    lr: { default: warmupCosine({ peak: 2e-2, warmupSteps: 2, totalSteps: 8 }), head: LR.head },
    logEvery: 1,
    evalEvery: 4,
    eval: { graph: evalGraph, batches: () => classifierEvalBatches(EXAMPLES, EVAL) },
    outDir: `${dir}/${name}`,
    checkpoint: { path: `${dir}/${name}/checkpoint.safetensors`, every: 3, config: { run: 1 } },
    seed: 5,
    progress: "none",
  });
  const whole = await train(options("whole"));

  const crash = hooked((n) =>
    n === 6 ? Promise.reject(new Error("simulated crash")) : Promise.resolve()
  );
  await rejects(train({ ...options("resumed"), runner: crash.factory }), /simulated crash/);
  const checkpoint = await loadCheckpoint(`${dir}/resumed/checkpoint.safetensors`);
  equal(checkpoint.step, 3);
  const resumed = await train({ ...options("resumed"), resume: checkpoint });

  const strip = (r: Record<string, number>) => ({ ...r, tokens_per_s: 0 });
  deepEqual(
    (await lines(`${dir}/resumed/metrics.jsonl`)).map(strip),
    (await lines(`${dir}/whole/metrics.jsonl`)).map(strip),
  );
  for (const [name, v] of Object.entries(whole.params)) {
    deepEqual(new Uint32Array(resumed.params[name].buffer), new Uint32Array(v.buffer), name);
  }
  deepEqual(resumed.eval, whole.eval);

  await rejects(
    train({ ...options("resumed"), resume: { ...checkpoint, config: { run: 2 } } }),
    /resume: the checkpoint was written by a different run \(run\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: a NaN stops the run naming the step and keeps the last good checkpoint", async (t) => {
  const dir = await Deno.makeTempDir();
  const { step, params } = setup("head");
  const poison = (at: number) =>
    hooked((n, inner) =>
      n === at
        ? inner.setParams({ "classifier.bias": new Float32Array([NaN, 0]) })
        : Promise.resolve()
    ).factory;
  const run = (name: string, logEvery: number, every: number) =>
    train({
      step,
      params,
      data: fixedBatch,
      steps: 10,
      lr: LR,
      logEvery,
      outDir: `${dir}/${name}`,
      checkpoint: { path: `${dir}/${name}/checkpoint.safetensors`, every },
      runner: poison(5),
      progress: "none",
    });

  await t.step("read every step: the poisoned step is named", async () => {
    const error = await run("every", 1, 2).then(() => undefined, (e) => e);
    ok(error instanceof NonFiniteError, String(error));
    equal(error.step, 5);
    match(error.message, /^step 5: loss is NaN, grad_norm is NaN; training diverged/);
    match(error.message, /last good checkpoint: step 4 \(.*checkpoint\.safetensors\)/);
    const checkpoint = await loadCheckpoint(`${dir}/every/checkpoint.safetensors`);
    equal(checkpoint.step, 4);
    for (const [name, v] of Object.entries(checkpoint.params)) {
      ok(v.every(Number.isFinite), `${name} is finite`);
    }
    const records = await lines(`${dir}/every/metrics.jsonl`);
    deepEqual(records.map((r) => r.step), [1, 2, 3, 4, 5]);
    equal(records[4].loss, null);
    ok((await Deno.readTextFile(`${dir}/every/loss.svg`)).startsWith("<svg"));
  });

  await t.step(
    "read every 3 steps: the poisoned step itself is named, from the device flag",
    async () => {
      const error = await run("sparse", 3, 3).then(() => undefined, (e) => e);
      ok(error instanceof NonFiniteError, String(error));
      equal(error.step, 5);
      equal(error.readAt, 6);
      match(
        error.message,
        /^step 5: loss or grad_norm first became NaN or infinite \(read back at step 6: loss NaN, grad_norm NaN\); .*last good checkpoint: step 3/,
      );
      equal((await loadCheckpoint(`${dir}/sparse/checkpoint.safetensors`)).step, 3);
    },
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train: bad options are clear errors", async () => {
  const { step, params } = setup("head");
  const base = { step, params, data: fixedBatch, lr: LR, progress: "none" as const };
  await rejects(train({ ...base, steps: 0 }), /steps must be an integer ≥ 1, got 0/);
  await rejects(train({ ...base, steps: 2, logEvery: 1.5 }), /logEvery must be an integer/);
  await rejects(
    train({ ...base, steps: 2, params: {} }),
    /no initial value for param "classifier.bias"/,
  );
  await rejects(
    train({ ...base, steps: 2, lr: { head: constant(1) }, step: setup("full").step }),
    /no learning rate for group "default"/,
  );
  await rejects(
    train({ ...base, steps: 3, data: () => ({ next: () => undefined, state: null }) }),
    /the data ran out before step 1/,
  );
  const trained = (await train({ ...base, steps: 1 })).params;
  const resume = { step: 2, params: trained, rng: { seed: 0 } };
  await rejects(
    train({ ...base, steps: 1, resume }),
    /checkpoint is at step 2, past the last step 1/,
  );
  await rejects(
    train({ ...base, steps: 3, resume: { step: 2, params: trained } }),
    /the checkpoint is incomplete: its "rng" field is empty/,
  );
  // A checkpoint at the last step runs nothing and returns its params (the run can be finished).
  const finished = await train({ ...base, steps: 2, resume });
  equal(finished.step, 2);
  deepEqual(finished.params, trained);
  notDeepEqual(Object.keys(params), []);
});
