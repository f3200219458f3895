"""Measure what corefix costs beside what a user would otherwise run.

- prediction: corefix's path (windows of all articles sorted by length, padded
  per batch, ``torch.inference_mode``, then the decoding of the tags) against the plain Hugging Face
  ``pipeline("token-classification")`` on the same model and articles (given a
  ``stride`` so it sees whole articles), in words per second, with the share
  of words on which both make the same decision;
- training: corefix's training step (:func:`corefix.model.train.training_step`:
  the class-weighted loss, ``accelerate`` with bf16 where set, AdamW and the
  schedule) on its length-grouped, dynamically padded batches, against a plain
  step of the same model and batch size padded to the maximum length in fp32,
  in real (non-pad) tokens per second;
- restoration: the whole predict path with the span heads (gaps filled)
  against the same detector restoring with the pronoun rules alone;
- peak resident memory predicting one article of 1,000, 10,000 and 100,000
  words, each in a fresh process.

Every figure is a median over repetitions, with its spread, and a ratio to
its baseline measured in the same run, so the noise of a shared machine
cancels out.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import dataclasses

import torch

from ..words import word_offsets
from .card import ModelCard
from .decode import DecodePolicy
from .features import WordFeatures, build_features, length_grouped_order
from .inference import Detector
from .metrics import micro, span_scores
from .network import DEFAULT_MODEL, check_model_dir, configure_encoder, fit_token_types, load_tokenizer, new_model
from .precision import cpu_name, training_precision
from .options import MEASURES, InferenceOptions
from .timing import bench_memory


def _median_spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def _agreement(a: list[list[str]], b: list[list[str]], n_words: int) -> float:
    """Share of words tagged alike in two systems' tags of the same texts."""
    return sum(x == y for xs, ys in zip(a, b) for x, y in zip(xs, ys)) / max(n_words, 1)


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


# (name, precision, overlap): overlap None keeps the training stride, the same windows as the pipeline's
PREDICTION_PATHS = (("fp32", "fp32", None), ("fp32, overlap 32", "fp32", 32), ("bf16", "bf16", None),
                    ("bf16, overlap 32", "bf16", 32), ("int8", "int8", None))


def bench_prediction(model_dir: str, records: list[dict], repeats: int = 3, batch_size: int | None = None) -> dict:
    """Words/s of corefix's predict paths against the plain pipeline, measured in interleaved rounds
    (pipeline, then every path, ``repeats`` times) so that a slow spell of a shared machine hits all alike."""
    from transformers import pipeline

    texts = [r["text"] for r in records]
    n_words = sum(len(word_offsets(t)) for t in texts)
    fp32 = Detector.load(model_dir, InferenceOptions(batch_size=batch_size))
    pipe = pipeline("token-classification", model=fp32.model, tokenizer=fp32.tokenizer, stride=fp32.stride,
                    device=fp32.model.device)
    pipe.tokenizer.model_max_length = fp32.card.max_length  # the same window as corefix's
    detectors = {name: fp32 if (precision, overlap) == ("fp32", None) else
                 Detector.load(model_dir, InferenceOptions(batch_size=batch_size, precision=precision, overlap=overlap))
                 for name, precision, overlap in PREDICTION_PATHS}
    runs: dict[str, list[float]] = {"pipeline": [], **{name: [] for name in detectors}}
    outputs: dict = {}

    def timed(name, fn):
        t = time.perf_counter()
        outputs[name] = fn()
        runs[name].append(n_words / (time.perf_counter() - t))

    for _ in range(repeats):
        timed("pipeline", lambda: [pipeline_word_tags(pipe, x) for x in texts])
        for name, det in detectors.items():  # probabilities and the decoding of the tags, as predict does
            timed(name, lambda: [p.tags(det.policy) for p in det.predict(texts)])
    base = statistics.median(runs["pipeline"])
    result = {"words": n_words, "pipeline_words_per_s": _median_spread(runs["pipeline"]), "paths": {}}
    # Decisions against the pipeline: the pipeline cannot feed the case feature, so compare both
    # on the same inputs (token types all 0).
    card = fp32.card
    fp32.card = dataclasses.replace(card, case_feature=False, evidence=False)
    argmax = DecodePolicy("independent", None, titles=False)  # as the pipeline decides
    plain = [p.tags(argmax) for p in fp32.predict(texts)]
    fp32.card = card
    result["same_decisions_as_pipeline"] = _agreement(plain, outputs["pipeline"], n_words)
    gold = [r["tags"] for r in records] if all("tags" in r for r in records) else None
    reference = outputs["fp32"]
    for name, det in detectors.items():
        tags = outputs[name]
        rec = {"precision": det.precision.precision, "overlap": det.stride, "words_per_s": _median_spread(runs[name]),
               "speedup": statistics.median(runs[name]) / base,
               "same_decisions_as_fp32": _agreement(tags, reference, n_words)}
        if gold is not None:
            rec["micro_span_f1"] = micro(span_scores(gold, tags))
        result["paths"][name] = rec
    if gold is not None:
        for rec in result["paths"].values():
            rec["f1_change_points"] = 100 * (rec["micro_span_f1"] - result["paths"]["fp32"]["micro_span_f1"])
    return result


