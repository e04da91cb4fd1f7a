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
import {
  adamw,
  applyUpdates,
  hyperparameterFeeds,
  initOptimizerState,
  trainStep,
} from "../train/optim.ts";
import { evaluate, type TensorData } from "../backends/cpu/interpreter.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const PYTHON = Deno.env.get("WGRAD_INTEROP_PYTHON") ?? `${ROOT}/.venv-interop/bin/python`;

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

/** Merged weights: |a − b| ≤ TOL · max(1, |b|). Logits use the same bound. */
const TOL = 1e-6;

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

/** One row of the result table. */
interface Check {
  readonly name: string;
  readonly ok: boolean;
  /** Largest |a − b| (or another measure; see `detail`). */
  readonly maxAbs?: number | null;
  /** Largest |a − b| / max(1, |b|). */
  readonly maxScaled?: number | null;
  /** Largest |a − b| / max|b| over one tensor (the error relative to the tensor's scale). */
  readonly maxRelTensor?: number | null;
  readonly detail?: string;
}

const checks: Check[] = [];
const notes: string[] = [];

/** A language-model batch from bytes of `text`: rows start `stride` bytes apart. */
function lmBatch(text: string, batch: number, seqLen: number, stride: number) {
  const bytes = new TextEncoder().encode(text);
  const tokens = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seqLen; t++) {
      const at = (b * stride + t) % (bytes.length - 1);
      tokens[b * seqLen + t] = bytes[at];
      targets[b * seqLen + t] = bytes[at + 1];
    }
  }
  return { tokens, targets };
}

type Batch = ReturnType<typeof lmBatch>;
type Params = Record<string, Float32Array>;

function toF32(data: TensorData): Float32Array {
  return Float32Array.from(data as ArrayLike<number>);
}

function loss(graph: Graph, params: Params, batch: Batch): number {
  return evaluate(graph, { inputs: { ...batch }, params }).loss.data[0];
}

/**
 * `steps` AdamW steps on one fixed batch with the step graph on the CPU;
 * returns every param (trainable ones updated, rounded to f32) and the loss
 * before and after.
 */
function train(model: Graph, params: Params, batch: Batch, steps: number, lr: number) {
  const step = trainStep(model, { optimizer: adamw({ weightDecay: 0.01 }) });
  const updates = step.meta.updates as Record<string, string>;
  let state: Record<string, TensorData> = { ...params, ...initOptimizerState(step) };
  const before = loss(model, params, batch);
  for (let t = 1; t <= steps; t++) {
    const out = evaluate(step, {
      inputs: { ...batch, ...hyperparameterFeeds(step, { step: t, lr }) },
      params: state,
    });
    state = applyUpdates(state, out, updates);
  }
  const trained: Params = {};
  for (const p of model.params) trained[p.name!] = toF32(state[p.name!]);
  return { params: trained, before, after: loss(model, trained, batch) };
}

