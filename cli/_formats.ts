/** The `merge`, `export` and `inspect` commands. */
import { openSafetensors, readSafetensors } from "../io/safetensors.ts";
import { readBundle, writeBundle } from "../io/bundle.ts";
import { writeDirAtomic, writeFileAtomic } from "../io/atomic.ts";
import { readPeft } from "../adapters/peft_import.ts";
import { adapterFromPeft, exportMerged } from "../adapters/export.ts";
import { adapterFromCompact, COMPACT_METADATA_KEY, compactFromPeft } from "../adapters/compact.ts";
import { type Adapter, cpuMergeRunner, type MergeRunner } from "../adapters/merge.ts";
import { webgpuMergeRunner } from "../adapters/gpu_merge.ts";
import { type FlagSpec, parseFlags, required, UsageError } from "./_args.ts";
import { mergeHf } from "./_merge_hf.ts";
import { loadBase } from "./_task.ts";

/** Where the merge graph runs, by `--backend` name. */
const MERGE_RUNNERS: Readonly<Record<string, MergeRunner>> = {
  webgpu: webgpuMergeRunner,
  cpu: cpuMergeRunner,
};

const BACKEND_FLAG: FlagSpec = {
  type: "string",
  help: "where the merge runs: webgpu (navigator.gpu) | cpu (f32 reference)",
  default: "webgpu",
};

/** The flags of `merge`. */
export const MERGE_FLAGS: Record<string, FlagSpec> = {
  base: { type: "string", help: "base model: safetensors file or Hugging Face directory" },
  adapter: { type: "string", help: "adapter: PEFT directory or compact .safetensors" },
  out: { type: "string", help: "merged model to write (a directory for a Hugging Face base)" },
  backend: BACKEND_FLAG,
  json: { type: "boolean", help: "print a JSON summary as the last line" },
};

/** The flags of `export`. */
export const EXPORT_FLAGS: Record<string, FlagSpec> = {
  adapter: { type: "string", help: "adapter: PEFT directory" },
  format: { type: "string", help: "peft | compact | zip" },
  out: { type: "string", help: "where to write" },
  "merged-base": { type: "string", help: "zip only: also bundle the model merged into this base" },
  backend: BACKEND_FLAG,
  json: { type: "boolean", help: "print a JSON summary as the last line" },
};

/** The flags of `inspect`. */
export const INSPECT_FLAGS: Record<string, FlagSpec> = {
  json: { type: "boolean", help: "print a JSON summary as the last line" },
};

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    throw new UsageError(`cannot open ${path}: ${(e as Error).message}`);
  }
}

/** Loads an adapter (PEFT directory or compact file) against a base model's weight shapes. */
export async function loadAdapter(
  path: string,
  weights: Record<string, number[]>,
): Promise<{ adapter: Adapter; tensors: Record<string, Float32Array> }> {
  if (await isDirectory(path)) {
    const files = await readPeft(path);
    return { adapter: adapterFromPeft(files, weights), tensors: files.tensors };
  }
  return adapterFromCompact(await Deno.readFile(path), weights);
}

/** The runner `--backend` names; an explicit `runner` (tests, embedders) takes precedence. */
function mergeRunner(
  command: string,
  values: Record<string, unknown>,
  runner?: MergeRunner,
): MergeRunner {
  const name = String(values.backend);
  if (!Object.hasOwn(MERGE_RUNNERS, name)) {
    throw new UsageError(
      `${command}: --backend must be ${Object.keys(MERGE_RUNNERS).join(" or ")}, got "${name}"`,
    );
  }
  return runner ?? MERGE_RUNNERS[name];
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
  if (base.startsWith("hf:") || await isDirectory(base)) {
    // A Hugging Face directory: the merged model is one too.
    const hf = await mergeHf(
      await loadBase(base),
      required(values, "adapter", "merge"),
      out,
      merger,
    );
    console.log(hf.line);
    if (values.json) console.log(JSON.stringify(hf.json));
    return;
  }
  const { adapter, tensors } = await loadAdapter(
    required(values, "adapter", "merge"),
    await weightShapes(base),
  );
  const report = await exportMerged({
    base,
    out,
    adapter,
    adapterParams: tensors,
    runner: merger,
  });
  console.log(
    `merged ${report.merged.length} weights (${adapter.kind}), replaced ${report.replaced.length}, ` +
      `copied ${report.copied.length} unchanged → ${out}`,
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
  const files = await readPeft(dir);
  const raw = {
    "adapter_config.json": await Deno.readFile(`${dir}/adapter_config.json`),
    "adapter_model.safetensors": await Deno.readFile(`${dir}/adapter_model.safetensors`),
  };
  let bytes = 0;
  if (format === "peft") {
    await writeDirAtomic(out, raw);
    bytes = raw["adapter_config.json"].length + raw["adapter_model.safetensors"].length;
  } else if (format === "compact") {
    const compact = compactFromPeft(files);
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
        const adapter = adapterFromPeft(files, await weightShapes(mergedBase));
        await exportMerged({
          base: mergedBase,
          out: tmp,
          adapter,
          adapterParams: files.tensors,
          runner: merger,
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
  console.log(
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
  let summary: Record<string, unknown>;
  if (await isDirectory(path)) {
    const files = await readPeft(path);
    const params = Object.values(files.tensors).reduce((n, t) => n + t.length, 0);
    console.log(
      `${path}: PEFT ${files.kind === "vera" ? "VeRA" : "LoRA"} adapter, r=${files.config.r}, ` +
        `target_modules=${JSON.stringify(files.config.target_modules)}`,
    );
    for (const [name, shape] of Object.entries(files.shapes).sort()) {
      console.log(`  ${name.padEnd(48)} F32 ${shapeText(shape)}`);
    }
    console.log(
      `  ${Object.keys(files.tensors).length} tensors, ${params.toLocaleString("en-US")} values`,
    );
    summary = {
      path,
      type: "peft-adapter",
      kind: files.kind,
      r: files.config.r,
      tensors: Object.keys(files.tensors).length,
      values: params,
    };
  } else if (path.endsWith(".zip")) {
    const bundle = await readBundle(path);
    console.log(`${path}: bundle, manifest ${JSON.stringify(bundle.manifest)}`);
    for (const [name, bytes] of Object.entries(bundle.files).sort()) {
      console.log(`  ${name.padEnd(48)} ${bytes.length} bytes`);
    }
    summary = {
      path,
      type: "bundle",
      manifest: bundle.manifest,
      entries: Object.keys(bundle.files).length,
    };
  } else {
    const file = await readSafetensors(path);
    const size = (await Deno.stat(path)).size;
    const compact = file.metadata[COMPACT_METADATA_KEY] !== undefined;
    console.log(
      `${path}: safetensors${
        compact ? " (compact adapter)" : ""
      }, ${file.tensors.size} tensors, ${size} bytes`,
    );
    for (const [k, v] of Object.entries(file.metadata)) {
      console.log(`  metadata ${k} = ${v.length > 120 ? v.slice(0, 117) + "..." : v}`);
    }
    let count = 0;
    for (const [name, t] of file.tensors) {
      count += t.data.length;
      console.log(`  ${name.padEnd(48)} ${t.dtype.padEnd(4)} ${shapeText(t.shape)}`);
    }
    summary = {
      path,
      type: compact ? "compact-adapter" : "safetensors",
      tensors: file.tensors.size,
      values,
      bytes: size,
    };
  }
  if (values.json) console.log(JSON.stringify(summary));
}