def bench_restoration(model_dir: str, records: list[dict], repeats: int = 3, batch_size: int | None = None) -> dict | None:
    """Words/s of the whole restoration (detection, then what goes in place of each span, then the text)
    with the model's span heads filling gaps, against the same detector restoring as before the heads
    (the pronoun rules, copies dropped), in interleaved rounds. None for a model without heads."""
    from .options import RestoreOptions
    from .predict import Restorer

    with_heads = Restorer.from_pretrained(model_dir, InferenceOptions(batch_size=batch_size), RestoreOptions(gaps="fill"))
    if with_heads.heads is None:
        return None
    rules = Restorer(with_heads.detector)  # the same detector, no heads
    texts = [r["text"] for r in records]
    n_words = sum(len(word_offsets(t)) for t in texts)
    runs: dict[str, list[float]] = {"rules, gaps dropped": [], "span heads, gaps filled": []}
    for _ in range(repeats):
        for name, restorer in (("rules, gaps dropped", rules), ("span heads, gaps filled", with_heads)):
            t = time.perf_counter()
            restorer.restore_many(texts)
            runs[name].append(n_words / (time.perf_counter() - t))
    base = statistics.median(runs["rules, gaps dropped"])
    return {"words": n_words, **{name: _median_spread(v) for name, v in runs.items()},
            "slowdown": base / statistics.median(runs["span heads, gaps filled"])}


