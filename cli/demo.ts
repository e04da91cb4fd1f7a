/**
 * `deno task demo`: the project's main job for a newcomer. Fine-tunes a spam
 * classifier from the committed pretrained base with VeRA on the default
 * WebGPU adapter, then shows what VeRA bought: accuracy before and after,
 * trainable parameters against LoRA and full fine-tuning, the adapter's size
 * on disk, a merged model, and a check that the merged model predicts exactly
 * what the adapted model does.
 */
import { relative } from "node:path";
import { gptGraph } from "../nn/gpt.ts";
import { lora, loraTrainableCount } from "../adapters/lora.ts";
import { vera, veraTrainableCount } from "../adapters/vera.ts";
import { importPeft, readPeft } from "../adapters/peft_import.ts";
import { compactFromPeft } from "../adapters/compact.ts";
import { merge } from "../adapters/merge.ts";
import { webgpuMergeRunner } from "../adapters/gpu_merge.ts";
import { loadBaseModel } from "../train/checkpoint.ts";
import { classifierEvalBatches } from "../train/evaluation.ts";
import { classificationTask } from "../data/datasets.ts";
import { webgpuRunner } from "../train/executable_runner.ts";
import type { Graph } from "../compiler/ir.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { requestGpu } from "../backends/webgpu/device.ts";
import { type BackendChoice, resolveBackend } from "../backends/compile.ts";
import type { BackendName } from "../backends/executable.ts";
import { defaultThreads } from "../backends/wasm/mod.ts";
import { finetuneCommand } from "./train.ts";
import {
  CONFIG_FLAG,
  type FlagSpec,
  intFlag,
  noPositionals,
  parseFlags,
  UsageError,
} from "./_args.ts";

/** The committed base model the demo starts from (see models/README.md for the command). */
export const DEMO_BASE =
  new URL("../models/gpt-spam-2L-d64-t128.safetensors", import.meta.url).pathname;

/** The flags of `demo` (all optional). */
export const DEMO_FLAGS: Record<string, FlagSpec> = {
  out: { type: "string", help: "run directory to write", default: "runs/demo" },
  steps: { type: "string", help: "VeRA training steps", default: "150" },
  batch: { type: "string", help: "batch size", default: "16" },
  r: { type: "string", help: "VeRA rank", default: "256" },
  backend: {
    type: "string",
    help: "auto | webgpu | wasm | cpu (auto: WebGPU on a hardware GPU, else wasm SIMD threads)",
    default: "auto",
    choices: ["auto", "webgpu", "wasm", "cpu"],
  },
  config: CONFIG_FLAG,
};

const fmt = (n: number) => n.toLocaleString("en-US");
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) total += (await Deno.stat(`${dir}/${e.name}`)).size;
  }
  return total;
}

/** Argmax predictions of a classifier graph over the test split. */
async function predictions(
  graph: Graph,
  params: Record<string, Float32Array>,
  batch: number,
  seq: number,
) {
  const runner = await webgpuRunner(graph);
  try {
    await runner.setParams(Object.fromEntries(graph.params.map((p) => [p.name!, params[p.name!]])));
    const out: number[] = [];
    const logitsAll: number[] = [];
    for (
      const b of classifierEvalBatches(classificationTask("spam").test, {
        batchSize: batch,
        seqLen: seq,
      })
    ) {
      const { logits } = await runner.run(b.feeds, { read: ["logits"] });
      for (let i = 0; i < (b.rows ?? batch); i++) {
        out.push(logits[2 * i + 1] > logits[2 * i] ? 1 : 0);
        logitsAll.push(logits[2 * i], logits[2 * i + 1]);
      }
    }
    return { predicted: out, logits: logitsAll };
  } finally {
    runner.dispose();
  }
}

/** What a backend runs on, for the first line: the GPU adapter, or the threads. */
async function describeBackend(backend: BackendName): Promise<string> {
  if (backend === "webgpu") return `WebGPU (${(await requestGpu()).description})`;
  if (backend === "wasm") return `wasm SIMD (${defaultThreads()} threads)`;
  return "the cpu reference interpreter";
}

