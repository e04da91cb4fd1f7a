// Target selection equals PEFT's check_target_module_exists on a table of module paths x configs
// whose answers PEFT itself produced (interop/make_target_table.py writes golden/peft_targets.json).
import { deepEqual, equal } from "node:assert/strict";
import { isTargetModule, type TargetConfig } from "../../adapters/targets.ts";

interface PeftCase {
  config: Record<string, unknown>;
  targeted: boolean[];
}

const table = JSON.parse(
  await Deno.readTextFile(new URL("./golden/peft_targets.json", import.meta.url)),
) as { peft_version: string; paths: string[]; cases: PeftCase[] };

function camel(config: Record<string, unknown>): TargetConfig {
  return {
    targetModules: config.target_modules as string[] | string,
    ...(config.layers_to_transform != null
      ? { layersToTransform: config.layers_to_transform as number[] | number }
      : {}),
    ...(config.layers_pattern != null
      ? { layersPattern: config.layers_pattern as string[] | string }
      : {}),
    ...(config.exclude_modules != null
      ? { excludeModules: config.exclude_modules as string[] | string }
      : {}),
    ...(config.modules_to_save != null
      ? { modulesToSave: config.modules_to_save as string[] }
      : {}),
  };
}

Deno.test(`target selection equals PEFT ${table.peft_version}'s check_target_module_exists`, async (t) => {
  equal(table.cases.length > 20 && table.paths.length > 20, true);
  for (const { config, targeted } of table.cases) {
    await t.step(JSON.stringify(config), () => {
      const ours = table.paths.map((path) => isTargetModule(path, camel(config)));
      const differ = table.paths.filter((_, i) => ours[i] !== targeted[i]);
      deepEqual(differ, [], `paths where wgrad and PEFT disagree`);
    });
  }
});
