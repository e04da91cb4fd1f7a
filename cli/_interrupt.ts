/** What the training commands print when Ctrl-C stops a run: the command that resumes it. */
import { relative } from "node:path";

/**
 * A run stopped on purpose (Ctrl-C) after saving its checkpoint: `cli.ts` prints the message and
 * the resume command, without `error:`, and exits 130 as shells expect after SIGINT.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { RunStopped } from "./_interrupt.ts";
 * const e = new RunStopped("interrupted at step 40", "deno run -A cli.ts finetune --resume");
 * strictEqual(e.exitCode, 130);
 * ```
 */
export class RunStopped extends Error {
  /** The command that continues the run. */
  readonly resume: string;
  /** The process exit status. */
  readonly exitCode = 130;

  /** Builds the report of a stopped run. */
  constructor(message: string, resume: string) {
    super(message);
    this.name = "RunStopped";
    this.resume = resume;
  }
}

// Words a POSIX shell takes literally; anything else is single-quoted.
const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quotes `word` for a POSIX shell.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { shellQuote } from "./_interrupt.ts";
 * strictEqual(shellQuote("runs/a"), "runs/a");
 * strictEqual(shellQuote("it's"), `'it'"'"'s'`);
 * ```
 */
export function shellQuote(word: string): string {
  return PLAIN.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}

/**
 * The command line that resumes a run started with `args`: the same flags, `--resume` added and
 * `--force` dropped (it would start over), run from the current directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resumeCommand } from "./_interrupt.ts";
 * const line = resumeCommand("finetune", ["--out", "runs/a b", "--force"]);
 * assert.match(line, /^deno run -A \S*cli\.ts finetune --out 'runs\/a b' --resume$/);
 * ```
 */
export function resumeCommand(command: string, args: readonly string[]): string {
  const path = new URL("../cli.ts", import.meta.url).pathname;
  // Relative when the run was started inside the repository, absolute from elsewhere.
  const near = relative(Deno.cwd(), path);
  const cli = near.startsWith("..") ? path : near;
  const kept = args.filter((a) => a !== "--force" && a !== "--resume");
  return ["deno", "run", "-A", cli, command, ...kept, "--resume"].map(shellQuote).join(" ");
}
