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
from .network import DEFAULT_MODEL, check_model_dir, configure_encoder, fit_token_types, load_tokenizer, new_model
from .precision import cpu_name, training_precision
from .options import AUTO_OVERLAP, MEASURES, InferenceOptions
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


# (name, runtime, precision, overlap): overlap None keeps the training stride, the same windows as the pipeline's
# (but for auto: what --runtime auto --precision auto runs here, its narrower overlap included).
# The first is the reference every other path's decisions and F1 are compared with.
PREDICTION_PATHS = (("torch fp32", "torch", "fp32", None), ("torch bf16", "torch", "bf16", None),
                    ("torch int8", "torch", "int8", None), ("onnx fp32", "onnx", "fp32", None),
                    ("onnx int8", "onnx", "int8", None), ("auto", "auto", "auto", None))


def prediction_paths(native_bf16: bool, onnx: bool) -> list[tuple[str, str, str, int | None]]:
    """The paths worth timing here: torch bf16 only where the CPU computes it natively (emulated it is 5x
    slower than fp32, docs/benchmarks.md, and would only stretch the run), the onnx paths where installed."""
    return [p for p in PREDICTION_PATHS if (p[2] != "bf16" or native_bf16) and (p[1] != "onnx" or onnx)]


def auto_path() -> dict:
    """What ``--runtime auto --precision auto`` runs on this machine, and why."""
    from .precision import inference_precision, inference_runtime

    runtime = inference_runtime("auto", "auto", "cpu")
    precision = inference_precision("auto", "cpu", runtime.precision)
    return {"runtime": runtime.precision, "precision": precision.precision, "overlap_at_most": AUTO_OVERLAP,
            "reason": f"{runtime.reason}; {precision.reason}; windows overlap by at most {AUTO_OVERLAP} tokens"}


def bench_prediction(model_dir: str, records: list[dict], repeats: int = 3, batch_size: int | None = None) -> dict:
    """Words/s of corefix's predict paths against the plain pipeline, measured in interleaved rounds
    (pipeline, then every path, ``repeats`` times) so that a slow spell of a shared machine hits all alike."""
    from transformers import pipeline

    from .metrics import micro, span_scores  # here: seqeval and scikit-learn are slow to import, and absent on some GPU machines
    from .onnx_engine import available
    from .precision import cpu_native_bf16

    texts = [r["text"] for r in records]
    n_words = sum(len(word_offsets(t)) for t in texts)
    fp32 = Detector.load(model_dir, InferenceOptions(batch_size=batch_size, runtime="torch"))
    pipe = pipeline("token-classification", model=fp32.model, tokenizer=fp32.tokenizer, stride=fp32.stride,
                    device=fp32.model.device)
    pipe.tokenizer.model_max_length = fp32.card.max_length  # the same window as corefix's
    paths = prediction_paths(cpu_native_bf16(), available())
    detectors = {name: fp32 if (runtime, precision, overlap) == ("torch", "fp32", None) else
                 Detector.load(model_dir, InferenceOptions(batch_size=batch_size, runtime=runtime, precision=precision,
                                                           overlap=overlap))
                 for name, runtime, precision, overlap in paths}
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
    reference = outputs[paths[0][0]]
    for name, det in detectors.items():
        tags = outputs[name]
        rec = {"runtime": det.runtime.precision, "precision": det.precision.precision, "overlap": det.stride,
               "words_per_s": _median_spread(runs[name]),
               "speedup": statistics.median(runs[name]) / base,
               "same_decisions_as_fp32": _agreement(tags, reference, n_words)}
        if gold is not None:
            rec["micro_span_f1"] = micro(span_scores(gold, tags))
        result["paths"][name] = rec
    if gold is not None:
        for rec in result["paths"].values():
            rec["f1_change_points"] = 100 * (rec["micro_span_f1"] - result["paths"][paths[0][0]]["micro_span_f1"])
    result["auto"] = auto_path()
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


