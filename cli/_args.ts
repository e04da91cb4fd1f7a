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
  /** The only values a string flag accepts (checked by {@link parseFlags}). */
  readonly choices?: readonly string[];
  /** Whether the value is JSON (a `--config` file may then give it as a JSON object). */
  readonly json?: boolean;
}

/** The thrown type for bad command lines: printed as one `error:` line. */
export class UsageError extends Error {}

// A value that starts with "-" but is a number ("-1", "-0.5", "-.5", "-1e-3"): taken as the value of
// the string flag before it, so `--lr -1` reaches the range check instead of "argument is ambiguous".
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/** Rewrites `--name -1` as `--name=-1` for string flags, so negative numbers parse as values. */
function joinNegativeValues(
  args: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const name = arg.startsWith("--") && !arg.includes("=") ? arg.slice(2) : undefined;
    const next = args[i + 1];
    if (
      name !== undefined && Object.hasOwn(flags, name) && flags[name].type === "string" &&
      next !== undefined && NEGATIVE_NUMBER.test(next)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** node:util's messages, reworded for this command line (and without their node-specific advice). */
function usageMessage(command: string, message: string, flags: Readonly<Record<string, FlagSpec>>) {
  const unknown = message.match(/^Unknown option '(--?[^']*)'/);
  if (unknown) {
    const known = Object.keys(flags).map((f) => `--${f}`).join(", ");
    return `${command}: unknown flag ${unknown[1]} (flags: ${known})`;
  }
  const ambiguous = message.match(/^Option '--([^ ']+)(?: <value>)?' argument is ambiguous/);
  if (ambiguous) {
    const name = ambiguous[1];
    return `${command}: --${name} needs a value; a value starting with "-" is written --${name}=VALUE`;
  }
  const valued = message.match(/^Option '--([^ ']+)' does not take an argument/);
  if (valued) return `${command}: --${valued[1]} is a switch and takes no value`;
  const missing = message.match(/^Option '--([^ ']+) <value>' argument missing/);
  if (missing) return `${command}: --${missing[1]} needs a value`;
  return `${command}: ${message.replace(/\. To specify.*$/s, "")}`;
}

/**
 * Parses `args` against `flags`; throws UsageError naming the bad flag. Unknown flags, a flag
 * given twice, a missing value and a value outside a flag's `choices` are errors; `--x -1` and
 * `--x=-1` both give `-1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags } from "./_args.ts";
 * const flags = { lr: { type: "string" as const, help: "learning rate" } };
 * assert.equal(parseFlags("demo", ["--lr", "-1"], flags).values.lr, "-1");
 * assert.throws(() => parseFlags("demo", ["--lr", "1", "--lr", "2"], flags), /more than once/);
 * ```
 */
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
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args, flags),
      options: options as never,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
  } catch (e) {
    throw new UsageError(usageMessage(command, (e as Error).message, flags));
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option") continue;
    if (seen.has(token.name)) {
      throw new UsageError(`${command}: --${token.name} is given more than once`);
    }
    seen.add(token.name);
  }
  const values = { ...(parsed.values as object) } as Record<string, string | boolean | undefined>;
  if (Object.hasOwn(flags, "config") && typeof values.config === "string") {
    // The file fills in what the command line does not say: the command line wins.
    const fromFile = readConfigFile(command, values.config, flags);
    for (const [name, value] of Object.entries(fromFile)) {
      if (!seen.has(name)) values[name] = value;
    }
  }
  for (const [name, spec] of Object.entries(flags)) {
    const v = values[name];
    if (spec.choices !== undefined && typeof v === "string" && !spec.choices.includes(v)) {
      throw new UsageError(
        `${command}: --${name} must be ${spec.choices.join(" | ")}, got "${v}"`,
      );
    }
  }
  return { values, positionals: parsed.positionals };
}

/** The `--config` flag: a JSON file holding any of the command's other flags. */
export const CONFIG_FLAG: FlagSpec = {
  type: "string",
  help: 'a JSON file of flags, e.g. {"steps": 500, "lr": 0.01}; flags given here win',
};

/**
 * The flags a `--config` file sets: a JSON object whose keys are flag names (as on the command
 * line, without `--`). Numbers and strings are taken for flags with values, booleans for switches;
 * an unknown key or a value of the wrong type is an error naming the file and the key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readConfigFile } from "./_args.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, JSON.stringify({ steps: 30, resume: true }));
 * const flags = {
 *   steps: { type: "string" as const, help: "steps" },
 *   resume: { type: "boolean" as const, help: "resume" },
 * };
 * assert.deepEqual(readConfigFile("finetune", path, flags), { steps: "30", resume: true });
 * ```
 */
