/** Flag parsing for the command line: strict (unknown flags are errors), typed, with clear messages. */
import { parseArgs } from "node:util";

/** A flag's declaration: its type, an optional default and a one-line help text. */
export interface FlagSpec {
  /** `string` flags take a value; `boolean` flags do not. */
  readonly type: "string" | "boolean";
  /** Shown in `--help`. */
  readonly help: string;
  /** Value when absent. */
  readonly default?: string | boolean;
}

/** The thrown type for bad command lines: printed as one `error:` line. */
export class UsageError extends Error {}

/** Parses `args` against `flags`; throws UsageError naming the bad flag. */
export function parseFlags(
  command: string,
  args: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(flags).map((
      [name, spec],
    ) => [name, {
      type: spec.type,
      ...(spec.default !== undefined ? { default: spec.default } : {}),
    }]),
  );
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: options as never,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message.replace(/\. To specify.*$/s, "")}`);
  }
}

/** A required string flag. */
export function required(values: Record<string, unknown>, name: string, command: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`${command}: --${name} is required`);
  return v;
}

/** An integer flag ≥ `min`. */
export function intFlag(
  values: Record<string, unknown>,
  name: string,
  min = 1,
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  }
  return n;
}

/** A finite number flag. */
export function numberFlag(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name} must be a number, got "${v}"`);
  }
  return n;
}

/** The help text of a command's flags. */
export function flagHelp(flags: Readonly<Record<string, FlagSpec>>): string {
  return Object.entries(flags).map(([name, spec]) =>
    `  --${name}${spec.type === "string" ? " VALUE" : ""}`.padEnd(26) + spec.help +
    (spec.default !== undefined && spec.type === "string" ? ` (default ${spec.default})` : "")
  ).join("\n");
}
