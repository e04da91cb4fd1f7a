/**
 * The command line: `deno run -A cli.ts <command> [flags]`. See `--help`.
 *
 * @module
 */

const USAGE = `wgrad — fine-tune GPT-style models with VeRA on WebGPU

usage: deno task cli <command> [flags]

commands:
  demo       fine-tune a spam classifier with VeRA (not available yet)
  pretrain   pretrain the reference GPT (not available yet)
  finetune   fine-tune with vera|lora|full|head (not available yet)
  merge      fold an adapter into base weights (not available yet)
  export     export an adapter as peft|compact|zip (not available yet)
  inspect    summarise a safetensors file, adapter dir or bundle (not available yet)
  bench      benchmark one training step (not available yet)

flags:
  --help     show this text`;

const DEMO_PLAN = `deno task demo will: load the committed pretrained base model, fine-tune a
spam-assassin classifier with VeRA on the default WebGPU adapter, print accuracy
before and after, trainable parameters against LoRA and full fine-tuning, the
adapter's size on disk, and write a run directory (metrics, loss plot,
PEFT-format adapter, merged model). It is not built yet (issue: training end to end).`;

/** Runs the CLI with `args`; returns the process exit code. */
export function main(args: readonly string[]): number {
  const [command] = args;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (command === "demo") {
    console.log(DEMO_PLAN);
    console.error("error: demo is not available yet");
    return 1;
  }
  const known = ["pretrain", "finetune", "merge", "export", "inspect", "bench"];
  console.error(
    known.includes(command)
      ? `error: ${command} is not available yet`
      : `error: unknown command "${command}" (try --help)`,
  );
  return 1;
}

if (import.meta.main) Deno.exit(main(Deno.args));
