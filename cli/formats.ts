/** The `merge`, `export` and `inspect` commands. */
import { openSafetensors } from "../io/safetensors.ts";
import { listBundle, writeBundle } from "../io/bundle.ts";
import { writeDirAtomic, writeFileAtomic } from "../io/atomic.ts";
import { peftSource, readPeft } from "../adapters/peft_import.ts";
import { exportMerged } from "../adapters/export.ts";
import { COMPACT_METADATA_KEY, compactFromPeft } from "../adapters/compact.ts";
import { cpuMergeRunner, type MergeRunner } from "../adapters/merge.ts";
import { resolveAdapter } from "../adapters/resolve.ts";
import { GPT_METADATA_KEY } from "../train/checkpoint.ts";
import { backendMergeRunner } from "../adapters/gpu_merge.ts";
import { type BackendChoice, parseBackend } from "../backends/compile.ts";
import { type FlagSpec, humanOutput, parseFlags, required, UsageError } from "./_args.ts";
import { regularFileSize } from "../io/read_file.ts";
import { checkOutput } from "./_outputs.ts";
import { mergeHf } from "./_merge_hf.ts";
import { isDirectory, loadAdapter } from "./_load_adapter.ts";
import { loadBase } from "./_task.ts";

const BACKEND_FLAG: FlagSpec = {
  type: "string",
  help: "where the merge runs: auto | webgpu | wasm | cpu (f32 reference)",
  default: "auto",
};

/** The flags of `merge`. */
export const MERGE_FLAGS: Record<string, FlagSpec> = {
  base: { type: "string", help: "base model: safetensors file or Hugging Face directory" },
  adapter: { type: "string", help: "adapter: PEFT directory or compact .safetensors" },
  out: { type: "string", help: "merged model to write (a directory for a Hugging Face base)" },
  force: { type: "boolean", help: "replace an existing --out" },
  backend: BACKEND_FLAG,
  json: { type: "boolean", help: "print only a JSON summary on stdout (the rest goes to stderr)" },
};

/** The flags of `export`. */
export const EXPORT_FLAGS: Record<string, FlagSpec> = {
  adapter: { type: "string", help: "adapter: PEFT directory" },
  format: { type: "string", help: "peft | compact | zip" },
  out: { type: "string", help: "where to write" },
  "merged-base": { type: "string", help: "zip only: also bundle the model merged into this base" },
  force: {
    type: "boolean",
    help:
      "replace an existing --out (files in an existing directory that export did not write are kept)",
  },
  backend: BACKEND_FLAG,
  json: { type: "boolean", help: "print only a JSON summary on stdout (the rest goes to stderr)" },
};

/** The flags of `inspect`. */
export const INSPECT_FLAGS: Record<string, FlagSpec> = {
  json: { type: "boolean", help: "print only a JSON summary on stdout (the rest goes to stderr)" },
};

/**
 * The merged file's metadata: a wgrad base whose new head came from the adapter records it, so
 * the merged model loads as the classifier it now is.
 */
function mergedMetadata(
  base: Readonly<Record<string, string>>,
  added: readonly string[],
  shapes: Readonly<Record<string, readonly number[]>>,
): Record<string, string> {
  const raw = base[GPT_METADATA_KEY];
  const head = shapes["classifier.weight"];
  if (raw === undefined || !added.includes("classifier.weight") || head === undefined) {
    return { ...base };
  }
  const config = JSON.parse(raw);
  return {
    ...base,
    [GPT_METADATA_KEY]: JSON.stringify({ ...config, head: "classifier", numClasses: head[0] }),
  };
}