def run_benchmark(model: str | None, data: str, quick: bool, only: list[str] | None = None,
                  device: str = "cpu") -> dict:
    """The measurements (``only`` these, else all) of the model in ``model`` (None: the shipped model).

    ``device`` other than ``cpu`` (``cuda``): prediction is measured there by :func:`bench_gpu` instead of
    :func:`bench_prediction`."""
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
    if "prediction" in wanted and device != "cpu":
        print(f"prediction on {device} ...", file=sys.stderr)
        det = Detector.load(model_dir, InferenceOptions(device=device, runtime="torch"))
        result["prediction_gpu"] = bench_gpu(det.model, det.tokenizer, det.card, [r["text"] for r in records],
                                             device, repeats)
    elif "prediction" in wanted:
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
        result["memory"] = bench_memory(model_dir, sizes)  # torch fp32, as before
        auto = auto_path()
        if (auto["runtime"], auto["precision"]) != ("torch", "fp32"):
            result["memory_auto"] = {**bench_memory(model_dir, sizes, runtime="auto", precision="auto"),
                                     "path": f"{auto['runtime']} {auto['precision']}"}
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
        if "auto" in p:
            lines.append(f"| auto here: {p['auto']['runtime']} {p['auto']['precision']} ({p['auto']['reason']}) | | | |")
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
    for key in ("memory", "memory_auto"):
        m = dict(result.get(key) or {})
        path = m.pop("path", "torch fp32")
        for n, rec in m.items():
            lines.append(f"| peak RSS, one {int(n):,}-word article, {path} | {rec['peak_mib']:.0f} MiB "
                         f"(+{rec['growth_over_loaded_mib']:.0f} over the loaded model) | | "
                         f"{rec['ratio_to_smallest']:.2f}x of the smallest |")
    if "prediction_gpu" in result:  # a table of its own, after the CPU's
        return "\n".join(lines) + "\n\n" + format_gpu_summary(result["prediction_gpu"])
    return "\n".join(lines)


# ---------------------------------------------------------------- prediction on a GPU (issue #24)

H200_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H200 (SXM) by NVIDIA's datasheet: the card's peak


def flops_per_window(config, length: int) -> int:
    """Matrix FLOPs of one forward pass over a window of ``length`` tokens.

    ``length * 2 * P + layers * 4 * length**2 * hidden``: ``P`` is the number of
    non-embedding matrix parameters (each layer's Q, K, V and output
    projections, ``4 * hidden**2``, and its two feed-forward matrices,
    ``2 * hidden * intermediate``, plus the classifier, ``hidden * labels``),
    each used once per token as a multiply and an add; the attention adds
    two products per layer (Q K^T and the weights times V), each
    ``2 * length * hidden`` per token. Biases, layer norms, GELU, softmax and
    the embedding look-ups are left out.
    """
    return length * 2 * matrix_parameters(config) + config.num_hidden_layers * 4 * length * length * config.hidden_size


def matrix_parameters(config) -> int:
    """Non-embedding matrix parameters of a BERT-style token classifier (biases and layer norms left out)."""
    d, ff = config.hidden_size, config.intermediate_size
    return config.num_hidden_layers * (4 * d * d + 2 * d * ff) + d * config.num_labels


def measure_matmul_peak(device, n: int = 8192, repeats: int = 10) -> float:
    """bf16 FLOP/s of an ``n``-cubed matrix product on ``device`` (random data, after three warm-ups)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t)


def gpu_peaks(device) -> dict:
    """The bf16 peaks to measure against (name: FLOP/s): a matrix product measured on ``device`` now, and
    the datasheet's figure where the card is an H200."""
    peaks = {}
    if "H200" in torch.cuda.get_device_name(device):
        peaks["bf16 spec"] = H200_BF16_PEAK
    peaks["bf16 matmul measured"] = measure_matmul_peak(device)
    return peaks


def gpu_machine(device) -> dict:
    """What the GPU benchmark ran on: the card (torch's name and nvidia-smi's line), torch, transformers, CPUs."""
    import platform
    import subprocess

    import transformers

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "cpus": os.cpu_count(),
            "processor": cpu_name(), "platform": platform.platform(), "device": str(device)}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32  # False: the fp32 paths multiply in full fp32
        try:
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            info["nvidia_smi"] = f"not available ({e})"
    return info


