/**
 * The command line: `deno run -A cli.ts <command> [flags]` (or `deno task cli`).
 * Every command prints one `error:` line and exits 1 on bad input, leaving no
 * partial output behind (files are written atomically). `deno task cli --help`
 * lists the commands.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { main } from "./cli.ts";
 * strictEqual(await main(["--help"]), 0);
 * ```
 *
 * @module
 */
import { main } from "./cli/main.ts";

export { main };

if (import.meta.main) Deno.exit(await main(Deno.args));
