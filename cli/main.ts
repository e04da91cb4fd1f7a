/**
 * The command line's dispatcher, behind `cli.ts`: `deno run -A cli.ts <command> [flags]`
 * (or `deno task cli`).
 * Every command prints one `error:` line and exits 1 on bad input, leaving no
 * partial output behind (files are written atomically).
 *
 * @module
 */
import { flagHelp, UsageError } from "./_args.ts";
import {
  EXPORT_FLAGS,
  exportCommand,
  INSPECT_FLAGS,
  inspectCommand,
  MERGE_FLAGS,
  mergeCommand,
} from "./formats.ts";
import { BENCH_FLAGS, benchCommand } from "./bench.ts";
import { DEMO_FLAGS, demoCommand } from "./demo.ts";
import { GENERATE_FLAGS, generateCommand } from "./generate.ts";
import { FINETUNE_FLAGS, finetuneCommand, PRETRAIN_FLAGS, pretrainCommand } from "./train.ts";
import { PREDICT_FLAGS, predictCommand } from "./predict.ts";
import { EVAL_FLAGS, evalCommand } from "./eval.ts";
import { RunStopped } from "./_interrupt.ts";

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly flags?: Record<string, import("./_args.ts").FlagSpec>;
  readonly run?: (args: readonly string[]) => Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: "fine-tune a spam classifier with VeRA from the committed base model",
    usage: "demo [--steps 150 --batch 16 --r 256 --out runs/demo --backend webgpu]",
    flags: DEMO_FLAGS,
    run: (args) => demoCommand(args),
  },
  pretrain: {
    summary: "pretrain the reference GPT as a byte-level language model",
    usage: "pretrain --data spam|names --out FILE",
    flags: PRETRAIN_FLAGS,
    run: (args) => pretrainCommand(args),
  },
  finetune: {
    summary: "fine-tune a classifier or language model with vera|lora|full|head",
    usage:
      "finetune --base FILE_OR_DIR --data spam|names|FILE --method vera|lora|full|head --out DIR",
    flags: FINETUNE_FLAGS,
    run: (args) => finetuneCommand(args),
  },
  predict: {
    summary: "label every example of a data file (with probabilities), or score its texts",
    usage: "predict --base FILE_OR_DIR [--adapter DIR] --data FILE [--json]",
    flags: PREDICT_FLAGS,
    run: (args) => predictCommand(args),
  },
  eval: {
    summary: "accuracy, per-class F1 and confusion matrix, or loss and perplexity, on a data file",
    usage: "eval --base FILE_OR_DIR [--adapter DIR] --data FILE [--json]",
    flags: EVAL_FLAGS,
    run: (args) => evalCommand(args),
  },
  merge: {
    summary: "fold an adapter into a base model",
    usage: "merge --base FILE --adapter DIR_OR_FILE --out FILE",
    flags: MERGE_FLAGS,
    run: (args) => mergeCommand(args),
  },
  export: {
    summary: "write an adapter as peft, compact or zip",
    usage: "export --adapter DIR --format peft|compact|zip --out PATH",
    flags: EXPORT_FLAGS,
    run: (args) => exportCommand(args),
  },
  generate: {
    summary: "continue a prompt with a model (KV-cached, streaming)",
    usage: "generate --base DIR_OR_FILE [--adapter PATH] --prompt TEXT [--max-new-tokens N " +
      "--temperature T --top-k K --top-p P --seed S --backend webgpu|cpu --json]",
    flags: GENERATE_FLAGS,
    run: (args) => generateCommand(args),
  },
  inspect: {
    summary: "summarise a safetensors file, adapter directory or bundle",
    usage: "inspect FILE_OR_DIR",
    flags: INSPECT_FLAGS,
    run: (args) => inspectCommand(args),
  },
  bench: {
    summary: "benchmark one training step of vera|lora|full",
    usage: "bench step --method vera|lora|full",
    flags: BENCH_FLAGS,
    run: (args) => benchCommand(args),
  },
};

const DEMO_PLAN = `deno task demo will load the committed pretrained base model, fine-tune a
spam-assassin classifier with VeRA on the default WebGPU adapter, print accuracy before
and after, trainable parameters against LoRA and full fine-tuning and the adapter's size
on disk, and write a run directory (metrics, loss plot, PEFT-format adapter, merged model).`;

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `wgrad — fine-tune GPT-style models with VeRA on WebGPU\n\nusage: deno task cli <command> [flags]\n` +
    `       deno task cli <command> --help\n\ncommands:\n${lines.join("\n")}`;
}

/**
 * Runs the CLI with `args`; resolves to the process exit code.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { main } from "./main.ts";
 * strictEqual(await main(["--help"]), 0);
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined) {
    // No command is a usage error: the usage goes to stderr and the exit status says so.
    console.error(usage());
    return 1;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    console.error(`error: unknown command "${name}" (try --help)`);
    return 1;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(
      `usage: deno task cli ${command.usage}\n\n${command.summary}\n\n${
        flagHelp(command.flags ?? {})
      }`,
    );
    return 0;
  }
  if (command.run === undefined) {
    if (name === "demo") console.log(DEMO_PLAN);
    console.error(`error: ${name} is not available yet`);
    return 1;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof RunStopped) {
      console.error(`${e.message}\nresume with:\n  ${e.resume}`);
      return e.exitCode;
    }
    const message = e instanceof Error ? e.message : String(e);
    // One line, always: the first line of the message, prefixed.
    console.error(`error: ${message.split("\n")[0]}`);
    if (!(e instanceof UsageError) && Deno.env.get("WGRAD_DEBUG")) console.error(e);
    return 1;
  }
}