def _synced(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_gpu(model, tokenizer, card: ModelCard, texts: list[str], device: str = "cuda", repeats: int = 3,
              budget_s: float | None = None, peaks: dict | None = None, batch_tokens: int | None = None,
              bf16: bool | None = None, warmup_texts: int = 16, host_workers: int | None = None,
              checkpoint=None) -> dict:
    """Words/s of prediction on ``device`` (words in, tags out: tokenizing and decoding included), each path
    after a warm-up, in interleaved rounds, median of ``repeats``:

    - ``pipeline``: the plain Hugging Face ``pipeline("token-classification")`` on the device (the baseline);
    - ``predict_words fp32`` / ``predict_words bf16 autocast``: corefix's torch path as the detector runs it
      (:func:`corefix.model.inference.predict_words`, the card's decoding);
    - ``batched fp32`` / ``batched bf16``: :func:`corefix.model.batched.predict_words_batched` on the model,
      and on a copy with bf16 weights (:func:`corefix.model.batched.fast_copy`), decoded in bulk
      (:func:`corefix.model.decode.decode_tags_batch`);
    - ``batched bf16, N host processes``: the same with the host's work (words, windows, decoding) in ``N``
      worker processes (:class:`corefix.model.batched.HostPool`; ``host_workers``, None: one per CPU but
      one on a GPU, none elsewhere), the parent running the forward passes meanwhile.

    Beside words/s: tokens/s (the windows' real tokens), the FLOPs of those windows
    (:func:`flops_per_window`) per token and per word, the share of each of ``peaks`` (name: FLOP/s) that
    the path's FLOP/s reach, the peak device memory, and the share of words tagged as ``predict_words fp32``
    tags them. The batched paths are also timed without the host's work (the forward passes of all windows,
    inputs already on the device) and stage by stage. ``bf16`` (None: on a GPU) adds the bf16 paths.
    ``budget_s``: no new round once this many seconds have passed (one round at least).
    ``checkpoint(result)`` is called with what is measured so far.
    """
    from transformers import pipeline

    from .batched import BATCH_TOKENS, HostPool, corpus_windows, fast_copy, predict_words_batched, window_probs
    from .decode import decode_tags_batch
    from ..words import split_words

    start = time.perf_counter()
    device = torch.device(device)
    cuda = device.type == "cuda"
    bf16 = cuda if bf16 is None else bf16
    batch_tokens = batch_tokens or BATCH_TOKENS
    peaks = peaks or (gpu_peaks(device) if cuda else {"bf16 spec (H200)": H200_BF16_PEAK})
    model = model.to(device).eval()
    features = card.features
    split = [split_words(t) for t in texts]
    n_words = sum(len(o) for o, _ in split)
    windows = corpus_windows(tokenizer, [w for _, w in split], [features.type_ids(w) for _, w in split],
                             card.max_length, card.stride)
    flops = sum(flops_per_window(model.config, int(n)) for n in windows.lengths)
    result = {
        "machine": gpu_machine(device), "articles": len(texts), "words": n_words, "windows": len(windows.lengths),
        "tokens": windows.tokens, "tokens_per_word": windows.tokens / max(n_words, 1),
        "mean_window_tokens": float(windows.lengths.mean()) if len(windows.lengths) else 0.0,
        "window": card.max_length, "overlap": card.stride, "flops": flops,
        "flops_per_token": flops / max(windows.tokens, 1), "flops_per_word": flops / max(n_words, 1),
        "flops_per_token_at_window": flops_per_window(model.config, card.max_length) / card.max_length,
        "flops_formula": "per window of n tokens: n * 2 * P + layers * 4 * n^2 * hidden, P = layers * "
                         "(4 * hidden^2 + 2 * hidden * intermediate) + hidden * labels (non-embedding matrix "
                         "parameters); summed over the articles' windows (real tokens, overlap included)",
        "matrix_parameters": matrix_parameters(model.config),
        "peaks_flops_per_s": peaks, "batch_tokens": batch_tokens, "repeats": repeats, "paths": {},
    }
    policy = card.policy

    pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, stride=card.stride, device=device)
    pipe.tokenizer.model_max_length = card.max_length  # the same window as corefix's
    paths = {"pipeline": lambda xs: [pipeline_word_tags(pipe, x) for x in xs]}

    def detector_path(precision):
        det = Detector(model, tokenizer, card, InferenceOptions(precision=precision))
        return lambda xs: [p.tags(det.policy) for p in det.predict(xs)], det.batch_size

    def batched_path(net):
        def run(xs):
            preds = predict_words_batched(net, tokenizer, xs, card.max_length, card.stride, features, batch_tokens)
            return decode_tags_batch([p.probs for p in preds], [p.words for p in preds], policy)
        return run

    batch_sizes = {}
    paths["predict_words fp32"], batch_sizes["predict_words fp32"] = detector_path("fp32")
    if bf16:
        paths["predict_words bf16 autocast"], batch_sizes["predict_words bf16 autocast"] = detector_path("bf16")
    paths["batched fp32"] = batched_path(model)
    nets = {"batched fp32": model}
    if bf16:
        nets["batched bf16"] = fast_copy(model, torch.bfloat16)
        result["batched_bf16_attention"] = getattr(nets["batched bf16"].config, "_attn_implementation", None)
        paths["batched bf16"] = batched_path(nets["batched bf16"])
    if host_workers is None:
        host_workers = max(1, (os.cpu_count() or 2) - 1) if cuda else 0
    pool = None
    if host_workers:
        pool = HostPool(tokenizer, host_workers, card.max_length, card.stride, features)
        net = nets["batched bf16" if bf16 else "batched fp32"]
        paths[f"batched {'bf16' if bf16 else 'fp32'}, {host_workers} host processes"] = (
            lambda xs: pool.predict(net, xs, policy, batch_tokens)[1])

    try:
        for fn in paths.values():  # warm-up: kernels chosen, allocator grown, first-call costs paid
            fn(texts[:warmup_texts])
        runs = {name: [] for name in paths}
        peak_mem = {name: 0 for name in paths}
        outputs: dict = {}
        for r in range(repeats):
            for name, fn in paths.items():
                if cuda:
                    torch.cuda.reset_peak_memory_stats(device)
                _synced(device)
                t = time.perf_counter()
                outputs[name] = fn(texts)
                _synced(device)
                runs[name].append(time.perf_counter() - t)
                if cuda:
                    peak_mem[name] = max(peak_mem[name], torch.cuda.max_memory_allocated(device))
            print(f"round {r + 1}: " + ", ".join(f"{k} {n_words / v[-1]:.0f} words/s" for k, v in runs.items()),
                  file=sys.stderr)
            if budget_s is not None and time.perf_counter() - start > budget_s:
                break
    finally:
        if pool is not None:
            pool.close()

    reference = outputs["predict_words fp32"]
    for name, secs in runs.items():
        wps = [n_words / s for s in secs]
        rec = {"words_per_s": _median_spread(wps), "seconds": _median_spread(secs)}
        rec.update(_throughput(statistics.median(wps), result))
        rec["same_decisions_as_fp32"] = _agreement(outputs[name], reference, n_words)
        if name in batch_sizes:
            rec["batch_size"] = batch_sizes[name]
        if cuda:
            rec["peak_memory_mib"] = peak_mem[name] / 2 ** 20
        result["paths"][name] = rec
    base = result["paths"]["pipeline"]["words_per_s"]["median"]
    for rec in result["paths"].values():
        rec["speedup_over_pipeline"] = rec["words_per_s"]["median"] / base
    if checkpoint:
        checkpoint(result)

    # the batched paths without the host: forward passes of all windows, inputs on the device
    for name, net in nets.items():
        window_probs(net, windows, batch_tokens)  # warm-up
        secs = []
        for _ in range(max(repeats, 3)):
            _synced(device)
            t = time.perf_counter()
            window_probs(net, windows, batch_tokens)
            _synced(device)
            secs.append(time.perf_counter() - t)
        rec = {"seconds": _median_spread(secs)}
        rec.update(_throughput(n_words / statistics.median(secs), result))
        result["paths"][name]["forward_only"] = rec
    # where the time of the fastest batched path goes
    name = "batched bf16" if bf16 else "batched fp32"
    timings: dict = {}
    _synced(device)
    t = time.perf_counter()
    preds = predict_words_batched(nets[name], tokenizer, texts, card.max_length, card.stride, features, batch_tokens,
                                  timings=timings)
    d = time.perf_counter()
    tags = decode_tags_batch([p.probs for p in preds], [p.words for p in preds], policy)
    timings["decode"] = time.perf_counter() - d
    timings["total"] = time.perf_counter() - t
    result["paths"][name]["stages_s"] = timings
    # the bulk decoder against the per-article one, on the same probabilities
    one_by_one = [p.tags(policy) for p in preds]
    result["bulk_decoding_same_as_per_article"] = _agreement(tags, one_by_one, n_words)
    result["seconds"] = time.perf_counter() - start
    if checkpoint:
        checkpoint(result)
    return result


