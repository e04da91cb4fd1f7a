"""Writes tests/adapters/golden/peft_targets.json: for module paths x adapter
configs, whether PEFT's own check_target_module_exists targets the module.
wgrad's adapters/targets.ts must give the same answers (tests/adapters/
targets_test.ts reads the table; no Python at test time).

    .venv-interop/bin/python interop/make_target_table.py
"""
import json
import pathlib

from types import SimpleNamespace

import peft
from peft.tuners.tuners_utils import check_target_module_exists

PATHS = [
    "q_proj",
    "attn.q_proj",
    "layers.0.attn.q_proj",
    "layers.1.attn.q_proj",
    "layers.1.attn.xq_proj",
    "model.layers.0.self_attn.q_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
    "model.layers.12.mlp.gate_proj",
    "model.layers.1.mlp.experts.0.up_proj",
    "transformer.h.0.attn.c_attn",
    "transformer.h.3.attn.c_attn",
    "transformer.h.3.attn.c_proj",
    "transformer.h.3.mlp.c_proj",
    "score",
    "classifier",
    "model.classifier",
    "model.classifier.dense",
    "model.my_classifier",
    "lm_head",
    "encoder.block.2.layer.0.SelfAttention.q",
]

CONFIGS = [
    {"target_modules": ["q_proj"]},
    {"target_modules": ["q_proj", "v_proj"]},
    {"target_modules": ["attn.q_proj"]},
    {"target_modules": ["layers.1.attn.q_proj"]},
    {"target_modules": ["proj"]},
    {"target_modules": ["c_attn", "c_proj"]},
    {"target_modules": ".*q_proj"},
    {"target_modules": r"model\.layers\.\d+\.self_attn\.(q|v)_proj"},
    {"target_modules": r".*\.(c_attn|mlp\.c_proj)"},
    {"target_modules": "q_proj"},
    {"target_modules": ["q_proj"], "layers_to_transform": [1]},
    {"target_modules": ["q_proj"], "layers_to_transform": 1},
    {"target_modules": ["q_proj"], "layers_to_transform": [0, 1], "layers_pattern": "layers"},
    {"target_modules": ["q_proj", "up_proj"], "layers_to_transform": [1], "layers_pattern": ["layers", "h"]},
    {"target_modules": ["c_attn"], "layers_to_transform": [3], "layers_pattern": "h"},
    {"target_modules": ["c_attn", "c_proj"], "layers_to_transform": [3]},
    {"target_modules": ["layers.1.attn.q_proj"], "layers_to_transform": [0], "layers_pattern": "layers"},
    {"target_modules": ".*q_proj", "layers_to_transform": [0]},
    {"target_modules": ["up_proj"], "layers_to_transform": [1]},
    {"target_modules": ["q"], "layers_to_transform": [2], "layers_pattern": "block"},
    {"target_modules": ["q_proj", "v_proj"], "exclude_modules": ["model.layers.1.self_attn.v_proj"]},
    {"target_modules": ["q_proj", "v_proj"], "exclude_modules": ".*layers\\.1\\..*"},
    {"target_modules": ["q_proj"], "exclude_modules": ["attn.q_proj"]},
    {"target_modules": ["classifier", "dense", "score"]},
    {"target_modules": ["classifier", "dense", "score"], "modules_to_save": ["classifier"]},
    {"target_modules": ["classifier", "dense", "score", "q_proj"], "modules_to_save": ["score", "classifier"]},
    {"target_modules": ".*", "modules_to_save": ["lm_head"]},
]


def main() -> None:
    rows = []
    for config in CONFIGS:
        # The function itself, on the fields it reads (a LoraConfig would refuse some
        # combinations, e.g. layers_to_transform with a regex string, before matching).
        fields = {"target_modules": None, "target_parameters": None, "layers_to_transform": None,
                  "layers_pattern": None, "exclude_modules": None, "modules_to_save": None, **config}
        answers = [bool(check_target_module_exists(SimpleNamespace(**fields), path)) for path in PATHS]
        rows.append({"config": config, "targeted": answers})
    out = pathlib.Path(__file__).resolve().parent.parent / "tests/adapters/golden/peft_targets.json"
    out.write_text(json.dumps({"peft_version": peft.__version__, "paths": PATHS, "cases": rows}, indent=1) + "\n")
    print(f"wrote {out} ({len(rows)} configs x {len(PATHS)} paths, PEFT {peft.__version__})")


if __name__ == "__main__":
    main()
