/**
 * Interop check against the real Hugging Face PEFT (Python): trains a tiny
 * base GPT and a VeRA and a LoRA adapter here, exports them in PEFT format,
 * merges them with `cli.ts merge`, and lets `interop/peft_check.py` load them
 * with PEFT, merge them with `merge_and_unload()` and compare. The reverse
 * direction too: PEFT makes a VeRA and a LoRA adapter, this project imports
 * and merges them. Prints a table of checks and exits 1 on any failure.
 *
 *   deno run -A interop/run.ts [--keep]
 *
 * Needs the Python venv `.venv-interop` (torch, peft, safetensors; see
 * interop/README.md) or `WGRAD_INTEROP_PYTHON` pointing at a Python that has
 * them. `--keep` leaves the work directory in place and prints its path.
 *
 * @module
 */
import type { Graph } from "../compiler/ir.ts";
import { type GptConfig, gptGraph } from "../nn/gpt.ts";
import { initParams } from "../nn/init.ts";
import { vera } from "../adapters/vera.ts";
import { lora } from "../adapters/lora.ts";
import { exportPeft } from "../adapters/peft.ts";
import { importPeft, readPeft } from "../adapters/peft_import.ts";
import { evaluate } from "../backends/cpu/interpreter.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { type Check, compareLogits, compareMerged, tableLines, TOL } from "./_checks.ts";
import { cli, PYTHON, ROOT, run } from "./_process.ts";
import { type Batch, lmBatch, maxAbsOf, type Params, shapesOf, train } from "./_tiny_training.ts";

/** The tiny base model. */
const CONFIG: GptConfig = {
  vocabSize: 260,
  maxSeqLen: 16,
  dModel: 16,
  heads: 2,
  layers: 2,
  head: "lm",
};
const TRAIN_SHAPE = { batch: 4, seqLen: 16 };
const EVAL_SHAPE = { batch: 2, seqLen: 16 };

const PRETRAIN_STEPS = 12;
const FINETUNE_STEPS = 8;
/** VeRA's few parameters take a larger rate, as in the paper. */
const FINETUNE_LR: Record<string, number> = { vera: 5e-2, lora: 1e-2 };

const VERA_CONFIG = { r: 8, targetModules: ["q_proj", "v_proj", "fc1"] };
const LORA_CONFIG = { r: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "fc1"] };

const PRETRAIN_TEXT = "the quick brown fox jumps over the lazy dog. " +
  "pack my box with five dozen liquor jugs. how vexingly quick daft zebras jump! ";
const FINETUNE_TEXT = "sphinx of black quartz, judge my vow. " +
  "the five boxing wizards jump quickly. jackdaws love my big sphinx of quartz. ";
const EVAL_TEXT = "a wizard's job is to vex chumps quickly in fog. " +
  "we promptly judged antique ivory buckles for the next prize. ";

// The rows of the result table and its notes, filled in as the steps run.
const checks: Check[] = [];
const notes: string[] = [];