def _throughput(words_per_s: float, result: dict) -> dict:
    """Tokens/s, FLOP/s and the share of each peak at ``words_per_s`` (the articles' windows and FLOPs)."""
    flops_per_s = words_per_s * result["flops_per_word"]
    return {"tokens_per_s": words_per_s * result["tokens_per_word"], "flops_per_s": flops_per_s,
            "share_of_peak": {k: flops_per_s / v for k, v in result["peaks_flops_per_s"].items()}}


def bench_compiled_forward(model, tokenizer, card: ModelCard, texts: list[str], device: str = "cuda",
                           repeats: int = 5, batch_tokens: int | None = None) -> dict:
    """Forward passes of the articles' full-length windows in one fixed batch shape (no mask), eager and
    ``torch.compile``-d (the compile time apart), bf16 weights: how much fusing the small element-wise
    kernels of a 384-wide encoder gains on the device."""
    from .batched import BATCH_TOKENS, corpus_windows, fast_copy
    from ..words import split_words

    device = torch.device(device)
    batch_tokens = batch_tokens or BATCH_TOKENS
    split = [split_words(t) for t in texts]
    windows = corpus_windows(tokenizer, [w for _, w in split], [card.features.type_ids(w) for _, w in split],
                             card.max_length, card.stride)
    full = windows.lengths == card.max_length
    size = max(1, batch_tokens // card.max_length)
    n_batches = int(full.sum()) // size
    ids = torch.from_numpy(windows.ids[full][: n_batches * size, : card.max_length]).to(device)
    types = (torch.from_numpy(windows.types[full][: n_batches * size, : card.max_length]).to(device)
             if windows.types is not None else None)
    net = fast_copy(model.to(device), torch.bfloat16)
    flops = n_batches * size * flops_per_window(net.config, card.max_length)

    @torch.inference_mode()
    def run(fn):
        for b in range(n_batches):
            rows = slice(b * size, (b + 1) * size)
            extra = {"token_type_ids": types[rows]} if types is not None else {}
            fn(input_ids=ids[rows], **extra).logits.float().softmax(-1)

    out = {"windows": n_batches * size, "batch": [size, card.max_length], "flops": flops}
    for name, fn in (("eager", net), ("compiled", torch.compile(net, dynamic=False))):
        t = time.perf_counter()
        run(fn)  # warm-up (and the compile)
        _synced(device)
        first = time.perf_counter() - t
        secs = []
        for _ in range(repeats):
            t = time.perf_counter()
            run(fn)
            _synced(device)
            secs.append(time.perf_counter() - t)
        med = statistics.median(secs)
        out[name] = {"first_call_s": first, "seconds": _median_spread(secs),
                     "tokens_per_s": n_batches * size * card.max_length / med, "flops_per_s": flops / med}
        print(f"{name}: {out[name]['tokens_per_s']:.0f} tokens/s, {flops / med / 1e12:.1f} TFLOP/s", file=sys.stderr)
    return out


def format_gpu_summary(result: dict) -> str:
    """The GPU figures of :func:`bench_gpu` as one Markdown table."""
    peaks = list(result["peaks_flops_per_s"])
    head = "| path | words/s | tokens/s | TFLOP/s | " + " | ".join(f"share of {p}" for p in peaks)
    lines = [head + " | peak memory | same tags as fp32 | vs pipeline |",
             "|---|---:|---:|---:|" + "---:|" * len(peaks) + "---:|---:|---:|"]

    def row(label, words_per_s, rec):
        shares = " | ".join(f"{100 * rec['share_of_peak'][p]:.3g} %" for p in peaks)
        return f"| {label} | {words_per_s:,.0f} | {rec['tokens_per_s']:,.0f} | {rec['flops_per_s'] / 1e12:.3g} | {shares} |"

    for name, rec in result["paths"].items():
        mem = f"{rec['peak_memory_mib']:,.0f} MiB" if "peak_memory_mib" in rec else ""
        lines.append(row(name, rec["words_per_s"]["median"], rec) + f" {mem} | "
                     f"{100 * rec['same_decisions_as_fp32']:.2f} % | {rec['speedup_over_pipeline']:.2f}x |")
        fwd = rec.get("forward_only")
        if fwd:
            lines.append(row(f"{name}, forward passes only", result["words"] / fwd["seconds"]["median"], fwd)
                         + " | | |")
    lines.append(f"\n{result['articles']} articles, {result['words']:,} words, {result['windows']:,} windows, "
                 f"{result['tokens']:,} tokens ({result['tokens_per_word']:.3f} per word), "
                 f"{result['flops_per_token'] / 1e6:.2f} MFLOP per token, {result['flops_per_word'] / 1e6:.2f} MFLOP "
                 f"per word" + (f"; bulk decoding same as per article: {100 * result['bulk_decoding_same_as_per_article']:.2f} %"
                 if 'bulk_decoding_same_as_per_article' in result else ""))
    return "\n".join(lines)
