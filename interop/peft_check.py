#!/usr/bin/env python3
"""The Python half of wgrad's PEFT interop check (run by interop/run.ts).

Usage: peft_check.py WORK_DIR

WORK_DIR holds what the Deno half wrote: base.safetensors (the tiny GPT, F32),
deno_vera/ and deno_lora/ (PEFT adapter directories exported by wgrad),
merged_deno_{vera,lora}.safetensors (from `cli.ts merge`) and setup.json (model
config, evaluation tokens, tolerance, targeted weights).

It builds a torch module tree from the base file's names, loads the base
strictly, then for each wgrad adapter: loads it with PeftModel.from_pretrained
(no missing or unexpected adapter keys, no warnings), checks that PEFT holds
exactly the file's tensors, re-saves it with PEFT and diffs the two
directories, runs a forward pass, merge_and_unload()s it and compares with
wgrad's merged file. Then it makes a VeRA and a LoRA adapter with PEFT itself
(random non-zero lambdas / A / B), saves them (peft_vera/, peft_lora/), their
forward logits and their merged models for the Deno half to check.

Writes results.json ({versions, checks, notes}) and logits.safetensors (F64).
"""

import copy
import json
import math
import os
import sys
import traceback
import warnings

import peft
import safetensors
import torch
import torch.nn as nn
import torch.nn.functional as F
from peft import (
    LoraConfig,
    PeftModel,
    VeraConfig,
    get_peft_model,
    get_peft_model_state_dict,
)
from safetensors import safe_open
from safetensors.torch import load_file, save_file

WORK = sys.argv[1]
SETUP = json.load(open(os.path.join(WORK, "setup.json")))
TOL = SETUP["tol"]
BASE = os.path.join(WORK, "base.safetensors")

checks = []
notes = []


def record(name, ok, detail="", max_abs=None, max_scaled=None, max_rel_tensor=None):
    checks.append(
        {
            "name": name,
            "ok": bool(ok),
            "maxAbs": max_abs,
            "maxScaled": max_scaled,
            "maxRelTensor": max_rel_tensor,
            "detail": detail,
        }
    )


