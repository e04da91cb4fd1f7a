#!/usr/bin/env python3
"""One fine-tuning step of wgrad's benchmark model in PyTorch + Hugging Face PEFT.

The model is wgrad's reference GPT (docs/ARCHITECTURE.md §9) (nn/gpt.ts): token and learned position
embeddings, pre-LayerNorm blocks with causal multi-head attention (q_proj, k_proj,
v_proj, o_proj with bias) and a GELU-tanh MLP (fc1, fc2), ln_f and a bias-free
lm_head; mean next-token cross-entropy; AdamW (lr 1e-2 for VeRA, 3e-3 for LoRA,
betas 0.9/0.999, eps 1e-8, weight decay 0.01) over the adapter's parameters.
The adapter is PEFT's own: VeraConfig(r, target_modules) or LoraConfig(r,
lora_alpha=r, target_modules). Everything is float32 with TF32 off.

Usage (bench/gpu_check.ts runs it; every flag has a default):

  torch_peft_step.py --method vera|lora --layers 12 --d-model 768 --heads 12 --seq 256
                     --batch 8 --vocab 96 --r 256 --targets q_proj,v_proj --steps 20
                     [--weights FILE.safetensors --tokens FILE.json] [--device cuda|cpu]

With --weights (wgrad's names, plus vera_A, vera_B and the lambdas) and --tokens
(a JSON list of {"tokens": [...], "targets": [...]} batches), the model starts
from exactly wgrad's values, PEFT's projections are overwritten with wgrad's, and
loss_first is comparable with wgrad's first loss. Without them, weights are
N(0, 0.02) and tokens uniform: only the timing matters.

--probe only imports torch and peft and prints their versions and the device.

Prints one JSON object as its last line: step_ms, tokens_per_s, peak_memory_bytes
(torch.cuda.max_memory_allocated), loss_first, loss_last, ... or
{"skipped": "<why>"} when torch or peft is missing, exit code 0 either way.
"""

import argparse
import json
import math
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=["vera", "lora"], default="vera")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--vocab", type=int, default=96)
    p.add_argument("--r", type=int, default=None, help="default 256 for vera, 8 for lora")
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--weights", default=None)
    p.add_argument("--tokens", default=None)
    p.add_argument("--device", default=None, help="default cuda when available, else cpu")
    p.add_argument("--probe", action="store_true", help="only print the versions and the device")
    return p.parse_args()


def skip(reason):
    print(json.dumps({"skipped": reason}))
    sys.exit(0)


ARGS = parse_args()
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
    skip(f"PyTorch is not importable by {sys.executable}: {type(e).__name__}: {e}")
try:
    import peft
    from peft import LoraConfig, VeraConfig, get_peft_model
except Exception as e:  # noqa: BLE001
    skip(f"PEFT is not importable by {sys.executable}: {type(e).__name__}: {e}")


class Block(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = nn.Module()
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            self.attn.add_module(name, nn.Linear(d, d))
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, hidden)
        self.mlp.fc2 = nn.Linear(hidden, d)


class Gpt(nn.Module):
    """Parameter names are wgrad's: embed.weight, layers.0.attn.q_proj.weight, ..."""

    def __init__(self, layers, d, heads, seq, vocab):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        self.layers = nn.ModuleList([Block(d, 4 * d) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("causal", torch.ones(seq, seq, dtype=torch.bool).tril(), persistent=False)

    def forward(self, tokens, targets):
        b, t = tokens.shape
        d = self.embed.weight.shape[1]
        dh = d // self.heads
        h = self.embed(tokens) + self.pos.weight[:t]
        mask = self.causal[:t, :t]
        for blk in self.layers:
            x = blk.ln1(h)
            a = blk.attn

            def split(y):
                return y.view(b, t, self.heads, dh).transpose(1, 2)

            q, k, v = split(a.q_proj(x)), split(a.k_proj(x)), split(a.v_proj(x))
            scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(dh))
            probs = torch.where(mask, scores, torch.tensor(-1e9, dtype=scores.dtype, device=scores.device)).softmax(-1)
            h = h + a.o_proj((probs @ v).transpose(1, 2).reshape(b, t, d))
            h = h + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.ln2(h)), approximate="tanh"))
        logits = self.lm_head(self.ln_f(h))
        return F.cross_entropy(logits.reshape(b * t, -1), targets.reshape(-1))