export function readConfigFile(
  command: string,
  path: string,
  flags: Readonly<Record<string, FlagSpec>>,
): Record<string, string | boolean> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new UsageError(`${command}: --config ${path}: ${why}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${command}: --config ${path}: must hold a JSON object of flags`);
  }
  const out: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!Object.hasOwn(flags, key) || key === "config") {
      const known = Object.keys(flags).filter((f) => f !== "config").join(", ");
      throw new UsageError(`${command}: --config ${path}: unknown key "${key}" (keys: ${known})`);
    }
    const spec = flags[key];
    if (spec.type === "boolean" && typeof value === "boolean") out[key] = value;
    else if (spec.type === "string" && (typeof value === "string" || Number.isFinite(value))) {
      out[key] = String(value);
    } else if (spec.json && typeof value === "object" && value !== null) {
      out[key] = JSON.stringify(value); // a flag whose value is JSON, written as JSON in the file
    } else {
      const wanted = spec.type === "boolean"
        ? "true or false"
        : `a string or a number${spec.json ? " or a JSON object" : ""}`;
      throw new UsageError(
        `${command}: --config ${path}: "${key}" must be ${wanted}, got ${JSON.stringify(value)}`,
      );
    }
  }
  return out;
}

/**
 * Where a command's human-readable lines go: stdout, or stderr under `--json`, so that stdout
 * holds one JSON document and nothing else.
 *
 * @example
 * ```ts
 * import { humanOutput } from "./_args.ts";
 * humanOutput({ json: true })("wrote 3 tensors"); // printed on stderr
 * ```
 */
export function humanOutput(values: Record<string, unknown>): (line: string) => void {
  return values.json ? (line) => console.error(line) : (line) => console.log(line);
}

/**
 * Throws unless `positionals` is empty: a command that takes only flags refuses a stray word
 * (often a value whose flag was mistyped or given twice) instead of ignoring it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noPositionals } from "./_args.ts";
 * noPositionals("finetune", []);
 * assert.throws(() => noPositionals("finetune", ["4"]), /unexpected argument "4"/);
 * ```
 */
export function noPositionals(command: string, positionals: readonly string[]): void {
  if (positionals.length > 0) {
    throw new UsageError(
      `${command}: unexpected argument "${positionals[0]}" (values are given as --flag VALUE)`,
    );
  }
}

/** A required string flag. */
export function required(values: Record<string, unknown>, name: string, command: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`${command}: --${name} is required`);
  return v;
}

const DECIMAL_INTEGER = /^[+-]?\d+$/;
const DECIMAL_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * An integer flag in `[min, max]`, written as a decimal integer (`1e1`, `0x3` and `" 3 "` are
 * refused); `undefined` when absent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intFlag } from "./_args.ts";
 * assert.equal(intFlag({ steps: "30" }, "steps"), 30);
 * assert.throws(() => intFlag({ steps: "1e1" }, "steps"), /decimal integer/);
 * assert.throws(() => intFlag({ steps: "0" }, "steps"), /≥ 1, got 0/);
 * ```
 */
export function intFlag(
  values: Record<string, unknown>,
  name: string,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !DECIMAL_INTEGER.test(v)) {
    throw new UsageError(`--${name} must be a decimal integer, got "${v}"`);
  }
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
    throw new UsageError(`--${name} must be an integer ${range}, got ${v}`);
  }
  return n;
}

/** The range a number flag must lie in; bounds are inclusive unless marked exclusive. */
export interface NumberRange {
  /** Lower bound. */
  readonly min?: number;
  /** Whether `min` itself is refused. */
  readonly minExclusive?: boolean;
  /** Upper bound. */
  readonly max?: number;
  /** Whether `max` itself is refused. */
  readonly maxExclusive?: boolean;
}

function rangeText(range: NumberRange): string {
  const parts: string[] = [];
  if (range.min !== undefined) parts.push(`${range.minExclusive ? ">" : "≥"} ${range.min}`);
  if (range.max !== undefined) parts.push(`${range.maxExclusive ? "<" : "≤"} ${range.max}`);
  return parts.join(" and ");
}

/**
 * A finite decimal number flag within `range`; `undefined` when absent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numberFlag } from "./_args.ts";
 * assert.equal(numberFlag({ lr: "3e-4" }, "lr", { min: 0, minExclusive: true }), 3e-4);
 * assert.throws(() => numberFlag({ lr: "-1" }, "lr", { min: 0, minExclusive: true }), /> 0, got -1/);
 * assert.throws(() => numberFlag({ lr: "0x3" }, "lr"), /decimal number/);
 * ```
 */
export function numberFlag(
  values: Record<string, unknown>,
  name: string,
  range: NumberRange = {},
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !DECIMAL_NUMBER.test(v)) {
    throw new UsageError(`--${name} must be a decimal number, got "${v}"`);
  }
  const n = Number(v);
  const low = range.min !== undefined && (range.minExclusive ? n <= range.min : n < range.min);
  const high = range.max !== undefined && (range.maxExclusive ? n >= range.max : n > range.max);
  if (!Number.isFinite(n) || low || high) {
    const text = rangeText(range);
    throw new UsageError(`--${name} must be a finite number${text ? ` ${text}` : ""}, got ${v}`);
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