function maxAbsOf(arrays: readonly Float32Array[]): number {
  return Math.max(...arrays.map((a) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
}

function shapesOf(graph: Graph): Map<string, number[]> {
  return new Map(graph.params.map((p) => [p.name!, [...p.shape]]));
}

async function run(cmd: string, args: string[], allowFailure = false): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success && !allowFailure) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${text}`);
  }
  return text;
}

function cli(...args: string[]): Promise<string> {
  return run(Deno.execPath(), ["run", "-A", `${ROOT}/cli.ts`, ...args]);
}

/**
 * Compares two arrays element by element: the largest |a − b|, the largest
 * |a − b| / max(1, |b|), the largest |a − b| / max|b| and whether they are
 * bit-identical (as f32 when `f32`).
 */
function compare(a: ArrayLike<number>, b: ArrayLike<number>, f32 = true) {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let maxAbs = 0, maxScaled = 0, scale = 0, identical = true;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxAbs)) maxAbs = d;
    const s = d / Math.max(1, Math.abs(b[i]));
    if (!(s <= maxScaled)) maxScaled = s;
    scale = Math.max(scale, Math.abs(b[i]));
    if (!Object.is(f32 ? Math.fround(a[i]) : a[i], f32 ? Math.fround(b[i]) : b[i])) {
      identical = false;
    }
  }
  return { maxAbs, maxScaled, maxRelTensor: scale > 0 ? maxAbs / scale : maxAbs, identical };
}

/**
 * Two merged model files: the same names, dtypes and shapes; `targets`
 * within TOL, every other tensor bit for bit identical.
 */
async function compareMerged(
  basePath: string,
  name: string,
  ours: string,
  theirs: string,
  targets: readonly string[],
): Promise<void> {
  const a = await readSafetensors(ours), b = await readSafetensors(theirs);
  const base = (await readSafetensors(basePath)).tensors;
  const problems: string[] = [];
  let maxDelta = 0;
  const namesA = [...a.tensors.keys()].sort(), namesB = [...b.tensors.keys()].sort();
  if (namesA.join() !== namesB.join()) {
    problems.push(`names differ: [${namesA}] vs [${namesB}]`);
  }
  const worst = { maxAbs: 0, maxScaled: 0, maxRelTensor: 0 };
  let identical = 0;
  for (const [key, tb] of b.tensors) {
    const ta = a.tensors.get(key);
    if (ta === undefined) continue;
    if (ta.dtype !== tb.dtype || ta.shape.join() !== tb.shape.join()) {
      problems.push(`${key}: ${ta.dtype}[${ta.shape}] vs ${tb.dtype}[${tb.shape}]`);
      continue;
    }
    const c = compare(ta.data as Float32Array, tb.data as Float32Array);
    if (targets.includes(key)) {
      worst.maxAbs = Math.max(worst.maxAbs, c.maxAbs);
      maxDelta = Math.max(
        maxDelta,
        compare(tb.data as Float32Array, base.get(key)!.data as Float32Array).maxAbs,
      );
      worst.maxScaled = Math.max(worst.maxScaled, c.maxScaled);
      worst.maxRelTensor = Math.max(worst.maxRelTensor, c.maxRelTensor);
      if (!(c.maxScaled <= TOL)) problems.push(`${key}: scaled error ${c.maxScaled}`);
    } else if (!c.identical) {
      problems.push(`${key} (not a target) differs: max |Δ| ${c.maxAbs}`);
    } else identical++;
  }
  const missing = targets.filter((t) => !a.tensors.has(t));
  if (missing.length > 0) problems.push(`targets missing: ${missing}`);
  checks.push({
    name,
    ok: problems.length === 0,
    ...worst,
    detail: problems.length > 0
      ? problems.join("; ")
      : `${targets.length} merged (max |ΔW| ${
        maxDelta.toPrecision(2)
      }), ${identical} others bit-identical`,
  });
}

function compareLogits(name: string, ours: ArrayLike<number>, theirs: ArrayLike<number>) {
  const c = compare(ours, theirs, false);
  checks.push({
    name,
    ok: c.maxScaled <= TOL,
    maxAbs: c.maxAbs,
    maxScaled: c.maxScaled,
    maxRelTensor: c.maxRelTensor,
    detail: `${ours.length} logits`,
  });
}

function fmt(v: number | null | undefined): string {
  if (v === undefined || v === null) return "-";
  return v === 0 ? "0" : v.toExponential(2);
}

function printTable(versions: Record<string, string>): void {
  const width = Math.max(...checks.map((c) => c.name.length));
  console.log(
    `\nwgrad ⇄ PEFT interop (torch ${versions.torch}, peft ${versions.peft}, ` +
      `safetensors ${versions.safetensors}, deno ${Deno.version.deno})\n`,
  );
  console.log(
    `${"check".padEnd(width)}  result  ${"max|Δ|".padStart(9)}  ${"scaled".padStart(9)}  ${
      "Δ/max|b|".padStart(9)
    }  detail`,
  );
  for (const c of checks) {
    console.log(
      `${c.name.padEnd(width)}  ${c.ok ? "PASS  " : "FAIL  "}  ${fmt(c.maxAbs).padStart(9)}  ${
        fmt(c.maxScaled).padStart(9)
      }  ${fmt(c.maxRelTensor).padStart(9)}  ${c.detail ?? ""}`,
    );
  }
  if (notes.length > 0) {
    console.log("\nnotes:");
    for (const n of notes) console.log(`  - ${n}`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  console.log(
    `\n${failed === 0 ? "all" : checks.length - failed + " of"} ${checks.length} checks passed`,
  );
}

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
  printTable(versions);
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

async function body(work: string): Promise<Record<string, string>> {
  // 1. Pretrain a tiny base model and write it.
  const base = gptGraph(CONFIG, TRAIN_SHAPE);
  const evalBase = gptGraph(CONFIG, EVAL_SHAPE);
  const shapes = shapesOf(base);
  const pre = train(
    base,
    initParams(base, { seed: 1 }),
    lmBatch(PRETRAIN_TEXT, 4, 16, 17),
    PRETRAIN_STEPS,
    1e-2,
  );
  checks.push({
    name: "pretrain: AdamW lowers the loss",
    ok: pre.after < pre.before,
    detail: `loss ${pre.before.toFixed(4)} → ${pre.after.toFixed(4)} (${PRETRAIN_STEPS} steps)`,
  });
  const baseParams = pre.params;
  const baseTensors: Record<string, TensorInput> = {};
  for (const [name, shape] of shapes) {
    baseTensors[name] = { dtype: "F32", shape, data: baseParams[name] };
  }
  await writeSafetensors(`${work}/base.safetensors`, baseTensors, { model: "wgrad-interop" });

  // 2. Fine-tune a VeRA and a LoRA adapter, export them, merge them with the CLI.
  const ftBatch = lmBatch(FINETUNE_TEXT, 4, 16, 13);
  const evalBatch = lmBatch(EVAL_TEXT, 2, 16, 29);
  const ours = {
    vera: { train: vera(base, VERA_CONFIG), eval: vera(evalBase, VERA_CONFIG) },
    lora: { train: lora(base, LORA_CONFIG), eval: lora(evalBase, LORA_CONFIG) },
  };
  const logits: Record<string, ArrayLike<number>> = {
    base: evaluate(evalBase, { inputs: { ...evalBatch }, params: baseParams }).logits.data,
  };
  const targetWeights: Record<string, string[]> = {};
  for (const [kind, { train: adapted, eval: evalAdapted }] of Object.entries(ours)) {
    const start = { ...initParams(adapted.graph, { seed: 2 }), ...baseParams };
    const ft = train(adapted.graph, start, ftBatch, FINETUNE_STEPS, FINETUNE_LR[kind]);
    const adapterNames = Object.keys(ft.params).filter((k) => !(k in baseParams));
    const zero = adapterNames.filter((k) =>
      /lambda_b|lora_B/.test(k) && ft.params[k].every((v) => v === 0)
    );
    const frozen = Object.keys(baseParams).filter((k) =>
      ft.params[k].some((v, i) => v !== baseParams[k][i])
    );
    checks.push({
      name: `deno ${kind}: fine-tune`,
      ok: ft.after < ft.before && zero.length === 0 && frozen.length === 0,
      detail: `loss ${ft.before.toFixed(4)} → ${ft.after.toFixed(4)} (${FINETUNE_STEPS} steps), ` +
        `${adapterNames.length} adapter tensors, max |${kind === "vera" ? "λ_b" : "B"}| ` +
        maxAbsOf(adapterNames.filter((k) => /lambda_b|lora_B/.test(k)).map((k) => ft.params[k]))
          .toPrecision(2) +
        (zero.length > 0 ? `, still zero: ${zero}` : "") +
        (frozen.length > 0 ? `, base changed: ${frozen}` : ""),
    });
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

  // 3. Python: PEFT loads and merges ours, and makes its own adapters.
  const py = await run(PYTHON, [`${ROOT}/interop/peft_check.py`, work], true);
  if (Deno.env.get("WGRAD_INTEROP_VERBOSE")) console.log(py);
  const resultText = await Deno.readTextFile(`${work}/results.json`).catch(() => {
    throw new Error(`peft_check.py wrote no results:\n${py}`);
  });
  const result = JSON.parse(resultText);
  if (py.includes("Traceback")) console.error(py);
  checks.push(...(result.checks as Check[]));
  notes.push(...(result.notes as string[]));

  // 4. Theirs here: logits of the torch re-implementation against ours, then the
  //    PEFT-made adapters imported (forward) and merged by the CLI.
  const torchLogits = (await readSafetensors(`${work}/logits.safetensors`)).tensors;
  const theirLogits = (key: string) => torchLogits.get(key)!.data as Float64Array;
  compareLogits("torch GPT forward = deno forward (base)", logits.base, theirLogits("base"));
  for (const kind of ["vera", "lora"]) {
    compareLogits(
      `deno ${kind}: deno forward = PEFT forward (unmerged)`,
      logits[`deno_${kind}`],
      theirLogits(`deno_${kind}`),
    );
  }
  for (const kind of ["vera", "lora"]) {
    const dir = `${work}/peft_${kind}`;
    const files = await readPeft(dir);
    const imported = importPeft(evalBase, files, dir);
    const ourLogits = evaluate(imported.graph, {
      inputs: { ...evalBatch },
      params: { ...baseParams, ...imported.params },
    }).logits.data;
    compareLogits(
      `peft ${kind}: importPeft forward = PEFT forward`,
      ourLogits,
      theirLogits(`peft_${kind}`),
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
    await compareMerged(
      `${work}/base.safetensors`,
      `peft ${kind}: cli merge = PEFT merge_and_unload`,
      `${work}/merged_peft_${kind}.safetensors`,
      `${work}/peft_merged_peft_${kind}.safetensors`,
      imported.adapter.targets.map((t) => t.weight),
    );
  }
  await peftOptionCases(`${work}/options`);
  return result.versions;
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
    await compareMerged(
      `${dir}/${c.base}`,
      `peft lora ${name}: cli merge = PEFT merge_and_unload`,
      ours,
      `${dir}/merged_${name}.safetensors`,
      c.targets,
    );
  }
}

if (import.meta.main) Deno.exit(await main());
