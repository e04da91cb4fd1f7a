import { doesNotThrow, throws } from "node:assert/strict";
import { describePeftConfig } from "../../adapters/peft_config.ts";

const lora = (extra: Record<string, unknown>) =>
  describePeftConfig({ peft_type: "LORA", r: 2, target_modules: ["q"], ...extra }, "a.json");
const vera = (extra: Record<string, unknown>) =>
  describePeftConfig({ peft_type: "VERA", r: 2, target_modules: ["q"], ...extra }, "a.json");

Deno.test("init_lora_weights that rewrite the base (PiSSA, OLoRA, CorDA, LoftQ, LoRA-GA) are refused", async (t) => {
  for (const init of ["pissa", "pissa_niter_4", "olora", "corda", "loftq", "lora_ga"]) {
    await t.step(init, () => {
      throws(() => lora({ init_lora_weights: init }), /"init_lora_weights" is .*rewrites the base/);
    });
  }
  await t.step("plain initialisations are accepted", () => {
    for (const init of [true, false, "gaussian", "eva", "orthogonal", "mica", null]) {
      doesNotThrow(() => lora({ init_lora_weights: init }), String(init));
    }
  });
  await t.step("an unknown initialisation is refused", () => {
    throws(() => lora({ init_lora_weights: "new_method" }), /not a known initialisation/);
  });
});

Deno.test("VeRA configs: options that are not VeRA's are refused by name unless off", () => {
  for (const [field, value] of [["use_dora", true], ["foo", 1], ["exclude_modules", ["q"]]]) {
    throws(() => vera({ [field as string]: value }), new RegExp(`"${field}" is not a VeRA option`));
  }
  doesNotThrow(() => vera({ use_dora: false, foo: null, exclude_modules: [] }));
  doesNotThrow(() => vera({ save_projection: true, init_weights: true, vera_dropout: 0.1 }));
});