async function main(): Promise<number> {
  try {
    await Deno.stat(PYTHON);
  } catch {
    console.error(
      `error: no Python at ${PYTHON}; create the venv (see interop/README.md) or set WGRAD_INTEROP_PYTHON`,
    );
    return 2;
  }
  const keep = Deno.args.includes("--keep");
  const work = await Deno.makeTempDir({ prefix: "wgrad-interop-" });
  const started = performance.now();
  let versions: Record<string, string> = {};
  try {
    versions = await body(work);
  } catch (e) {
    checks.push({ name: "run", ok: false, detail: (e as Error).message.split("\n")[0] });
    console.error(e);
  } finally {
    if (keep) console.log(`work directory kept: ${work}`);
    else await Deno.remove(work, { recursive: true });
  }
  for (const line of tableLines(checks, notes, versions)) console.log(line);
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

/** The base model's training and evaluation graphs (the same params) and its pretrained weights. */
interface Base {
  readonly graph: Graph;
  readonly evalGraph: Graph;
  readonly params: Params;
}

async function body(work: string): Promise<Record<string, string>> {
  const base = await pretrainBase(work);
  const evalBatch = lmBatch(EVAL_TEXT, 2, 16, 29);
  const { logits, targetWeights } = await finetuneOurs(work, base, evalBatch);
  await Deno.writeTextFile(
    `${work}/setup.json`,
    JSON.stringify({
      config: CONFIG,
      tokens: [...evalBatch.tokens],
      batch: EVAL_SHAPE.batch,
      seqLen: EVAL_SHAPE.seqLen,
      tol: TOL,
      targets: targetWeights,
    }),
  );
  const versions = await runPeftCheck(work);
  await checkTheirs(work, base, evalBatch, logits);
  await peftOptionCases(`${work}/options`);
  return versions;
}

/** 1. Pretrain a tiny base model and write it. */
async function pretrainBase(work: string): Promise<Base> {
  const graph = gptGraph(CONFIG, TRAIN_SHAPE);
  const evalGraph = gptGraph(CONFIG, EVAL_SHAPE);
  const shapes = shapesOf(graph);
  const pre = train(
    graph,
    initParams(graph, { seed: 1 }),
    lmBatch(PRETRAIN_TEXT, 4, 16, 17),
    PRETRAIN_STEPS,
    1e-2,
  );
  checks.push({
    name: "pretrain: AdamW lowers the loss",
    ok: pre.after < pre.before,
    detail: `loss ${pre.before.toFixed(4)} → ${pre.after.toFixed(4)} (${PRETRAIN_STEPS} steps)`,
  });
  const params = pre.params;
  const baseTensors: Record<string, TensorInput> = {};
  for (const [name, shape] of shapes) {
    baseTensors[name] = { dtype: "F32", shape, data: params[name] };
  }
  await writeSafetensors(`${work}/base.safetensors`, baseTensors, { model: "wgrad-interop" });
  return { graph, evalGraph, params };
}

/**
 * 2. Fine-tune a VeRA and a LoRA adapter, export them, merge them with the CLI. Returns the logits
 * of the base and of each adapted model on `evalBatch`, and each adapter's target weights.
 */
async function finetuneOurs(work: string, base: Base, evalBatch: Batch) {
  const baseParams = base.params;
  const ftBatch = lmBatch(FINETUNE_TEXT, 4, 16, 13);
  const ours = {
    vera: { train: vera(base.graph, VERA_CONFIG), eval: vera(base.evalGraph, VERA_CONFIG) },
    lora: { train: lora(base.graph, LORA_CONFIG), eval: lora(base.evalGraph, LORA_CONFIG) },
  };
  const logits: Record<string, ArrayLike<number>> = {
    base: evaluate(base.evalGraph, { inputs: { ...evalBatch }, params: baseParams }).logits.data,
  };
  const targetWeights: Record<string, string[]> = {};
  for (const [kind, { train: adapted, eval: evalAdapted }] of Object.entries(ours)) {
    const start = { ...initParams(adapted.graph, { seed: 2 }), ...baseParams };
    const ft = train(adapted.graph, start, ftBatch, FINETUNE_STEPS, FINETUNE_LR[kind]);
    checks.push(fineTuneCheck(kind, ft, baseParams));
    await exportPeft(`${work}/deno_${kind}`, adapted.adapter, ft.params, { graph: adapted.graph });
    await cli(
      "merge",
      "--base",
      `${work}/base.safetensors`,
      "--adapter",
      `${work}/deno_${kind}`,
      "--out",
      `${work}/merged_deno_${kind}.safetensors`,
    );
    logits[`deno_${kind}`] = evaluate(evalAdapted.graph, {
      inputs: { ...evalBatch },
      params: ft.params,
    }).logits.data;
    targetWeights[`deno_${kind}`] = adapted.adapter.targets.map((t) => t.weight);
  }
  return { logits, targetWeights };
}

/** Fine-tuning lowered the loss, moved every λ_b / B off zero and left the base weights alone. */
function fineTuneCheck(
  kind: string,
  ft: { params: Params; before: number; after: number },
  baseParams: Params,
): Check {
  const adapterNames = Object.keys(ft.params).filter((k) => !(k in baseParams));
  const zero = adapterNames.filter((k) =>
    /lambda_b|lora_B/.test(k) && ft.params[k].every((v) => v === 0)
  );
  const frozen = Object.keys(baseParams).filter((k) =>
    ft.params[k].some((v, i) => v !== baseParams[k][i])
  );
  return {
    name: `deno ${kind}: fine-tune`,
    ok: ft.after < ft.before && zero.length === 0 && frozen.length === 0,
    detail: `loss ${ft.before.toFixed(4)} → ${ft.after.toFixed(4)} (${FINETUNE_STEPS} steps), ` +
      `${adapterNames.length} adapter tensors, max |${kind === "vera" ? "λ_b" : "B"}| ` +
      maxAbsOf(adapterNames.filter((k) => /lambda_b|lora_B/.test(k)).map((k) => ft.params[k]))
        .toPrecision(2) +
      (zero.length > 0 ? `, still zero: ${zero}` : "") +
      (frozen.length > 0 ? `, base changed: ${frozen}` : ""),
  };
}

/** 3. Python: PEFT loads and merges ours, and makes its own adapters. Returns the versions used. */
async function runPeftCheck(work: string): Promise<Record<string, string>> {
  const py = await run(PYTHON, [`${ROOT}/interop/peft_check.py`, work], true);
  if (Deno.env.get("WGRAD_INTEROP_VERBOSE")) console.log(py);
  const resultText = await Deno.readTextFile(`${work}/results.json`).catch(() => {
    throw new Error(`peft_check.py wrote no results:\n${py}`);
  });
  const result = JSON.parse(resultText);
  if (py.includes("Traceback")) console.error(py);
  checks.push(...(result.checks as Check[]));
  notes.push(...(result.notes as string[]));
  return result.versions;
}

/**
 * 4. Theirs here: logits of the torch re-implementation against ours, then the
 *    PEFT-made adapters imported (forward) and merged by the CLI.
 */
async function checkTheirs(
  work: string,
  base: Base,
  evalBatch: Batch,
  logits: Record<string, ArrayLike<number>>,
): Promise<void> {
  const torchLogits = (await readSafetensors(`${work}/logits.safetensors`)).tensors;
  const theirLogits = (key: string) => torchLogits.get(key)!.data as Float64Array;
  checks.push(
    compareLogits("torch GPT forward = deno forward (base)", logits.base, theirLogits("base")),
  );
  for (const kind of ["vera", "lora"]) {
    checks.push(compareLogits(
      `deno ${kind}: deno forward = PEFT forward (unmerged)`,
      logits[`deno_${kind}`],
      theirLogits(`deno_${kind}`),
    ));
  }
  for (const kind of ["vera", "lora"]) {
    await checkPeftAdapter(work, kind, base, evalBatch, theirLogits(`peft_${kind}`));
  }
}

/** A PEFT-made adapter: importPeft's forward, `cli inspect` and `cli merge` against PEFT's. */
async function checkPeftAdapter(
  work: string,
  kind: string,
  base: Base,
  evalBatch: Batch,
  theirLogits: ArrayLike<number>,
): Promise<void> {
  const dir = `${work}/peft_${kind}`;
  const files = await readPeft(dir);
  const imported = importPeft(base.evalGraph, files, dir);
  const ourLogits = evaluate(imported.graph, {
    inputs: { ...evalBatch },
    params: { ...base.params, ...imported.params },
  }).logits.data;
  checks.push(
    compareLogits(`peft ${kind}: importPeft forward = PEFT forward`, ourLogits, theirLogits),
  );
  const inspect = JSON.parse(
    (await cli("inspect", dir, "--json")).split("\n").find((l) => l.startsWith("{"))!,
  );
  checks.push({
    name: `peft ${kind}: cli inspect reads it`,
    ok: inspect.kind === kind && inspect.tensors === Object.keys(files.tensors).length,
    detail: `${inspect.kind}, r=${inspect.r}, ${inspect.tensors} tensors`,
  });
  await cli(
    "merge",
    "--base",
    `${work}/base.safetensors`,
    "--adapter",
    dir,
    "--out",
    `${work}/merged_peft_${kind}.safetensors`,
  );
  checks.push(
    await compareMerged(
      `${work}/base.safetensors`,
      `peft ${kind}: cli merge = PEFT merge_and_unload`,
      `${work}/merged_peft_${kind}.safetensors`,
      `${work}/peft_merged_peft_${kind}.safetensors`,
      imported.adapter.targets.map((t) => t.weight),
    ),
  );
}

/**
 * PEFT-made LoRA adapters with use_rslora, alpha_pattern, rank_pattern, fan_in_fan_out,
 * layers_to_transform and modules_to_save (interop/peft_options.py), each merged by `cli merge`
 * and compared with PEFT's merge_and_unload.
 */
async function peftOptionCases(dir: string): Promise<void> {
  await run(PYTHON, [`${ROOT}/interop/peft_options.py`, dir]);
  const cases = JSON.parse(await Deno.readTextFile(`${dir}/cases.json`)) as Record<
    string,
    { base: string; targets: string[] }
  >;
  for (const [name, c] of Object.entries(cases)) {
    const ours = `${dir}/ours_${name}.safetensors`;
    await cli("merge", "--base", `${dir}/${c.base}`, "--adapter", `${dir}/${name}`, "--out", ours);
    checks.push(
      await compareMerged(
        `${dir}/${c.base}`,
        `peft lora ${name}: cli merge = PEFT merge_and_unload`,
        ours,
        `${dir}/merged_${name}.safetensors`,
        c.targets,
      ),
    );
  }
}

if (import.meta.main) Deno.exit(await main());