/** The demo's settings, read from its flags. */
interface DemoSettings {
  readonly out: string;
  readonly steps: number;
  readonly batch: number;
  readonly r: number;
  readonly choice: BackendChoice;
}

function readDemoFlags(args: readonly string[]): DemoSettings {
  const { values, positionals } = parseFlags("demo", args, DEMO_FLAGS);
  noPositionals("demo", positionals);
  return {
    out: String(values.out),
    steps: intFlag(values, "steps")!,
    batch: intFlag(values, "batch")!,
    r: intFlag(values, "r")!,
    choice: String(values.backend) as BackendChoice,
  };
}

/** Loads the committed base model and prints what it is. */
async function loadDemoBase() {
  const base = await loadBaseModel(DEMO_BASE).catch((e: Error) => {
    throw new UsageError(`demo: cannot load the base model ${DEMO_BASE}: ${e.message}`);
  });
  console.log(
    `base model: ${
      DEMO_BASE.split("/").pop()
    } (${base.config.layers} layers, d=${base.config.dModel}, ` +
      `${
        fmt(Object.values(base.weights).reduce((n, w) => n + w.length, 0))
      } weights, pretrained on spam-assassin)`,
  );
  return base;
}

type DemoBase = Awaited<ReturnType<typeof loadDemoBase>>;

/** Fine-tunes with VeRA through `finetune`, and returns the run's summary.json. */
async function runDemoFinetune(settings: DemoSettings, backend: BackendName) {
  const { out, r, steps, batch } = settings;
  // Recorded in the adapter as the base model's name: relative, not this machine's absolute path.
  const near = relative(Deno.cwd(), DEMO_BASE);
  await finetuneCommand([
    "--base",
    near.startsWith("..") ? DEMO_BASE : near,
    "--data",
    "spam",
    "--method",
    "vera",
    "--r",
    String(r),
    "--targets",
    "q_proj,v_proj",
    "--steps",
    String(steps),
    "--batch",
    String(batch),
    "--out",
    out,
    "--backend",
    backend,
    "--log-every",
    "10",
    // The demo owns its run directory: a previous demo run is started over; files that are not
    // the run's are kept (nothing is deleted wholesale).
    "--force",
  ]);
  return JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
}

/** Trainable parameters of the three ways to fine-tune the same classifier. */
function trainableCounts(model: Graph, r: number) {
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  const head = model.params.filter((p) => p.name!.startsWith("classifier.")).reduce(
    (n, p) => n + size(p.shape),
    0,
  );
  const veraCount = veraTrainableCount(
    vera(model, { r, targetModules: ["q_proj", "v_proj"] }).adapter,
  );
  const loraCount = loraTrainableCount(
    lora(model, { r: 8, targetModules: ["q_proj", "v_proj"] }).adapter,
  );
  const fullCount = model.params.reduce((n, p) => n + size(p.shape), 0);
  return { head, veraCount, loraCount, fullCount };
}

/** Writes `merged.safetensors` in the run directory. */
async function writeMergedModel(
  out: string,
  model: Graph,
  config: DemoBase["config"],
  mergedParams: Record<string, Float32Array>,
) {
  await writeSafetensors(
    `${out}/merged.safetensors`,
    Object.fromEntries(
      model.params.map((
        p,
      ) => [p.name!, { dtype: "F32" as const, shape: p.shape, data: mergedParams[p.name!] }]),
    ),
    { "wgrad.gpt": JSON.stringify({ ...config, head: "classifier", numClasses: 2 }) },
  );
}

/**
 * Merges the trained adapter on the GPU, writes the merged model, and checks
 * that it predicts exactly what the adapted model does.
 */
async function mergeAndCompare(
  out: string,
  model: Graph,
  base: DemoBase,
  files: Awaited<ReturnType<typeof readPeft>>,
  batch: number,
) {
  const seq = base.config.maxSeqLen;
  const imported = importPeft(model, files, `${out}/adapter`);
  const adaptedParams = { ...base.weights, ...imported.params };
  const merged = await merge(imported.adapter, adaptedParams, {
    runner: webgpuMergeRunner,
    safe: true,
  });
  const mergedParams = Object.fromEntries(model.params.map((p) => [p.name!, merged[p.name!]]));
  await writeMergedModel(out, model, base.config, mergedParams);
  const adapted = await predictions(imported.graph, adaptedParams, batch, seq);
  const folded = await predictions(model, mergedParams, batch, seq);
  const same = adapted.predicted.every((p, i) => p === folded.predicted[i]);
  const maxDiff = adapted.logits.reduce(
    (m, v, i) => Math.max(m, Math.abs(v - folded.logits[i])),
    0,
  );
  return { same, maxDiff, messages: adapted.predicted.length };
}