def wgrad_name(peft_name):
    """base_model.model.layers.0.attn.q_proj.base_layer.weight -> layers.0.attn.q_proj.weight,
    ....q_proj.vera_lambda_b.default -> ....q_proj.vera_lambda_b, base_model.vera_A.default -> vera_A."""
    key = peft_name.removeprefix("base_model.model.").replace(".base_layer.", ".")
    key = key.removesuffix(".default")
    leaf = key.rsplit(".", 1)[-1]
    return leaf if leaf in ("vera_A", "vera_B") else key


def load_wgrad_values(model, path):
    """Copies wgrad's tensors into the PEFT-wrapped model: base weights by name,
    the lambdas (base_model.model.<m>.vera_lambda_x.default) and the shared
    vera_A / vera_B buffers (PEFT's own projections come from torch's generator)."""
    from safetensors.torch import load_file

    values = load_file(path)
    used = set()
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            key = wgrad_name(name)
            if key in values:
                tensor.copy_(values[key].to(tensor.device))
                used.add(key)
    missing = sorted(set(values) - used)
    if missing:
        raise SystemExit(f"torch_peft_step: no place in the model for {missing[:5]} ...")
    return len(used)


def main():
    a = ARGS
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.probe:
        name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
        print(json.dumps({"torch": torch.__version__, "peft": peft.__version__, "device": name}))
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    r = a.r or (256 if a.method == "vera" else 8)
    targets = [t for t in a.targets.split(",") if t]
    model = Gpt(a.layers, a.d_model, a.heads, a.seq, a.vocab)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.02)
    if a.method == "vera":
        config = VeraConfig(r=r, target_modules=targets, projection_prng_key=0, d_initial=0.1)
        lr = 1e-2
    else:
        config = LoraConfig(r=r, lora_alpha=r, target_modules=targets, lora_dropout=0.0)
        lr = 3e-3
    model = get_peft_model(model, config).to(device)
    loaded = load_wgrad_values(model, a.weights) if a.weights else 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    if a.tokens:
        batches = [
            (
                torch.tensor(b["tokens"], dtype=torch.long, device=device).view(a.batch, a.seq),
                torch.tensor(b["targets"], dtype=torch.long, device=device).view(a.batch, a.seq),
            )
            for b in json.load(open(a.tokens))
        ]
    else:
        g = torch.Generator(device="cpu").manual_seed(0)
        batches = [
            tuple(torch.randint(0, a.vocab, (a.batch, a.seq), generator=g).to(device) for _ in range(2))
            for _ in range(4)
        ]

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    step_count = 0

    def step():
        nonlocal step_count
        tokens, tgt = batches[step_count % len(batches)]
        step_count += 1
        loss = model(tokens, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    loss_first = float(step().item())
    first_ms = (time.perf_counter() - t0) * 1000
    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss_last = float(loss.item())  # waits for the GPU
    step_ms = (time.perf_counter() - t0) * 1000 / a.steps
    result = {
        "framework": f"PyTorch {torch.__version__} + PEFT {peft.__version__}",
        "method": a.method,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "config": {"layers": a.layers, "d_model": a.d_model, "heads": a.heads, "seq": a.seq,
                   "batch": a.batch, "vocab": a.vocab, "r": r, "targets": targets},
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        "first_step_ms": first_ms,
        "step_ms": step_ms,
        "tokens_per_s": a.batch * a.seq * 1000 / step_ms,
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "trainable_params": sum(p.numel() for p in trainable),
        "loaded_tensors": loaded,
        "loss_first": loss_first,
        "loss_last": loss_last,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
