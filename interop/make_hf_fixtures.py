"""Regenerates tests/fixtures/hf/: tiny random Hugging Face checkpoints and their references.

    .venv-interop/bin/python interop/make_hf_fixtures.py [OUT_DIR]

Makes, with transformers and tokenizers themselves:
  tiny-gpt2   GPT-2 (F32, one model.safetensors), byte-level BPE tokenizer.json
  tiny-llama  Llama with grouped-query attention (F32, sharded behind model.safetensors.index.json),
              BPE tokenizer with byte fallback (Llama style)
  tiny-qwen2  Qwen2 (q/k/v biases, tied embeddings; stored in BF16), byte-level BPE
PEFT LoRA adapters tiny-gpt2-lora (fan_in_fan_out) and tiny-llama-lora with the greedy ids
transformers + PEFT give, and for each model reference.json: token ids of a fixed corpus (tokenizers), LM logits of a fixed
input, greedy continuations of 16 tokens (transformers, f32), and sequence-classification logits
of a right-padded batch with the random `score` head saved in score.safetensors.
"""

import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/hf"

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "A tensor graph compiler traces programs into a small autodiff IR.",
    "Passes rewrite the graph; it is lowered to WGSL and runs on the GPU.",
    "VeRA trains two small vectors per layer and shares frozen random projections.",
    "Low-rank adapters add a product of two thin matrices to each targeted weight.",
    "Tokenizers split text into pieces; byte-level BPE never meets an unknown character.",
    "Hello world! hello, World? 12345 67890 the the the and and of of to to in in.",
    "Spam or ham: free money now, click here, meeting at noon, see you tomorrow.",
] * 4

# Text whose ids CI compares: unicode, emoji, whitespace runs, the empty string, digits.
CORPUS = [
    "",
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\n  mixed   runs    of   spaces",
    "naïve café, Œuvre, straße, Ünïcödé",
    "日本語のテキストと中文",
    "emoji: 🤗🚀👍🏽 and 👨‍👩‍👧",
    "numbers 3.14159 and 2026-12-04, 1,000,000",
    "unseen zqxj words: quizzical jukebox",
    "<|endoftext|> inside text",
    "Spam or ham: free money now!!!",
]

PROMPT = "The graph compiler"


def byte_level_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAIN_TEXT, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def byte_fallback_tokenizer():
    """Llama-style: '▁' for spaces, BPE with byte fallback, <s> prepended."""
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.normalizer = norm
    trainer = trainers.BpeTrainer(
        vocab_size=120,
        special_tokens=["<unk>", "<s>", "</s>"],
        show_progress=False,
    )
    base.train_from_iterator(TRAIN_TEXT, trainer)
    trained = json.loads(base.to_str())["model"]
    # The byte tokens <0x00>..<0xFF> sit right after the specials, as in Llama's vocabulary.
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                               fuse_unk=True))
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.normalizer = norm
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "),
        decoders.ByteFallback(),
        decoders.Fuse(),
        decoders.Strip(" ", 1, 0),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="</s>")


def rounded(t):
    return [float(f"{v:.8g}") for v in t.detach().double().flatten().tolist()]


def references(model_dir, hf_tok, with_classification=True):
    ref = {"corpus": []}
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    for text in CORPUS:
        with_special = tok.encode(text).ids
        bare = tok.encode(text, add_special_tokens=False).ids
        ref["corpus"].append({
            "text": text,
            "ids": with_special,
            "idsNoSpecial": bare,
            "decoded": tok.decode(with_special, skip_special_tokens=True),
        })
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompt = tok.encode(PROMPT).ids
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(ids).logits
        ref["prompt"] = PROMPT
        ref["logitsInput"] = prompt
        ref["logitsShape"] = list(logits.shape)
        ref["logits"] = rounded(logits)
        seq = list(prompt)
        margins = []
        for _ in range(16):
            last = model(torch.tensor([seq])).logits[0, -1]
            top = torch.topk(last, 2).values
            margins.append(float(top[0] - top[1]))
            seq.append(int(last.argmax()))
        ref["greedy"] = seq[len(prompt):]
        ref["greedyMinMargin"] = min(margins)
    if with_classification:
        pad = hf_tok.pad_token_id
        cls = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=3, pad_token_id=pad, dtype=torch.float32).eval()
        torch.manual_seed(1)
        with torch.no_grad():
            cls.score.weight.normal_(0, 0.5)
        rows = [tok.encode(t, add_special_tokens=False).ids for t in ["hello world", "spam or ham now"]]
        width = max(len(r) for r in rows) + 2
        batch = [r + [pad] * (width - len(r)) for r in rows]
        with torch.no_grad():
            cl = cls(torch.tensor(batch)).logits
        save_file({"score.weight": cls.score.weight.detach().contiguous()},
                  os.path.join(model_dir, "score.safetensors"))
        ref["classification"] = {"tokens": batch, "padId": pad, "numClasses": 3,
                                 "logits": rounded(cl)}
    with open(os.path.join(model_dir, "reference.json"), "w") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")