def corefix_step(model, bf16: bool, total_steps: int):
    """corefix's own training step (:func:`corefix.model.train.training_step`) on the CPU, ready to call
    with a batch: accelerate (bf16 autocast when ``bf16``), AdamW and the linear schedule, the class-weighted
    loss, as ``train`` builds them."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from .train import TrainConfig, class_weights, make_optimizer, make_schedule, training_step

    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(cpu=True, mixed_precision="bf16" if bf16 else "no")
    cfg = TrainConfig(learning_rate=1e-4)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_schedule(optimizer, cfg, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    weights = class_weights(cfg, accelerator.device)
    return lambda batch: training_step(accelerator, model, optimizer, scheduler, batch, weights)


def plain_step(model):
    """The baseline: the model's own loss, backward, AdamW, in fp32."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(batch):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def bench_training(model_name: str, records: list[dict], batch_size: int, max_length: int, stride: int,
                   steps: int, repeats: int, bf16: bool, features: WordFeatures, recipe: dict | None = None) -> dict:
    """Real tokens per second of corefix's batching against padding to max_length.

    ``recipe`` (the run's ``dropout`` / ``freeze_word_embeddings``) adds a
    measurement of corefix's loop with the model configured as the run trains
    it; the loop-against-baseline ratio keeps the encoder's own settings on
    both sides.
    """
    from transformers import DataCollatorForTokenClassification

    tokenizer = load_tokenizer(model_name)
    feats = build_features(records, tokenizer, max_length, stride, features)
    lengths = [len(f["input_ids"]) for f in feats]
    order = length_grouped_order(lengths, batch_size, seed=0)
    dynamic = DataCollatorForTokenClassification(tokenizer)
    padded = DataCollatorForTokenClassification(tokenizer, padding="max_length", max_length=max_length)

    def run(collate, use_bf16, idx, configured=False, real_step=True):
        torch.manual_seed(0)
        model = new_model(model_name)
        fit_token_types(model, features)
        if configured:
            configure_encoder(model, **recipe)
        model.train()
        step = corefix_step(model, use_bf16, steps + 1) if real_step else plain_step(model)
        batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)][: steps + 1]
        tokens, elapsed = 0, 0.0
        for k, b in enumerate(batches):
            batch = collate([feats[i] for i in b])
            t = time.perf_counter()
            step(batch)
            if k:  # the first step warms up
                elapsed += time.perf_counter() - t
                tokens += int(batch["attention_mask"].sum())
        return tokens / elapsed

    import random

    rng = random.Random(0)
    shuffled = list(range(len(feats)))
    rng.shuffle(shuffled)
    ours, base, dyn_fp32, configured = [], [], [], []
    for _ in range(repeats):
        ours.append(run(dynamic, bf16, order))
        dyn_fp32.append(run(dynamic, False, order))
        base.append(run(padded, False, shuffled, real_step=False))
        if recipe:
            configured.append(run(dynamic, bf16, order, configured=True))
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # the CPU-only state of corefix_step, not left behind
    extra = {}
    if recipe:
        extra = {"recipe": recipe, "corefix_recipe_tokens_per_s": _median_spread(configured),
                 "speedup_with_recipe": statistics.median(configured) / statistics.median(base)}
    return {
        "windows": len(feats),
        "mean_window_tokens": statistics.fmean(lengths),
        "corefix_tokens_per_s": _median_spread(ours),
        "corefix_fp32_tokens_per_s": _median_spread(dyn_fp32),
        "padded_baseline_tokens_per_s": _median_spread(base),
        "speedup": statistics.median(ours) / statistics.median(base),
        "speedup_from_padding_alone": statistics.median(dyn_fp32) / statistics.median(base),
        "bf16": bf16,
        **extra,
    }


SAMPLE = (
    "Prime Minister Tony Blair said on Friday that he would meet Mr. Okafor in Accra . Mr. Blair told reporters "
    "that his talks with the Ghanaian leader would cover trade . Mr. Okafor has said he wants closer ties with the "
    "UK , and Blair agreed . The two men last met in London , where they spoke about rail links . Shares in "
    "Allied Domecq rose after reports that Pernod Ricard is considering a bid . Pernod Ricard has yet to contact "
    "its target . "
)


def sample_records(n: int, simulator=None) -> list[dict]:
    """Damaged records of a built-in sample text, for when no dataset is at hand."""
    from ..data.simulate import Simulator

    sim = simulator or Simulator()
    return [sim.damage(f"sample-{i}", SAMPLE * (1 + i % 6), sample=i).to_record() for i in range(n)]


def recipe_of(card: ModelCard) -> dict | None:
    """The model settings a trained run changed (dropout, frozen embeddings), if any."""
    cfg = card.train_config
    recipe = {}
    if cfg.get("dropout") is not None:
        recipe["dropout"] = cfg["dropout"]
    if cfg.get("freeze_word_embeddings"):
        recipe["freeze_word_embeddings"] = True
    return recipe or None