/** What the demo measured, for its closing report. */
interface DemoResults {
  readonly accuracy: {
    readonly test: { readonly before: number; readonly after: number };
    readonly validation: { readonly before: number; readonly after: number };
  };
  readonly counts: ReturnType<typeof trainableCounts>;
  readonly compactBytes: number;
  readonly peftBytes: number;
  readonly comparison: Awaited<ReturnType<typeof mergeAndCompare>>;
  readonly started: number;
}

function printDemoReport({ out, steps, r }: DemoSettings, results: DemoResults) {
  const { accuracy: acc, counts, compactBytes, peftBytes, comparison, started } = results;
  const { head, veraCount, loraCount, fullCount } = counts;
  console.log(
    `
spam-assassin test accuracy: ${pct(acc.test.before)} before → ${
      pct(acc.test.after)
    } after ${steps} VeRA steps
  (validation ${pct(acc.validation.before)} → ${pct(acc.validation.after)})

trainable parameters for this classifier (plus its ${fmt(head)}-parameter head):
  VeRA r=${r} (q_proj, v_proj)   ${fmt(veraCount).padStart(9)}
  LoRA r=8   (q_proj, v_proj)   ${fmt(loraCount).padStart(9)}   ${
      (loraCount / veraCount).toFixed(1)
    }× VeRA
  full fine-tuning              ${fmt(fullCount).padStart(9)}   ${
      (fullCount / veraCount).toFixed(0)
    }× VeRA

adapter on disk: ${fmt(compactBytes)} bytes compact (seed + vectors), ${
      fmt(peftBytes)
    } bytes as a PEFT directory
merged model: ${out}/merged.safetensors — predicts exactly what the adapted model does: ${
      comparison.same ? "yes" : "NO"
    } ` +
      `(${comparison.messages} test messages, max logit difference ${
        comparison.maxDiff.toExponential(1)
      })
run directory: ${out}/ (metrics.jsonl, loss.svg, adapter/, summary.json, merged.safetensors)
done in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

/**
 * Runs the demo.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { demoCommand } from "./demo.ts";
 * // deno task demo  (about 3–4 minutes on a 2-core machine without a GPU)
 * strictEqual(typeof demoCommand, "function");
 * ```
 */
export async function demoCommand(args: readonly string[]): Promise<void> {
  const settings = readDemoFlags(args);
  const { out, batch, r, choice } = settings;
  const started = performance.now();
  const backend = await resolveBackend(choice);
  console.log(
    `wgrad demo: VeRA fine-tuning of a spam classifier on ${await describeBackend(backend)}` +
      (choice === "auto" ? " (--backend auto: the fastest available here)" : ""),
  );
  const base = await loadDemoBase();
  const summary = await runDemoFinetune(settings, backend);

  const model = gptGraph({ ...base.config, head: "classifier", numClasses: 2 }, {
    batch,
    seqLen: base.config.maxSeqLen,
  });
  const counts = trainableCounts(model, r);

  // The adapter on disk: PEFT directory (stores the projections) vs compact (seed + vectors).
  const files = await readPeft(`${out}/adapter`);
  const compact = compactFromPeft(files);
  await Deno.writeFile(`${out}/adapter.compact.safetensors`, compact);
  const peftBytes = await dirBytes(`${out}/adapter`);

  const comparison = await mergeAndCompare(out, model, base, files, batch);
  printDemoReport(settings, {
    accuracy: summary.accuracy,
    counts,
    compactBytes: compact.length,
    peftBytes,
    comparison,
    started,
  });
  if (!comparison.same) {
    throw new Error("demo: the merged model's predictions differ from the adapted model's");
  }
}