def spread(model, std):
    """transformers initialises weights at std 0.02, where a random model repeats one token; larger
    weights make greedy continuations vary, so the KV-cache test sees changing tokens."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, std)


def save(model, tok, name, **kwargs):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    model.save_pretrained(d, **kwargs)
    tok.save_pretrained(d)
    for extra in ["generation_config.json", "chat_template.jinja", "special_tokens_map.json"]:
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    return d


def peft_adapter(model_dir, name, targets, fan_in_fan_out):
    """A PEFT LoRA adapter with random A and B (B is zero at init) and the greedy continuation
    transformers + PEFT produce with it."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=targets, fan_in_fan_out=fan_in_fan_out,
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    g = torch.Generator().manual_seed(3)  # its own generator: the models' RNG stream is untouched
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    peft_model.save_pretrained(d)
    readme = os.path.join(d, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    peft_model.eval()
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    seq = tok.encode(PROMPT).ids
    n = len(seq)
    with torch.no_grad():
        for _ in range(8):
            seq.append(int(peft_model(torch.tensor([seq])).logits[0, -1].argmax()))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"prompt": PROMPT, "greedy": seq[n:]}, f, indent=1)
        f.write("\n")


def main():
    torch.manual_seed(0)
    bl = byte_level_tokenizer()
    bf = byte_fallback_tokenizer()

    gpt2 = AutoModelForCausalLM.from_config(GPT2Config(
        vocab_size=len(bl), n_positions=32, n_embd=32, n_layer=2, n_head=4,
        bos_token_id=bl.bos_token_id, eos_token_id=bl.eos_token_id, pad_token_id=bl.pad_token_id))
    spread(gpt2, 0.25)
    d = save(gpt2, bl, "tiny-gpt2")
    references(d, bl)

    llama = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(bf), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        pad_token_id=2))
    with torch.no_grad():  # RMSNorm weights start at 1; random ones test that they are applied
        for n, p in llama.named_parameters():
            if n.endswith("layernorm.weight") or n.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    d = save(llama, bf, "tiny-llama", max_shard_size="60KB")
    references(d, bf)

    qwen2 = AutoModelForCausalLM.from_config(Qwen2Config(
        vocab_size=len(bl), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=32,
        rope_theta=500.0, tie_word_embeddings=True, bos_token_id=bl.bos_token_id,
        eos_token_id=bl.eos_token_id, pad_token_id=bl.pad_token_id))
    with torch.no_grad():  # transformers initialises biases at zero; random ones test they are used
        for n, p in qwen2.named_parameters():
            if n.endswith("proj.bias"):
                p.normal_(0, 0.5)
    spread(qwen2, 0.3)
    qwen2 = qwen2.to(torch.bfloat16)
    d = save(qwen2, bl, "tiny-qwen2")
    references(d, bl)

    peft_adapter(os.path.join(OUT, "tiny-gpt2"), "tiny-gpt2-lora", ["c_attn"], fan_in_fan_out=True)
    peft_adapter(os.path.join(OUT, "tiny-llama"), "tiny-llama-lora", ["q_proj", "v_proj"],
                 fan_in_fan_out=False)


if __name__ == "__main__":
    main()
