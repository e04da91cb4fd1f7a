/** `merge` into a Hugging Face directory: the base is a directory (or an `hf:` reference). */
import type { MergeRunner } from "../adapters/merge.ts";
import { readPeft } from "../adapters/peft_import.ts";
import { mergeToHfDir } from "../adapters/merge_hf.ts";
import type { LoadedModel } from "../nn/families.ts";
import { UsageError } from "./_args.ts";
import { loadAdapter } from "./_load_adapter.ts";

/** Graph-layout shapes of every weight the family's LM and classifier graphs use. */
function graphShapes(model: LoadedModel, classes: number): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const task of ["lm", "classification"] as const) {
    const g = model.family.graph(model.config, { batch: 1, seqLen: 1, task, numClasses: classes });
    for (const p of g.params) shapes[p.name!] ??= [...p.shape];
  }
  return shapes;
}

/**
 * Merges `adapterPath` into the loaded HF model and writes the directory `out`.
 * Returns the line `merge` prints and its JSON summary.
 */
export async function mergeHf(
  model: LoadedModel,
  adapterPath: string,
  out: string,
  runner: MergeRunner,
): Promise<{ line: string; json: Record<string, unknown> }> {
  const head = `${model.family.classificationHead}.weight`;
  let id2label: unknown, classes = 2;
  const isDir = await Deno.stat(adapterPath).then((s) => s.isDirectory, () => false);
  if (isDir) {
    const files = await readPeft(adapterPath).catch((e: Error) => {
      throw new UsageError(e.message);
    });
    id2label = files.config.id2label;
    const headShape = files.shapes[head];
    if (headShape) classes = headShape[0];
  }
  const shapes = graphShapes(model, classes);
  const { adapter, tensors } = await loadAdapter(adapterPath, shapes, { baseLayout: "graph" })
    .catch((e: Error) => {
      throw new UsageError(e.message);
    });
  const report = await mergeToHfDir(out, model, shapes, adapter, tensors, { runner, id2label });
  return {
    line:
      `merged ${report.merged.length} weights (${adapter.kind}), replaced ${report.replaced.length}, ` +
      `added ${report.added.length}, copied ${report.copied.length} unchanged → ${out}/ (Hugging Face directory)`,
    json: { out, kind: adapter.kind, format: "hf-dir", ...report },
  };
}
