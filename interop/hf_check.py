"""Checks wgrad's adapters and merged directories for Hugging Face models against transformers + PEFT.

Usage: python interop/hf_check.py WORK_DIR  (reads WORK_DIR/cases.json, writes WORK_DIR/hf_result.json)

For each case (a fine-tuned adapter on a tiny transformers fixture, merged by `cli merge`):
  - PeftModel.from_pretrained(AutoModelFor...(base), adapter) loads with no warning about keys,
    and load_adapter reports no missing and no unexpected keys;
  - PEFT's merge_and_unload() equals our merged directory, tensor by tensor;
  - our merged directory loads with from_pretrained (no missing / unexpected keys) and gives the
    adapted model's logits;
  - classification: the adapted model's probabilities equal `cli predict`'s.
"""
import json
import sys
import warnings

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

TOL = 1e-5


def auto(task):
    return AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM


def load_base(case):
    kwargs = {"dtype": torch.float32}
    if case["task"] == "classification":
        kwargs["num_labels"] = case["num_labels"]
    return auto(case["task"]).from_pretrained(case["base"], **kwargs)


def check(case):
    out = []
    name = case["name"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(load_base(case), case["adapter"])
    key_warnings = [str(w.message)[:160] for w in caught if "keys" in str(w.message).lower()]
    # load_adapter reports the adapter keys (lambdas, A/B, shared projections, saved modules) the
    # model expects but the file lacks, and the file's keys the model has no place for.
    res = model.load_adapter(case["adapter"], adapter_name="probe")
    missing, unexpected = list(res.missing_keys), list(res.unexpected_keys)
    model.set_adapter("default")
    model.delete_adapter("probe")
    ok = not key_warnings and not unexpected and not missing
    out.append({"name": f"{name}: PEFT loads the adapter (no missing/unexpected keys)", "ok": ok,
                "detail": "; ".join(key_warnings + unexpected + missing)[:300]})
    model.eval()
    tok = AutoTokenizer.from_pretrained(case["base"])
    texts = case["texts"]
    with torch.no_grad():
        # Tokenized as transformers does by default (Llama adds BOS), as finetune and predict do.
        ids = [torch.tensor([tok.encode(t)[: case["seq"]]]) for t in texts]
        adapted = [model(x).logits[0] for x in ids]
        merged_ref = model.merge_and_unload()
    ref_sd = {k: v for k, v in merged_ref.state_dict().items()}
    with warnings.catch_warnings(record=True):
        ours, info = auto(case["task"]).from_pretrained(case["merged"], dtype=torch.float32,
                                                        output_loading_info=True)
    bad = [k for k in list(info["missing_keys"]) + list(info["unexpected_keys"]) if not k.endswith("attn.bias")]
    out.append({"name": f"{name}: merged dir loads with from_pretrained", "ok": not bad,
                "detail": ", ".join(bad)[:300]})
    ours_sd = ours.state_dict()
    worst = 0.0
    for k, v in ref_sd.items():
        if k not in ours_sd:
            continue
        worst = max(worst, (ours_sd[k].float() - v.float()).abs().max().item())
    # A BF16 base stores the merged weights rounded to BF16 (PEFT's merge stays float32 here).
    tol = 1e-2 if case.get("bf16") else TOL
    out.append({"name": f"{name}: merged dir = PEFT merge_and_unload", "ok": worst <= tol,
                "maxAbs": worst})
    ours.eval()
    with torch.no_grad():
        folded = [ours(x).logits[0] for x in ids]
    d = max((a - b).abs().max().item() for a, b in zip(adapted, folded))
    out.append({"name": f"{name}: merged dir logits = adapted model's", "ok": d <= max(tol, TOL) * 10,
                "maxAbs": d})
    if case["task"] == "classification":
        probs = [torch.softmax(a.float(), -1) for a in adapted]
        ours_p = case["predicted"]
        d = max(abs(p[i].item() - q[i]) for p, q in zip(probs, ours_p) for i in range(len(q)))
        out.append({"name": f"{name}: cli predict = PEFT model's probabilities", "ok": d <= 1e-4,
                    "maxAbs": d})
    return out


def main():
    work = sys.argv[1]
    cases = json.load(open(f"{work}/cases.json"))
    checks = []
    for case in cases:
        try:
            checks += check(case)
        except Exception as e:  # one failing case is reported, the others still run
            checks.append({"name": f"{case['name']}: run", "ok": False, "detail": str(e)[:300]})
    json.dump({"checks": checks}, open(f"{work}/hf_result.json", "w"), indent=1)


if __name__ == "__main__":
    main()