def run_benchmark(model: str | None, data: str, quick: bool, only: list[str] | None = None) -> dict:
    """The measurements (``only`` these, else all) of the model in ``model`` (None: the shipped model)."""
    import platform
    from pathlib import Path

    from ..data.records import read_jsonl

    n_articles, steps, repeats, train_repeats, sizes = (
        (8, 3, 1, 1, [1000, 10000]) if quick else (100, 8, 3, 2, [1000, 10000, 100000]))
    records = read_jsonl(data)[:n_articles] if Path(data).is_file() else sample_records(n_articles)
    model_dir = str(check_model_dir(model))  # None: the shipped model
    card = ModelCard.load(model_dir)
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": cpu_name(),
                    "torch": torch.__version__, "cuda": torch.cuda.is_available()},
        "model": model or "the shipped model",
        "articles": len(records), "quick": quick,
    }
    wanted = set(only or MEASURES)
    if "prediction" in wanted:
        print("prediction ...", file=sys.stderr)
        result["prediction"] = bench_prediction(model_dir, records, repeats)
    if "restoration" in wanted:
        print("restoration ...", file=sys.stderr)
        result["restoration"] = bench_restoration(model_dir, records, repeats)
    if "training" in wanted:
        print("training ...", file=sys.stderr)
        bf16 = training_precision("auto", "cpu").precision == "bf16"  # as training runs here (auto)
        result["training"] = bench_training(card.base_model or DEFAULT_MODEL, records, 8, card.max_length,
                                            card.stride, steps, train_repeats, bf16=bf16, features=card.features,
                                            recipe=recipe_of(card))
    if "memory" in wanted:
        print("memory ...", file=sys.stderr)
        result["memory"] = bench_memory(model_dir, sizes)
    return result


def format_summary(result: dict) -> str:
    lines = ["| measure | corefix | baseline | ratio |", "|---|---|---|---|"]
    p = result.get("prediction")
    if p:
        base = p["pipeline_words_per_s"]["median"]
        for name, rec in p["paths"].items():
            f1 = f", span F1 {rec['micro_span_f1']:.4f} ({rec['f1_change_points']:+.2f} pts)" if "micro_span_f1" in rec else ""
            lines.append(f"| prediction {name}, words/s{f1}, {100 * rec['same_decisions_as_fp32']:.2f} % same "
                         f"decisions as fp32 | {rec['words_per_s']['median']:.0f} | "
                         f"{base:.0f} (pipeline, fp32) | {rec['speedup']:.2f}x |")
        lines.append(f"| same decisions as the pipeline (same inputs, fp32) | "
                     f"{100 * p['same_decisions_as_pipeline']:.2f} % of words | | |")
    r = result.get("restoration")
    if r:
        lines.append(f"| restoration with span heads (gaps filled), words/s | {r['span heads, gaps filled']['median']:.0f} | "
                     f"{r['rules, gaps dropped']['median']:.0f} (pronoun rules, gaps dropped) | "
                     f"{1 / r['slowdown']:.2f}x ({r['slowdown']:.2f}x slower) |")
    t = result.get("training")
    if t:
        lines.append(f"| training, real tokens/s | {t['corefix_tokens_per_s']['median']:.0f} | "
                     f"{t['padded_baseline_tokens_per_s']['median']:.0f} (padded fp32) | {t['speedup']:.2f}x |")
        lines.append(f"| training, dynamic padding alone (fp32) | {t['corefix_fp32_tokens_per_s']['median']:.0f} | | "
                     f"{t['speedup_from_padding_alone']:.2f}x |")
        if "recipe" in t:
            recipe = ", ".join(f"{k} {v}" for k, v in t["recipe"].items())
            lines.append(f"| training as the run trains ({recipe}) | {t['corefix_recipe_tokens_per_s']['median']:.0f} | "
                         f"{t['padded_baseline_tokens_per_s']['median']:.0f} (padded fp32) | {t['speedup_with_recipe']:.2f}x |")
    m = result.get("memory")
    if m:
        for n, rec in m.items():
            lines.append(f"| peak RSS, one {int(n):,}-word article | {rec['peak_mib']:.0f} MiB "
                         f"(+{rec['growth_over_loaded_mib']:.0f} over the loaded model) | | "
                         f"{rec['ratio_to_smallest']:.2f}x of the smallest |")
    return "\n".join(lines)
