// The strict reader's contract: every malformed file is a plain Error that
// says what is wrong and where, from both the in-memory and the file reader.

import assert from "node:assert/strict";
import { decodeSafetensors, readSafetensors } from "../../io/safetensors.ts";
import { assertCleanError, assertCleanRejection, withTempDir } from "./_helpers.ts";
import { MALFORMED_CASES, MALFORMED_DATA_CASES } from "./_malformed_cases.ts";

const cases = [...MALFORMED_CASES, ...MALFORMED_DATA_CASES];

Deno.test("malformed safetensors files are rejected with clear errors", async (t) => {
  assert.ok(cases.length >= 30, `only ${cases.length} cases`);
  for (const [name, file, pattern] of cases) {
    await t.step(`in memory: ${name}`, () => {
      const e = assertCleanError(() => decodeSafetensors(file), pattern);
      assert.match(e.message, /^safetensors: /);
    });
  }
  await withTempDir(async (dir) => {
    for (const [i, [name, file, pattern]] of cases.entries()) {
      await t.step(`from a file: ${name}`, async () => {
        const path = `${dir}/case${i}.safetensors`;
        await Deno.writeFile(path, file);
        const e = await assertCleanRejection(() => readSafetensors(path), pattern);
        assert.ok(e.message.includes(path), `message should name the file: ${e.message}`);
      });
    }
  });
});

Deno.test("a missing file is an OS error, not a format error", async () => {
  await assert.rejects(() => readSafetensors("/nonexistent/x.safetensors"), Deno.errors.NotFound);
});
