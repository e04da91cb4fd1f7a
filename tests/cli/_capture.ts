/** Runs the CLI in-process, capturing what it prints. */
import { main } from "../../cli/main.ts";

/** Exit code and printed lines of one CLI run. */
export interface CliRun {
  /** The exit code `main` resolved to. */
  code: number;
  /** Lines printed to stdout. */
  out: string[];
  /** Lines printed to stderr. */
  err: string[];
}

/** Calls `main(args)` with console.log/error captured. */
export async function runCli(args: string[]): Promise<CliRun> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await main(args), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** Runs `run` with stderr silenced; resolves to the lines it printed on stdout. */
export async function quietly(run: () => Promise<unknown>): Promise<string[]> {
  const out: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = () => {};
  try {
    await run();
    return out;
  } finally {
    console.log = log;
    console.error = error;
  }
}
