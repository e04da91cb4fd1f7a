/**
 * The programs the interop check runs: the Python that has torch and PEFT, and this project's
 * command line, both from the repository root.
 *
 * @module
 */

/** The repository root. */
export const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
/** The Python with torch, peft and safetensors (interop/README.md). */
export const PYTHON = Deno.env.get("WGRAD_INTEROP_PYTHON") ?? `${ROOT}/.venv-interop/bin/python`;

/**
 * Runs `cmd` in the repository root and returns its stdout and stderr; a failure throws with that
 * text unless `allowFailure` (a Python check that fails still wrote its results).
 *
 * @example
 * ```ts
 * import { rejects, strictEqual } from "node:assert/strict";
 * import { run } from "./_process.ts";
 * strictEqual(await run("echo", ["hi"]), "hi\n");
 * await rejects(run("false", []), /false {2}failed \(1\)/);
 * strictEqual(await run("false", [], true), "");
 * ```
 */
export async function run(cmd: string, args: string[], allowFailure = false): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success && !allowFailure) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${text}`);
  }
  return text;
}

/**
 * Runs `cli.ts` with `args` (`merge`, `inspect`) and returns its output.
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { cli } from "./_process.ts";
 * await rejects(cli("no-such-command"), /failed/);
 * ```
 */
export function cli(...args: string[]): Promise<string> {
  return run(Deno.execPath(), ["run", "-A", `${ROOT}/cli.ts`, ...args]);
}
