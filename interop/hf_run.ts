/**
 * Interop check of fine-tuning Hugging Face checkpoints: for the tiny transformers fixtures
 * (GPT-2, Llama with GQA, Qwen2 in BF16) this fine-tunes VeRA and LoRA adapters with `cli
 * finetune` (a three-class classifier and a prompt/completion language model), merges them with
 * `cli merge` into Hugging Face directories, and lets `interop/hf_check.py` load everything with
 * transformers + PEFT: the adapters load with no missing or unexpected keys, PEFT's
 * `merge_and_unload` equals our merged directory, which loads with `from_pretrained` and gives the
 * adapted model's logits, and `cli predict` gives the adapted model's probabilities.
 *
 *   deno run -A interop/hf_run.ts [--keep]
 *
 * @module
 */
const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const PYTHON = Deno.env.get("WGRAD_INTEROP_PYTHON") ?? `${ROOT}/.venv-interop/bin/python`;
const FIXTURES = ["tiny-gpt2", "tiny-llama", "tiny-qwen2"];
const SEQ = 12;

interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly maxAbs?: number;
  readonly detail?: string;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed:\n${text}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

const cli = (...args: string[]) => run(Deno.execPath(), ["run", "-A", `${ROOT}/cli.ts`, ...args]);

/** Three classes of short texts, labels as strings. */
function classificationData(): string {
  const words: Record<string, string[]> = {
    colour: ["red", "blue", "green", "white"],
    fruit: ["apple", "pear", "fig", "plum"],
    number: ["one", "two", "six", "ten"],
  };
  return Object.entries(words).flatMap(([label, list]) =>
    list.map((w, i) => JSON.stringify({ text: `a ${w} thing ${i}`, label }))
  ).join("\n") + "\n";
}

function lmData(): string {
  return Array.from(
    { length: 8 },
    (_, i) => JSON.stringify({ prompt: `question ${i}:`, completion: ` answer ${i * 7}` }),
  ).join("\n");
}

async function main(): Promise<number> {
  const keep = Deno.args.includes("--keep");
  const work = await Deno.makeTempDir({ prefix: "wgrad-hf-interop-" });
  const started = performance.now();
  let checks: Check[] = [];
  try {
    await Deno.stat(PYTHON).catch(() => {
      throw new Error(`no Python at ${PYTHON}; see interop/README.md or set WGRAD_INTEROP_PYTHON`);
    });
    await Deno.writeTextFile(`${work}/cls.jsonl`, classificationData());
    await Deno.writeTextFile(`${work}/lm.jsonl`, lmData());
    const texts = ["a red thing 0", "a fig thing 9", "one two six"];
    await Deno.writeTextFile(
      `${work}/predict.jsonl`,
      texts.map((text) => JSON.stringify({ text })).join("\n"),
    );
    const cases = [];
    for (const fixture of FIXTURES) {
      const base = `${ROOT}/tests/fixtures/hf/${fixture}`;
      for (const method of ["vera", "lora"]) {
        for (const task of ["classification", "lm"] as const) {
          const name = `${fixture} ${method} ${task}`;
          const dir = `${work}/${fixture}-${method}-${task}`;
          await cli(
            ...["finetune", "--base", base, "--method", method, "--out", dir, "--backend", "cpu"],
            ...["--data", `${work}/${task === "lm" ? "lm" : "cls"}.jsonl`, "--steps", "4"],
            ...["--batch", "4", "--seq", String(SEQ), "--r", method === "vera" ? "16" : "4"],
            ...["--lr", "0.05", "--log-every", "100"],
          );
          await cli(
            "merge",
            "--base",
            base,
            "--adapter",
            `${dir}/adapter`,
            "--out",
            `${dir}/merged`,
            "--backend",
            "cpu",
          );
          let predicted: number[][] | undefined;
          if (task === "classification") {
            const doc = JSON.parse(
              await cli(
                ...["predict", "--base", base, "--adapter", `${dir}/adapter`, "--seq", String(SEQ)],
                ...["--data", `${work}/predict.jsonl`, "--backend", "cpu", "--json"],
              ),
            );
            predicted = doc.predictions.map((p: { probabilities: Record<string, number> }) =>
              doc.labels.map((l: string) => p.probabilities[l])
            );
          }
          cases.push({
            name,
            base,
            task,
            adapter: `${dir}/adapter`,
            merged: `${dir}/merged`,
            num_labels: 3,
            seq: SEQ,
            texts,
            predicted,
            bf16: fixture === "tiny-qwen2",
          });
        }
      }
    }
    await Deno.writeTextFile(`${work}/cases.json`, JSON.stringify(cases, null, 1));
    const py = await run(PYTHON, [`${ROOT}/interop/hf_check.py`, work]).catch((e) => String(e));
    if (Deno.env.get("WGRAD_INTEROP_VERBOSE")) console.log(py);
    checks = JSON.parse(await Deno.readTextFile(`${work}/hf_result.json`)).checks;
  } catch (e) {
    checks.push({
      name: "run",
      ok: false,
      detail: (e as Error).message.split("\n").slice(0, 3).join(" "),
    });
  } finally {
    if (keep) console.log(`work directory kept: ${work}`);
    else await Deno.remove(work, { recursive: true });
  }
  for (const c of checks) {
    const value = c.maxAbs === undefined ? "" : ` max|Δ| ${c.maxAbs.toExponential(1)}`;
    console.log(`${c.ok ? "ok  " : "FAIL"} ${c.name}${value}${c.detail ? ` (${c.detail})` : ""}`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  console.log(
    `${checks.length - failed}/${checks.length} Hugging Face checks passed ` +
      `(${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