class Step:
    """Runs a block; an exception becomes a FAIL row instead of ending the run."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            return False
        traceback.print_exception(kind, value, tb)
        msg = f"{kind.__name__}: {value}".splitlines()[0][:300]
        record(self.name, False, msg)
        return True


# ---------------------------------------------------------------------------
# The base model: a module tree from the file's names.


def build_model():
    """nn.Linear for every `<m>.weight` of rank 2 (with `<m>.bias` if present),
    plain nn.Parameters for the rest; loaded strictly from base.safetensors."""
    sd = load_file(BASE)
    root = nn.Module()

    def module_at(path):
        m = root
        for part in path.split(".") if path else []:
            child = m._modules.get(part)
            if child is None:
                child = nn.Module()
                m.add_module(part, child)
            m = child
        return m

    def split(name):
        i = name.rfind(".")
        return (name[:i], name[i + 1 :]) if i >= 0 else ("", name)

    linear = {}
    for name, t in sd.items():
        path, leaf = split(name)
        if leaf == "weight" and t.dim() == 2:
            linear[path] = t.shape
    for path, (out_f, in_f) in sorted(linear.items()):
        parent, leaf = split(path)
        module_at(parent).add_module(
            leaf, nn.Linear(in_f, out_f, bias=f"{path}.bias" in sd)
        )
    for name, t in sd.items():
        path, leaf = split(name)
        if path in linear and leaf in ("weight", "bias"):
            continue
        module_at(path).register_parameter(leaf, nn.Parameter(torch.empty_like(t)))
    result = root.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    for p in root.parameters():
        p.requires_grad_(False)
    return root


def gpt_forward(root, tokens):
    """The reference GPT of nn/gpt.ts (pre-LN, causal MHA, GELU-tanh MLP, LM head)."""
    cfg = SETUP["config"]
    heads, d = cfg["heads"], cfg["dModel"]
    dh = d // heads
    b, t = tokens.shape

    def ln(x, m):
        return F.layer_norm(x, (d,), m.weight, m.bias, eps=1e-5)

    h = root.embed.weight[tokens] + root.pos.weight[:t]
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(cfg["layers"]):
        blk = getattr(root.layers, str(i))
        x = ln(h, blk.ln1)
        a = blk.attn

        def split(y):
            return y.view(b, t, heads, dh).transpose(1, 2)

        q, k, v = split(a.q_proj(x)), split(a.k_proj(x)), split(a.v_proj(x))
        scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(dh))
        probs = torch.where(mask, scores, torch.tensor(-1e9, dtype=scores.dtype)).softmax(-1)
        h = h + a.o_proj((probs @ v).transpose(1, 2).reshape(b, t, d))
        x = ln(h, blk.ln2)
        h = h + blk.mlp.fc2(F.gelu(blk.mlp.fc1(x), approximate="tanh"))
    return root.lm_head(ln(h, root.ln_f))


def logits_f64(model):
    """Forward in float64 on a copy (the adapter stays unmerged)."""
    m = copy.deepcopy(model).double()
    root = m.base_model.model if isinstance(m, PeftModel) else m
    tokens = torch.tensor(SETUP["tokens"], dtype=torch.long).view(SETUP["batch"], SETUP["seqLen"])
    with torch.no_grad():
        return gpt_forward(root, tokens).contiguous()


# ---------------------------------------------------------------------------
# Comparisons.


def compare_merged(name, ours_path, theirs, targets):
    """wgrad's merged file against PEFT's merged state dict: same names, dtypes
    and shapes; targets within TOL; every other tensor bit-identical."""
    ours = load_file(ours_path)
    base = load_file(BASE)
    problems = []
    max_delta = 0.0
    if sorted(ours) != sorted(theirs):
        problems.append(f"names differ: only wgrad {sorted(set(ours) - set(theirs))}, "
                        f"only PEFT {sorted(set(theirs) - set(ours))}")
    max_abs = max_scaled = 0.0
    max_rel_tensor = 0.0
    identical = 0
    for key, b in theirs.items():
        a = ours.get(key)
        if a is None:
            continue
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append(f"{key}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}")
            continue
        if key in targets:
            d = (a.double() - b.double()).abs()
            scaled = float((d / b.double().abs().clamp(min=1)).max())
            max_abs = max(max_abs, float(d.max()))
            max_delta = max(max_delta, float((b.double() - base[key].double()).abs().max()))
            max_scaled = max(max_scaled, scaled)
            max_rel_tensor = max(max_rel_tensor, float(d.max() / b.double().abs().max().clamp(min=1e-30)))
            if not scaled <= TOL:
                problems.append(f"{key}: scaled error {scaled:.3g}")
        elif not torch.equal(a.view(torch.int32), b.view(torch.int32)):
            problems.append(f"{key} (not a target) differs")
        else:
            identical += 1
    missing = [t for t in targets if t not in ours]
    if missing:
        problems.append(f"targets missing: {missing}")
    record(
        name,
        not problems,
        "; ".join(problems) if problems else f"{len(targets)} merged (max |ΔW| {max_delta:.2g}), {identical} others bit-identical",
        max_abs,
        max_scaled,
        max_rel_tensor,
    )


def merged_state(pm):
    merged = pm.merge_and_unload()
    return {k: v.detach().contiguous() for k, v in merged.state_dict().items()}


def tensor_file(path):
    with safe_open(path, framework="pt") as f:
        return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}


def diff_dirs(label, ours_dir, peft_dir):
    """Field-by-field differences between wgrad's adapter directory and PEFT's
    re-save of the same adapter. Returns a list of (what, wgrad, peft)."""
    diffs = []
    a = json.load(open(os.path.join(ours_dir, "adapter_config.json")))
    b = json.load(open(os.path.join(peft_dir, "adapter_config.json")))
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if va == vb:
            continue
        if k == "target_modules" and isinstance(va, list) and isinstance(vb, list) and sorted(va) == sorted(vb):
            # PEFT keeps the list as a set and saves list(set): string-hash order, which
            # changes from process to process. Only the set matters when loading.
            diffs.append((f"adapter_config.json: {k} (order only)", va, vb))
        else:
            diffs.append((f"adapter_config.json: {k}", va, vb))
    meta_a, ta = tensor_file(os.path.join(ours_dir, "adapter_model.safetensors"))
    meta_b, tb = tensor_file(os.path.join(peft_dir, "adapter_model.safetensors"))
    if meta_a != meta_b:
        diffs.append(("adapter_model.safetensors: __metadata__", meta_a, meta_b))
    for k in sorted(set(ta) | set(tb)):
        if k not in ta or k not in tb:
            diffs.append((f"adapter_model.safetensors: {k}", k in ta, k in tb))
        elif ta[k].dtype != tb[k].dtype or ta[k].shape != tb[k].shape:
            diffs.append((f"adapter_model.safetensors: {k}",
                          f"{ta[k].dtype}{list(ta[k].shape)}", f"{tb[k].dtype}{list(tb[k].shape)}"))
        elif not torch.equal(ta[k], tb[k]):
            diffs.append((f"adapter_model.safetensors: {k} values", "", ""))
    return diffs


# Config fields whose differences are expected: PEFT records the base model's class
# for custom (non-transformers) models in auto_mapping; wgrad has no Python class.
# target_modules may differ in order only (see diff_dirs).
EXPECTED_CONFIG_DIFFS = {
    "adapter_config.json: auto_mapping",
    "adapter_config.json: target_modules (order only)",
}


# ---------------------------------------------------------------------------


def check_ours(kind, logits):
    """A wgrad-exported adapter in PEFT."""
    adapter_dir = os.path.join(WORK, f"deno_{kind}")
    file_tensors = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))

    with Step(f"deno {kind}: PEFT loads it (from_pretrained)"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pm = PeftModel.from_pretrained(build_model(), adapter_dir)
        relevant = [str(w.message) for w in caught
                    if any(s in str(w.message).lower() for s in ("missing", "unexpected", "mismatch"))]
        record(f"deno {kind}: PEFT loads it (from_pretrained)", not relevant,
               "; ".join(relevant)[:300] if relevant else
               f"{type(pm.base_model).__name__}, {len(caught)} warnings, none about keys")

    with Step(f"deno {kind}: load_adapter: no missing/unexpected keys"):
        probe = PeftModel.from_pretrained(build_model(), adapter_dir)
        res = probe.load_adapter(adapter_dir, adapter_name="probe")
        # load_adapter keeps only adapter keys in missing_keys; check ours too, counting
        # every adapter-owned key (lambdas, A/B, shared projections) the model expects.
        owned = [k for k in probe.state_dict()
                 if ".probe" in k and any(s in k for s in ("vera_", "lora_"))]
        record(
            f"deno {kind}: load_adapter: no missing/unexpected keys",
            not res.missing_keys and not res.unexpected_keys,
            f"missing {list(res.missing_keys)}, unexpected {list(res.unexpected_keys)}; "
            f"{len(owned)} adapter keys in the model",
        )

    with Step(f"deno {kind}: PEFT holds exactly the file's tensors"):
        state = get_peft_model_state_dict(pm)
        problems = []
        if sorted(state) != sorted(file_tensors):
            problems.append(f"keys: only file {sorted(set(file_tensors) - set(state))}, "
                            f"only PEFT {sorted(set(state) - set(file_tensors))}")
        for k, v in file_tensors.items():
            if k in state and not torch.equal(state[k].contiguous(), v):
                problems.append(f"{k} differs")
        record(f"deno {kind}: PEFT holds exactly the file's tensors", not problems,
               "; ".join(problems) if problems else f"{len(file_tensors)} tensors bit-identical")

    with Step(f"deno {kind}: PEFT re-save = wgrad export"):
        resave = os.path.join(WORK, f"resaved_deno_{kind}")
        pm.save_pretrained(resave)
        diffs = diff_dirs(kind, adapter_dir, resave)
        unexpected = [d for d in diffs if d[0] not in EXPECTED_CONFIG_DIFFS]
        for what, ours, theirs in diffs:
            notes.append(f"deno {kind}: {what}: wgrad {json.dumps(ours)}, PEFT {json.dumps(theirs)}")
        record(f"deno {kind}: PEFT re-save = wgrad export", not unexpected,
               f"{len(unexpected)} unexpected differences" + (
                   f" ({len(diffs) - len(unexpected)} expected, see notes)" if len(diffs) > len(unexpected) else ""))

    with Step(f"deno {kind}: forward"):
        logits[f"deno_{kind}"] = logits_f64(pm)

    with Step(f"deno {kind}: cli merge = PEFT merge_and_unload"):
        compare_merged(
            f"deno {kind}: cli merge = PEFT merge_and_unload",
            os.path.join(WORK, f"merged_deno_{kind}.safetensors"),
            merged_state(pm),
            SETUP["targets"][f"deno_{kind}"],
        )


def make_theirs(kind, logits):
    """A PEFT-made adapter with random non-zero weights, for wgrad to import."""
    with Step(f"peft {kind}: make, save, merge"):
        gen = torch.Generator().manual_seed(1234 if kind == "vera" else 4321)

        def rand(t, lo, hi):
            # uniform in ±[lo, hi): never zero
            u = torch.rand(t.shape, generator=gen, dtype=torch.float64)
            sign = torch.where(torch.rand(t.shape, generator=gen) < 0.5, -1.0, 1.0)
            return (sign * (lo + (hi - lo) * u)).to(t.dtype)

        if kind == "vera":
            # k_proj [16,16], fc1 [64,16], fc2 [16,64]: shared A [8,64], B [64,8], both sliced.
            config = VeraConfig(r=8, target_modules=["k_proj", "fc1", "fc2"],
                                projection_prng_key=1234, save_projection=True, d_initial=0.1)
        else:
            # alpha/r = 3, not wgrad's default 8/4 = 2, so a wrong scaling shows.
            config = LoraConfig(r=4, lora_alpha=12, target_modules=["q_proj", "o_proj", "fc2"],
                                lora_dropout=0.0)
        pm = get_peft_model(build_model(), config)
        with torch.no_grad():
            for name, p in pm.named_parameters():
                if "vera_lambda_" in name or "lora_A" in name:
                    p.copy_(rand(p, 0.05, 0.5))
                elif "lora_B" in name:
                    p.copy_(rand(p, 0.02, 0.2))
        out = os.path.join(WORK, f"peft_{kind}")
        pm.save_pretrained(out)
        logits[f"peft_{kind}"] = logits_f64(pm)
        merged = merged_state(pm)
        save_file(merged, os.path.join(WORK, f"peft_merged_peft_{kind}.safetensors"),
                  metadata={"format": "pt"})
        n = len(load_file(os.path.join(out, "adapter_model.safetensors")))
        record(f"peft {kind}: make, save, merge", True,
               f"{n} tensors, targets {sorted(config.target_modules)}")


def main():
    versions = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
    }
    torch.manual_seed(0)
    logits = {}
    with Step("base: strict load into the torch module tree"):
        model = build_model()
        n = len(load_file(BASE))
        record("base: strict load into the torch module tree", True,
               f"{n} tensors, {sum(isinstance(m, nn.Linear) for m in model.modules())} nn.Linear")
        logits["base"] = logits_f64(model)
    for kind in ("vera", "lora"):
        check_ours(kind, logits)
    for kind in ("vera", "lora"):
        make_theirs(kind, logits)
    save_file({k: v.to(torch.float64) for k, v in logits.items()},
              os.path.join(WORK, "logits.safetensors"))
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"versions": versions, "checks": checks, "notes": notes}, f, indent=1)


if __name__ == "__main__":
    main()
