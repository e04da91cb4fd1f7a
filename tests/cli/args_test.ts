// Flags are strict: decimal values only, every value range-checked, a flag once, own names only.
import { equal, match, throws } from "node:assert/strict";
import fc from "fast-check";
import { type FlagSpec, intFlag, numberFlag, parseFlags, UsageError } from "../../cli/_args.ts";

const FLAGS: Record<string, FlagSpec> = {
  steps: { type: "string", help: "steps", default: "10" },
  lr: { type: "string", help: "lr" },
  mode: { type: "string", help: "mode", choices: ["fast", "slow"] },
  json: { type: "boolean", help: "json" },
};

const usage = (f: () => unknown, expected: RegExp) =>
  throws(f, (e: unknown) => e instanceof UsageError && expected.test((e as Error).message));

Deno.test("parseFlags", async (t) => {
  await t.step("prototype names are not flags", () => {
    for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"]) {
      usage(
        () => parseFlags("x", [`--${name}`, "1"], FLAGS),
        /x: unknown flag --\w+ \(flags: --steps, --lr, --mode, --json\)/,
      );
      usage(() => parseFlags("x", ["--mode", name], FLAGS), /--mode must be fast \| slow, got "/);
    }
  });

  await t.step("negative values parse in both spellings and reach the range check", () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: -1e-6, noNaN: true }), (v) => {
        const text = String(v);
        for (const args of [["--lr", text], [`--lr=${text}`]]) {
          const { values } = parseFlags("x", args, FLAGS);
          equal(values.lr, text);
          usage(
            () => numberFlag(values, "lr", { min: 0, minExclusive: true }),
            new RegExp(`--lr must be a finite number > 0, got ${text.replace(/[.+]/g, "\\$&")}$`),
          );
        }
      }),
    );
  });

  await t.step("a flag given twice is refused, in any spelling", () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.nat(1000), fc.boolean(), (a, b, eq) => {
        const args = eq
          ? [`--steps=${a}`, "--steps", String(b)]
          : ["--steps", String(a), `--steps=${b}`];
        usage(() => parseFlags("x", args, FLAGS), /x: --steps is given more than once/);
      }),
    );
    usage(() => parseFlags("x", ["--json", "--json"], FLAGS), /--json is given more than once/);
  });

  await t.step("switches take no value; values need one", () => {
    usage(
      () => parseFlags("x", ["--json=true"], FLAGS),
      /x: --json is a switch and takes no value/,
    );
    usage(() => parseFlags("x", ["--lr"], FLAGS), /x: --lr needs a value$/);
    usage(
      () => parseFlags("x", ["--lr", "-x"], FLAGS),
      /--lr needs a value; a value starting with "-" is written --lr=VALUE/,
    );
  });
});

Deno.test("intFlag accepts decimal integers only, within range", () => {
  fc.assert(
    fc.property(fc.integer({ min: -1e9, max: 1e9 }), (n) => {
      const values = { steps: String(n) };
      if (n >= 1) equal(intFlag(values, "steps"), n);
      else {usage(() =>
          intFlag(values, "steps"), new RegExp(`--steps must be an integer ≥ 1, got ${n}$`));}
    }),
  );
  // Anything but optional sign and digits: exponents, hex, spaces, fractions, words, empty.
  const notDecimal = fc.string({ maxLength: 8 }).filter((s) => !/^[+-]?\d+$/.test(s));
  fc.assert(
    fc.property(notDecimal, (s) => {
      usage(() => intFlag({ steps: s }, "steps"), /--steps must be a decimal integer, got "/);
    }),
  );
  for (const s of ["1e1", "0x3", " 3 ", "3.0", "0b1", "0o7", "Infinity", "", "1_000"]) {
    usage(() => intFlag({ steps: s }, "steps"), /must be a decimal integer/);
  }
  usage(() => intFlag({ steps: "99999999999999999999" }, "steps"), /must be an integer ≥ 1/);
  usage(() => intFlag({ r: "7" }, "r", 1, 4), /--r must be an integer in \[1, 4\], got 7/);
});

Deno.test("numberFlag: finite decimal numbers within the range, bounds as declared", () => {
  const dropout = { min: 0, max: 1, maxExclusive: true };
  equal(numberFlag({ p: "0" }, "p", dropout), 0);
  equal(numberFlag({ p: "0.999" }, "p", dropout), 0.999);
  usage(
    () => numberFlag({ p: "1" }, "p", dropout),
    /--p must be a finite number ≥ 0 and < 1, got 1$/,
  );
  usage(() => numberFlag({ p: "-0.5" }, "p", dropout), /got -0\.5$/);
  for (const s of ["NaN", "Infinity", "-Infinity", "0x10", "1,5", " 1", "1e", ".", "e5", ""]) {
    usage(() => numberFlag({ lr: s }, "lr"), /--lr must be a decimal number, got "/);
  }
  usage(() => numberFlag({ lr: "1e400" }, "lr"), /--lr must be a finite number, got 1e400/);
  fc.assert(
    fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => {
      const text = String(v);
      if (/[eE]/.test(text) || /^-?\d+(\.\d+)?$/.test(text)) {
        equal(numberFlag({ lr: text }, "lr"), v);
      }
    }),
  );
  match(String(numberFlag({ lr: "3e-4" }, "lr")), /^0\.0003$/);
});
