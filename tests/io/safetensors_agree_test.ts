// The reader and the writer agree: every file the reader accepts, the writer writes back to the
// same tensors and metadata; what the writer refuses, the reader refuses too.
import { deepEqual } from "node:assert/strict";
import fc from "fast-check";
import { decodeSafetensors, encodeSafetensors, type TensorInput } from "../../io/safetensors.ts";

const valid = encodeSafetensors(
  {
    f: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, -2, 3.5, 0]) },
    b: { dtype: "BOOL", shape: [3], data: new Uint8Array([0, 1, 1]) },
    h: { dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0x7e00]) },
    i: { dtype: "I64", shape: [1], data: new BigInt64Array([-5n]) },
    u: { dtype: "U8", shape: [0], data: new Uint8Array(0) },
  },
  { note: "x" },
);

function rewrite(bytes: Uint8Array): Uint8Array | undefined {
  let file;
  try {
    file = decodeSafetensors(bytes);
  } catch {
    return undefined; // refused: nothing to agree on
  }
  const tensors: Record<string, TensorInput> = {};
  for (const [name, t] of file.tensors) tensors[name] = t as TensorInput;
  // The writer must accept whatever the reader accepted; reading that back and writing it again
  // gives the same bytes (byte comparison, as NaN elements never compare equal).
  const first = encodeSafetensors(tensors, file.metadata);
  const again = decodeSafetensors(first);
  // The writer adds PyTorch's "format": "pt" when the metadata has no "format".
  deepEqual(again.metadata, { format: "pt", ...file.metadata });
  deepEqual([...again.tensors.keys()], [...file.tensors.keys()]);
  const second: Record<string, TensorInput> = {};
  for (const [name, t] of again.tensors) second[name] = t as TensorInput;
  deepEqual(encodeSafetensors(second, again.metadata), first);
  return bytes;
}

Deno.test("safetensors reader and writer agree on mutated files", () => {
  rewrite(valid);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      (edits) => {
        const bytes = valid.slice();
        for (const [at, value] of edits) bytes[at] = value;
        rewrite(bytes);
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("safetensors reader and writer agree on edited headers", () => {
  const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));
  const printable = fc.constantFrom(...' "{}[],:0123456789-.eEabfhinorstuxFIU_\\'.split(""));
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 8, max: headerEnd - 1 }), printable), {
        minLength: 1,
        maxLength: 3,
      }),
      (edits) => {
        const bytes = valid.slice();
        for (const [at, ch] of edits) bytes[at] = ch.charCodeAt(0);
        if (rewrite(bytes) !== undefined) accepted++;
      },
    ),
    { numRuns: 3000 },
  );
  // Enough edits are accepted (renamed keys, changed values) for the check to mean something.
  deepEqual(accepted > 30, true, `${accepted} accepted`);
});
