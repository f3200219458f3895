"""Measure what corefix costs beside what a user would otherwise run.

- prediction: corefix's path (windows of all articles sorted by length, padded
  per batch, ``torch.inference_mode``) against the plain Hugging Face
  ``pipeline("token-classification")`` on the same model and articles (given a
  ``stride`` so it sees whole articles), in words per second, with the share
  of words on which both make the same decision;
- training: corefix's loop (length-grouped batches, dynamic padding, bf16
  autocast where set) against the same model and batch size padded to the
  maximum length in fp32, in real (non-pad) tokens per second;
- peak resident memory predicting one article of 1,000, 10,000 and 100,000
  words, each in a fresh process.

Every figure is a median over repetitions, with its spread, and a ratio to
its baseline measured in the same run, so the noise of a shared machine
cancels out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import torch

from .labels import word_offsets
from .model import Detector, load_tokenizer, new_model


def _median_spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def pipeline_word_tags(pipe, text: str) -> list[str]:
    """Word tags from a token-classification pipeline's sub-word entities (first sub-word of each word)."""
    offsets = word_offsets(text)
    tags = ["O"] * len(offsets)
    starts = {s: i for i, (s, _) in enumerate(offsets)}
    for ent in pipe(text):
        i = starts.get(ent["start"])
        if i is not None and tags[i] == "O":
            tags[i] = ent["entity"]
    return tags


def bench_prediction(detector: Detector, texts: list[str], repeats: int = 3) -> dict:
    from transformers import pipeline

    torch.set_num_threads(os.cpu_count() or 1)
    n_words = sum(len(word_offsets(t)) for t in texts)
    pipe = pipeline("token-classification", model=detector.model, tokenizer=detector.tokenizer,
                    stride=detector.stride, device=detector.model.device)
    # The pipeline's default max length is the tokenizer's; keep it to the model's window.
    pipe.tokenizer.model_max_length = detector.max_length
    ours, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        preds = detector.predict(texts)
        ours.append(n_words / (time.perf_counter() - t))
        t = time.perf_counter()
        base_tags = [pipeline_word_tags(pipe, x) for x in texts]
        theirs.append(n_words / (time.perf_counter() - t))
    our_tags = [p.tags() for p in preds]
    same = sum(a == b for ot, bt in zip(our_tags, base_tags) for a, b in zip(ot, bt))
    return {
        "words": n_words,
        "corefix_words_per_s": _median_spread(ours),
        "pipeline_words_per_s": _median_spread(theirs),
        "speedup": statistics.median(ours) / statistics.median(theirs),
        "same_decisions": same / max(n_words, 1),
    }


def bench_training(model_name: str, records: list[dict], batch_size: int, max_length: int, stride: int,
                   steps: int, repeats: int, bf16: bool, case_feature: bool) -> dict:
    """Real tokens per second of corefix's batching against padding to max_length."""
    from transformers import DataCollatorForTokenClassification

    from .train import build_features, length_grouped_order

    tokenizer = load_tokenizer(model_name)
    feats = build_features(records, tokenizer, max_length, stride, case_feature)
    lengths = [len(f["input_ids"]) for f in feats]
    order = length_grouped_order(lengths, batch_size, seed=0)
    dynamic = DataCollatorForTokenClassification(tokenizer)
    padded = DataCollatorForTokenClassification(tokenizer, padding="max_length", max_length=max_length)

    def run(collate, use_bf16, idx):
        torch.manual_seed(0)
        model = new_model(model_name)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)][: steps + 1]
        tokens, elapsed = 0, 0.0
        for k, b in enumerate(batches):
            batch = collate([feats[i] for i in b])
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            if k:  # the first step warms up
                elapsed += time.perf_counter() - t
                tokens += int(batch["attention_mask"].sum())
        return tokens / elapsed

    import random

    rng = random.Random(0)
    shuffled = list(range(len(feats)))
    rng.shuffle(shuffled)
    ours, base, dyn_fp32 = [], [], []
    for _ in range(repeats):
        ours.append(run(dynamic, bf16, order))
        dyn_fp32.append(run(dynamic, False, order))
        base.append(run(padded, False, shuffled))
    return {
        "windows": len(feats),
        "mean_window_tokens": statistics.fmean(lengths),
        "corefix_tokens_per_s": _median_spread(ours),
        "corefix_fp32_tokens_per_s": _median_spread(dyn_fp32),
        "padded_baseline_tokens_per_s": _median_spread(base),
        "speedup": statistics.median(ours) / statistics.median(base),
        "speedup_from_padding_alone": statistics.median(dyn_fp32) / statistics.median(base),
        "bf16": bf16,
    }