/** The runner `--backend` names; an explicit `runner` (tests, embedders) takes precedence. */
function mergeRunner(
  command: string,
  values: Record<string, unknown>,
  runner?: MergeRunner,
): MergeRunner {
  let choice: BackendChoice;
  try {
    choice = parseBackend(values.backend, `${command}: --backend`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return runner ?? (choice === "cpu" ? cpuMergeRunner : backendMergeRunner(choice));
}

async function weightShapes(base: string): Promise<Record<string, number[]>> {
  const reader = await openSafetensors(base);
  reader.close();
  return Object.fromEntries(reader.header.tensors.map((t) => [t.name, [...t.shape]]));
}

/** `merge`: fold an adapter into a base model file (on `--backend`, default webgpu). */
export async function mergeCommand(args: readonly string[], runner?: MergeRunner): Promise<void> {
  const { values } = parseFlags("merge", args, MERGE_FLAGS);
  const merger = mergeRunner("merge", values, runner);
  const base = required(values, "base", "merge");
  const out = required(values, "out", "merge");
  const adapterPath = required(values, "adapter", "merge");
  await checkOutput("merge", out, { "--base": base, "--adapter": adapterPath }, !!values.force);
  if (base.startsWith("hf:") || await isDirectory(base)) {
    // A Hugging Face directory: the merged model is one too.
    const hf = await mergeHf(await loadBase(base), adapterPath, out, merger);
    humanOutput(values)(hf.line);
    if (values.json) console.log(JSON.stringify(hf.json));
    return;
  }
  const { adapter, tensors, shapes } = await loadAdapter(adapterPath, await weightShapes(base));
  const report = await exportMerged({
    base,
    out,
    adapter,
    adapterParams: tensors,
    savedShapes: shapes,
    runner: merger,
    metadata: mergedMetadata,
  });
  humanOutput(values)(
    `merged ${report.merged.length} weights (${adapter.kind}), replaced ${report.replaced.length}, ` +
      `added ${report.added.length}, copied ${report.copied.length} unchanged → ${out}`,
  );
  if (values.json) console.log(JSON.stringify({ out, kind: adapter.kind, ...report }));
}

/** `export`: rewrite an adapter as PEFT, compact or zip. */
export async function exportCommand(args: readonly string[], runner?: MergeRunner): Promise<void> {
  const { values } = parseFlags("export", args, EXPORT_FLAGS);
  const merger = mergeRunner("export", values, runner);
  const dir = required(values, "adapter", "export");
  const out = required(values, "out", "export");
  const format = required(values, "format", "export");
  if (!["peft", "compact", "zip"].includes(format)) {
    throw new UsageError(`export: --format must be peft, compact or zip, got "${format}"`);
  }
  if (!(await isDirectory(dir))) {
    throw new UsageError(`export: --adapter must be a PEFT adapter directory`);
  }
  const mergedBaseFlag = values["merged-base"];
  await checkOutput(
    "export",
    out,
    {
      "--adapter": dir,
      "--merged-base": typeof mergedBaseFlag === "string" ? mergedBaseFlag : undefined,
    },
    !!values.force,
    format === "peft" ? "dir" : "file",
  );
  const files = await readPeft(dir);
  // The checks a merge makes, against the adapter itself (and below, against --merged-base).
  resolveAdapter(peftSource(files, dir));
  const raw = {
    "adapter_config.json": await Deno.readFile(`${dir}/adapter_config.json`),
    "adapter_model.safetensors": await Deno.readFile(`${dir}/adapter_model.safetensors`),
  };
  let bytes = 0;
  if (format === "peft") {
    await writeDirAtomic(out, raw, { keepOthers: !!values.force });
    bytes = raw["adapter_config.json"].length + raw["adapter_model.safetensors"].length;
  } else if (format === "compact") {
    const compact = compactFromPeft(files, dir);
    await writeFileAtomic(out, compact);
    bytes = compact.length;
  } else {
    const bundleFiles: Record<string, Uint8Array> = {
      "adapter/adapter_config.json": raw["adapter_config.json"],
      "adapter/adapter_model.safetensors": raw["adapter_model.safetensors"],
    };
    const mergedBase = values["merged-base"];
    if (typeof mergedBase === "string") {
      const tmp = await Deno.makeTempFile({ suffix: ".safetensors" });
      try {
        const resolved = resolveAdapter(peftSource(files, dir), await weightShapes(mergedBase));
        await exportMerged({
          base: mergedBase,
          out: tmp,
          adapter: resolved.adapter,
          adapterParams: resolved.tensors,
          savedShapes: files.shapes,
          runner: merger,
          metadata: mergedMetadata,
        });
        bundleFiles["merged.safetensors"] = await Deno.readFile(tmp);
      } finally {
        await Deno.remove(tmp).catch(() => {});
      }
    }
    const manifest = {
      format: "wgrad-bundle/1",
      kind: files.kind,
      peft_type: files.config.peft_type,
      r: files.config.r,
      files: Object.keys(bundleFiles).sort(),
    };
    await writeBundle(out, { files: bundleFiles, manifest });
    bytes = (await Deno.stat(out)).size;
  }
  humanOutput(values)(
    `wrote ${format} adapter (${files.kind}, ${bytes.toLocaleString("en-US")} bytes) → ${out}`,
  );
  if (values.json) console.log(JSON.stringify({ out, format, kind: files.kind, bytes }));
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** `inspect`: a readable summary of a safetensors file, adapter directory or bundle. */
export async function inspectCommand(args: readonly string[]): Promise<void> {
  const { values, positionals } = parseFlags("inspect", args, INSPECT_FLAGS);
  if (positionals.length !== 1) throw new UsageError("inspect: give exactly one file or directory");
  const [path] = positionals;
  const say = humanOutput(values);
  let summary: Record<string, unknown>;
  if (await isDirectory(path)) {
    const files = await readPeft(path);
    const params = Object.values(files.tensors).reduce((n, t) => n + t.length, 0);
    say(
      `${path}: PEFT ${files.kind === "vera" ? "VeRA" : "LoRA"} adapter, r=${files.config.r}, ` +
        `target_modules=${JSON.stringify(files.config.target_modules)}`,
    );
    for (const [name, shape] of Object.entries(files.shapes).sort()) {
      say(`  ${name.padEnd(48)} F32 ${shapeText(shape)}`);
    }
    say(`  ${Object.keys(files.tensors).length} tensors, ${params.toLocaleString("en-US")} values`);
    summary = {
      path,
      type: "peft-adapter",
      kind: files.kind,
      r: files.config.r,
      tensors: Object.keys(files.tensors).length,
      values: params,
    };
  } else if (path.endsWith(".zip")) {
    // The directory and the manifest only: entry data is never read to list a bundle.
    const bundle = await listBundle(path);
    say(`${path}: bundle, manifest ${JSON.stringify(bundle.manifest)}`);
    for (const { name, bytes } of bundle.entries) say(`  ${name.padEnd(48)} ${bytes} bytes`);
    summary = {
      path,
      type: "bundle",
      manifest: bundle.manifest,
      entries: bundle.entries.length,
    };
  } else {
    // The header alone: names, dtypes and shapes never need the data, however large the file.
    const reader = await openSafetensors(path);
    reader.close();
    const { header } = reader;
    const size = await regularFileSize(path, "safetensors file");
    const compact = header.metadata[COMPACT_METADATA_KEY] !== undefined;
    say(
      `${path}: safetensors${
        compact ? " (compact adapter)" : ""
      }, ${header.tensors.length} tensors, ${size} bytes`,
    );
    for (const [k, v] of Object.entries(header.metadata)) {
      say(`  metadata ${k} = ${v.length > 120 ? v.slice(0, 117) + "..." : v}`);
    }
    let count = 0;
    for (const t of header.tensors) {
      count += t.shape.reduce((a, b) => a * b, 1);
      say(`  ${t.name.padEnd(48)} ${t.dtype.padEnd(4)} ${shapeText(t.shape)}`);
    }
    summary = {
      path,
      type: compact ? "compact-adapter" : "safetensors",
      tensors: header.tensors.length,
      values: count,
      bytes: size,
    };
  }
  if (values.json) console.log(JSON.stringify(summary));
}
