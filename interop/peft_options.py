"""PEFT-made LoRA adapters with the options that change merged weights, for
interop/run.ts to merge with `cli merge` and compare with PEFT's own
merge_and_unload: use_rslora, alpha_pattern, rank_pattern, fan_in_fan_out
(GPT-2's Conv1D), layers_to_transform and modules_to_save.

Usage: peft_options.py OUT_DIR   (writes one folder per case and cases.json)
"""

import copy
import json
import os
import sys

import torch
import torch.nn as nn
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers.pytorch_utils import Conv1D

OUT = sys.argv[1]
D, OUT_F = 6, 4


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(D, OUT_F)
        self.v_proj = nn.Linear(D, OUT_F, bias=False)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = Attn()


class Inner(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.layers = nn.ModuleList([Layer() for _ in range(n)])


class LlamaLike(nn.Module):
    """Module paths as a Llama checkpoint's: model.layers.N.self_attn.q_proj, and a score head."""

    def __init__(self):
        super().__init__()
        self.model = Inner(2)
        self.score = nn.Linear(D, 3, bias=False)


class Gpt2Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = Conv1D(3 * D, D)  # stored [in, out]
        self.c_proj = Conv1D(D, D)  # square: a missed transpose would go unnoticed by shape


class Gpt2Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = Gpt2Attn()


class Gpt2Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.h = nn.ModuleList([Gpt2Block() for _ in range(2)])


class Gpt2Like(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = Gpt2Inner()


CASES = {
    "use_rslora": ("llama", dict(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj"])),
    "alpha_pattern": ("llama", dict(r=4, lora_alpha=8, alpha_pattern={"v_proj": 16}, target_modules=["q_proj", "v_proj"])),
    "rank_pattern": ("llama", dict(r=4, lora_alpha=8, rank_pattern={"model.layers.1.self_attn.q_proj": 2}, target_modules=["q_proj", "v_proj"])),
    "fan_in_fan_out": ("gpt2", dict(r=3, lora_alpha=6, fan_in_fan_out=True, target_modules=["c_attn", "c_proj"])),
    "layers_to_transform": ("llama", dict(r=2, lora_alpha=4, layers_to_transform=[1], layers_pattern="layers", target_modules=["q_proj", "v_proj"])),
    "modules_to_save": ("llama", dict(r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["score"])),
}


def main() -> None:
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    bases = {"llama": LlamaLike(), "gpt2": Gpt2Like()}
    for name, model in bases.items():
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, f"base_{name}.safetensors"))
    summary = {}
    for case, (base_name, options) in CASES.items():
        peft_model = get_peft_model(copy.deepcopy(bases[base_name]), LoraConfig(**options))
        generator = torch.Generator().manual_seed(len(case))
        with torch.no_grad():
            for key, p in peft_model.named_parameters():
                if "lora_" in key or "modules_to_save" in key:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        peft_model.save_pretrained(os.path.join(OUT, case))
        targets = sorted(
            k[: -len(".lora_A.default.weight")].replace("base_model.model.", "", 1) + ".weight"
            for k, _ in peft_model.named_parameters()
            if k.endswith(".lora_A.default.weight")
        )
        merged = peft_model.merge_and_unload()
        save_file({k: v.contiguous() for k, v in merged.state_dict().items()}, os.path.join(OUT, f"merged_{case}.safetensors"))
        summary[case] = {"base": f"base_{base_name}.safetensors", "targets": targets}
    json.dump(summary, open(os.path.join(OUT, "cases.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