MEMORY_CHILD = r"""
import json, resource, sys
from corefix.model import Detector
d = Detector.load(sys.argv[1], batch_size=int(sys.argv[3]))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
words = ("Mr. Okafor said he met the two men in Accra , and they agreed . " * 100000).split()[: int(sys.argv[2])]
d.predict([" ".join(words)])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"model_loaded_kib": base, "peak_kib": peak}))
"""


def bench_memory(model_dir: str, sizes: list[int], batch_size: int = 32) -> dict:
    """Peak RSS predicting one article of each size, each in a fresh process."""
    out = {}
    for n in sizes:
        res = subprocess.run([sys.executable, "-c", MEMORY_CHILD, model_dir, str(n), str(batch_size)],
                             capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        out[str(n)] = json.loads(res.stdout.strip().splitlines()[-1])
    first = out[str(sizes[0])]
    for n in sizes:
        rec = out[str(n)]
        rec["peak_mib"] = rec["peak_kib"] / 1024
        rec["ratio_to_smallest"] = rec["peak_kib"] / first["peak_kib"]
    return out


SAMPLE = (
    "Prime Minister Tony Blair said on Friday that he would meet Mr. Okafor in Accra . Mr. Blair told reporters "
    "that his talks with the Ghanaian leader would cover trade . Mr. Okafor has said he wants closer ties with the "
    "UK , and Blair agreed . The two men last met in London , where they spoke about rail links . Shares in "
    "Allied Domecq rose after reports that Pernod Ricard is considering a bid . Pernod Ricard has yet to contact "
    "its target . "
)


def sample_records(n: int, simulator=None) -> list[dict]:
    """Damaged records of a built-in sample text, for when no dataset is at hand."""
    from .simulate import Simulator

    sim = simulator or Simulator()
    return [sim.damage(f"sample-{i}", SAMPLE * (1 + i % 6), sample=i).to_record() for i in range(n)]


def format_summary(result: dict) -> str:
    lines = ["| measure | corefix | baseline | ratio |", "|---|---|---|---|"]
    p = result.get("prediction")
    if p:
        lines.append(f"| prediction, words/s | {p['corefix_words_per_s']['median']:.0f} | "
                     f"{p['pipeline_words_per_s']['median']:.0f} (pipeline) | {p['speedup']:.2f}x |")
        lines.append(f"| same decisions as the pipeline | {100 * p['same_decisions']:.2f} % of words | | |")
    t = result.get("training")
    if t:
        lines.append(f"| training, real tokens/s | {t['corefix_tokens_per_s']['median']:.0f} | "
                     f"{t['padded_baseline_tokens_per_s']['median']:.0f} (padded fp32) | {t['speedup']:.2f}x |")
        lines.append(f"| training, dynamic padding alone (fp32) | {t['corefix_fp32_tokens_per_s']['median']:.0f} | | "
                     f"{t['speedup_from_padding_alone']:.2f}x |")
    m = result.get("memory")
    if m:
        for n, rec in m.items():
            lines.append(f"| peak RSS, one {int(n):,}-word article | {rec['peak_mib']:.0f} MiB | | "
                         f"{rec['ratio_to_smallest']:.2f}x of the smallest |")
    return "\n".join(lines)
