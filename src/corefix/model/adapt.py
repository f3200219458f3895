"""Adapt a model to a damaged corpus of one's own, without its labels: noisy-student self-training.

Each round (``corefix adapt``, :func:`adapt`):

1. **Pseudo-labels.** The current model reads the unlabelled corpus
   (:class:`~corefix.model.inference.Detector`, its tags decoded under the
   model's own policy, as ``predict`` decodes them). A word's confidence is
   the probability of the tag chosen for it; a word below ``min_confidence``
   is tagged :data:`~corefix.model.features.IGNORE` (the loss skips it), and
   an article with more than ``max_uncertain`` of its words so tagged is left
   out (:func:`pseudo_label`). Only each article's text is read: any gold
   field the corpus holds is ignored.
2. **Trains.** The model is fine-tuned on those articles mixed with
   ``simulated_ratio`` times as many simulated training articles, at a lower
   learning rate, then calibrated and given span heads on the simulated
   data's gold spans: :func:`~corefix.model.pipeline.train_model`, what
   ``corefix train`` runs, on a config derived from the user's or the model
   card's (:func:`round_config`).
3. **Decides.** The models before and after are scored on labelled test
   files held out from everything (:func:`~corefix.model.reports.evaluate_files`,
   strict span F1, micro): the new model is kept only if its mean over the
   files is higher; otherwise adaptation stops with the old one.

Everything goes under ``out``: ``eval-start/`` (the starting model's
reports), ``round-K/`` (``pseudo/`` and ``simulated/``: the round's data; the
training run's ``best/`` and ``metrics.jsonl``; ``eval/``: the new model's
reports), ``adapt.json`` (every round's scores and decision, the chosen
model) and ``best/``: a copy of the chosen model, what ``corefix predict
--model`` takes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.corpus import Article, read_inputs
from ..data.records import data_dirs, read_jsonl, read_records, split_files
from ..words import TAG2ID
from .card import ModelCard
from .decode import DecodePolicy
from .features import IGNORE, repeat_evidence
from .inference import Detector, WordPredictions
from .network import check_model_dir
from .options import InferenceOptions
from .pipeline import train_model
from .reports import evaluate_files
from .train import TrainConfig, Undertrained

PSEUDO_PROFILE = "pseudo"  # the ``profile`` of a pseudo-labelled record
CHUNK = 256  # articles pseudo-labelled per call of the detector (bounds the memory of the probabilities)
# settings of the training config that adapt sets itself, and what sets them
ADAPT_SETS = {"model": "--model", "data_dir": "--data", "run_dir": "--out", "max_steps": "--steps",
              "learning_rate": "--learning-rate", "train_limit": "--simulated-ratio"}
CARD_SETS = ("max_length", "stride", "case_feature", "evidence")  # the model's own: its card's


NOTHING_TO_LEARN = ("nothing to learn from: no article of the corpus is confident enough (lower --min-confidence "
                    "or raise --max-uncertain)")


class NothingToLearn(ValueError):
    """No article of the corpus is confident enough to train on."""


@dataclass(frozen=True)
class AdaptSettings:
    """How adaptation runs: rounds, steps and learning rate of each, and which pseudo-labels count."""

    rounds: int = 1
    steps: int = 600  # optimizer steps of each round
    learning_rate: float = 5e-5  # lower than training's: the model is fine-tuned, not trained afresh
    min_confidence: float = 0.9  # a word whose chosen tag is less probable than this is ignored by the loss
    max_uncertain: float = 0.05  # an article with more than this share of ignored words is left out
    simulated_ratio: float = 1.0  # simulated training articles per pseudo-labelled article
    # a capitalised word that repeats an earlier word of the article and that the model keeps (tag O) is
    # ignored by the loss: the misses of a teacher on unseen damage are confident "O"s on repeated names
    # (docs/results.md, 2026-11-30), which would teach the student that those copies are genuine words
    ignore_repeated_names: bool = True

    def __post_init__(self):
        if self.rounds < 1 or self.steps < 1:
            raise ValueError("rounds and steps must be at least 1")
        if self.learning_rate <= 0:
            raise ValueError("the learning rate must be above 0")
        if not 0.0 < self.min_confidence <= 1.0:
            raise ValueError("min-confidence must be above 0 and at most 1")
        if not 0.0 <= self.max_uncertain <= 1.0:
            raise ValueError("max-uncertain must be between 0 and 1")
        if self.simulated_ratio <= 0:
            raise ValueError("simulated-ratio must be above 0")


@dataclass
class AdaptJob:
    """What ``corefix adapt`` was asked to do."""

    corpus: list[str]  # unlabelled damaged articles: files, folders, JSONL (their text field only)
    data: list[str]  # simulated dataset folder(s): train.jsonl, validation.jsonl
    test: list[str]  # labelled JSONL files that decide (held out from everything)
    model: str | None = None  # the model to adapt (None: the shipped model)
    out: str = "runs/adapt"
    config: str | None = None  # training config YAML (None: the one the model's card records)
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE, as ``corefix train`` takes them
    settings: AdaptSettings = field(default_factory=AdaptSettings)
    limit: int | None = None  # articles of the corpus
    text_field: str = "text"
    id_field: str = "id"


@dataclass
class PseudoLabels:
    """The pseudo-labelled records of a corpus and how many words and articles were too uncertain."""

    records: list[dict]
    articles: int  # articles read
    dropped: int  # articles left out: too many uncertain words
    words: int = 0  # words of the kept records
    ignored: int = 0  # of them, tagged IGNORE (both kinds)
    repeats: int = 0  # of those, kept repeated names (:func:`repeated_names`), not counted as uncertain

    def summary(self) -> dict:
        return {"articles": self.articles, "kept": len(self.records), "dropped": self.dropped,
                "words": self.words, "ignored_words": self.ignored, "ignored_repeated_names": self.repeats}


def chosen_confidence(prediction: WordPredictions, tags: list[str]) -> np.ndarray:
    """The probability of the tag chosen for each word."""
    return prediction.probs[np.arange(len(tags)), [TAG2ID[t] for t in tags]]


def pseudo_tags(prediction: WordPredictions, policy: DecodePolicy, min_confidence: float) -> list[str]:
    """An article's tags under ``policy``, :data:`IGNORE` where the chosen tag's probability is below
    ``min_confidence``."""
    tags = prediction.tags(policy)
    confidence = chosen_confidence(prediction, tags)
    return [t if c >= min_confidence else IGNORE for t, c in zip(tags, confidence)]


def repeated_names(words: list[str], tags: list[str]) -> np.ndarray:
    """True on each word tagged ``O`` that is capitalised and repeats an earlier word of the article (in any
    case, :func:`~corefix.model.features.repeat_evidence`): where a copy the model missed would hide."""
    levels = repeat_evidence(words)
    return np.array([t == "O" and w[:1].isupper() and lv % 4 != 0 for w, t, lv in zip(words, tags, levels)],
                    dtype=bool)


def pseudo_label(detector: Detector, articles: list[Article], min_confidence: float, max_uncertain: float,
                 progress: bool = True, ignore_repeated_names: bool = True) -> PseudoLabels:
    """Records (id, text, words, tags, profile ``pseudo``) of the articles the detector is sure enough of:
    at most ``max_uncertain`` of their words below ``min_confidence`` (:func:`pseudo_tags`). Only each
    article's text is read. ``ignore_repeated_names``: the :func:`repeated_names` the model keeps are
    :data:`IGNORE` too, whatever their confidence (not counted as uncertain)."""
    from tqdm.auto import tqdm

    out = PseudoLabels([], len(articles), 0)
    bar = tqdm(total=len(articles), desc="pseudo-labelling", unit="article", disable=not progress)
    for i in range(0, len(articles), CHUNK):
        chunk = articles[i:i + CHUNK]
        for article, prediction in zip(chunk, detector.predict([a.text for a in chunk])):
            tags = pseudo_tags(prediction, detector.policy, min_confidence)
            uncertain = tags.count(IGNORE)
            if not tags or uncertain > max_uncertain * len(tags):
                out.dropped += 1
                continue
            if ignore_repeated_names and prediction.words is not None:
                repeats = repeated_names(prediction.words, tags)
                tags = [IGNORE if r else t for t, r in zip(tags, repeats)]
                out.repeats += int(repeats.sum())
                uncertain += int(repeats.sum())
            out.records.append({"id": article.id, "text": article.text, "words": prediction.words, "tags": tags,
                                "profile": PSEUDO_PROFILE})
            out.words += len(tags)
            out.ignored += uncertain
        bar.update(len(chunk))
    bar.close()
    return out


def corpus_articles(sources: list[str], text_field: str, id_field: str, held_out: set[str],
                    limit: int | None, complain: Callable[[str], None]) -> tuple[list[Article], int]:
    """``(articles, held out)``: the first ``limit`` non-empty articles of the corpus (read as ``predict``
    reads its input) whose text is not one of ``held_out`` (the test articles), and how many were."""
    articles, _ = read_inputs(sources, text_field, id_field, complain)
    articles = [a for a in articles if a.text.strip()]
    kept = [a for a in articles if a.text not in held_out]
    return kept[:limit], len(articles) - len(kept)


def base_config(card: ModelCard, config: str | None, overrides: list[str]) -> TrainConfig:
    """The training config rounds start from: the YAML file ``config``, else the one the model's card
    records, with ``overrides`` (``KEY=VALUE``); the settings adapt owns cannot be overridden."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key in ADAPT_SETS:
            raise ValueError(f"--set {key}: adapt sets it itself (use {ADAPT_SETS[key]})")
        if key in CARD_SETS:
            raise ValueError(f"--set {key}: adapt keeps the model's own (its card's)")
    if config is not None:
        return TrainConfig.from_yaml(config, overrides)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig.with_overrides({k: v for k, v in card.train_config.items() if k in known}, overrides)


def round_config(base: TrainConfig, card: ModelCard, start: Path, dirs: list[Path], run_dir: Path,
                 settings: AdaptSettings) -> TrainConfig:
    """One round's training config: ``base`` fine-tuning ``start`` (whose card is ``card``: windows and
    features stay the model's) on ``dirs`` into ``run_dir``, with the round's steps and learning rate."""
    return dataclasses.replace(base, model=str(start), data_dir=[str(d) for d in dirs], run_dir=str(run_dir),
                               max_steps=settings.steps, learning_rate=settings.learning_rate, train_limit=None,
                               max_length=card.max_length, stride=card.stride, case_feature=card.case_feature,
                               evidence=card.evidence)


def write_jsonl(path: Path, records: list[dict]) -> None:
    """``records`` as one JSON line each (the folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_round_data(round_dir: Path, pseudo: list[dict], simulated: list[Path], ratio: float,
                     excluded: tuple[str, ...]) -> tuple[list[Path], int]:
    """The round's dataset folders and how many simulated training articles they hold: ``simulated/``,
    ``ratio`` times as many training articles as ``pseudo`` taken evenly from the ``simulated`` folders,
    and their validation articles (the round's validation set); ``pseudo/``, the pseudo-labelled
    articles, with an empty validation split. The simulated folder comes first: the training data's
    columns are read off it, and a pseudo-labelled record holds a subset of them."""
    sim_dir, pseudo_dir = round_dir / "simulated", round_dir / "pseudo"
    sample = read_records(simulated, "train", max(1, round(ratio * len(pseudo))), excluded)
    write_jsonl(sim_dir / "train.jsonl", sample)
    write_jsonl(sim_dir / "validation.jsonl", read_records(simulated, "validation", None, excluded))
    if len(simulated) == 1 and (simulated[0] / "simulate.json").is_file():  # the card records the settings
        shutil.copy(simulated[0] / "simulate.json", sim_dir / "simulate.json")
    write_jsonl(pseudo_dir / "train.jsonl", pseudo)
    write_jsonl(pseudo_dir / "validation.jsonl", [])
    return [sim_dir, pseudo_dir], len(sample)


def inference_options() -> InferenceOptions:
    """The options adapt runs models with: the card's policy, fp32, on the GPU where there is one."""
    import torch

    return InferenceOptions(device="cuda" if torch.cuda.is_available() else None)


def score_model(model_dir: Path, test_files: list[Path], out_dir: Path) -> dict[str, float]:
    """Strict span F1 (micro) of the model on each labelled test file, by file; the reports go under
    ``out_dir`` (:func:`~corefix.model.reports.evaluate_files`)."""
    from .predict import Restorer

    restorer = Restorer.from_pretrained(model_dir, inference_options())
    scores = {}
    for i, test in enumerate(test_files, 1):
        target = out_dir / f"test{i}-{test.stem}" / "metrics.json"
        result = next(iter(evaluate_files([test], restorer, str(target), model_dir=str(model_dir)).values()))
        scores[str(test)] = result["model"]["spans"].get("micro", {}).get("f1", 0.0)
    return scores


def mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)


def better(before: dict[str, float], after: dict[str, float]) -> bool:
    """Whether the scores ``after`` beat those ``before``: a strictly higher mean over the test files."""
    return mean(after) > mean(before)


def publish(model_dir: Path, dest: Path) -> None:
    """Copy the model directory to ``dest``, replacing it once the copy is whole."""
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(model_dir, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


@dataclass
class Rounds:
    """What every round shares: the job, the training config rounds start from, the folders and articles."""

    job: AdaptJob
    base: TrainConfig
    simulated: list[Path]
    test: list[Path]
    articles: list[Article]
    log: Callable[[str], None]
    progress: bool

    @property
    def out(self) -> Path:
        return Path(self.job.out)

    def pseudo_labels(self, k: int, model_dir: Path) -> PseudoLabels:
        """Pseudo-label the corpus with the model in ``model_dir``."""
        s = self.job.settings
        self.log(f"round {k}: pseudo-labelling {len(self.articles)} articles with {model_dir}")
        labels = pseudo_label(Detector.load(model_dir, inference_options()), self.articles, s.min_confidence,
                              s.max_uncertain, self.progress, s.ignore_repeated_names)
        self.log(f"round {k}: kept {len(labels.records)} articles, {labels.dropped} left out (over "
                 f"{s.max_uncertain:.0%} of their words below confidence {s.min_confidence}); "
                 f"{labels.ignored} of the {labels.words} words of the articles kept are ignored "
                 f"({labels.repeats} of them repeated names the model keeps)")
        return labels

    def train(self, k: int, model_dir: Path, labels: PseudoLabels) -> tuple[Path | None, dict]:
        """Fine-tune the model in ``model_dir`` on the pseudo-labels mixed with simulated articles:
        ``(the new model, or None if its run was undertrained; the round's data)``."""
        round_dir = self.out / f"round-{k}"
        card = ModelCard.load(model_dir)
        dirs, n_simulated = write_round_data(round_dir, labels.records, self.simulated,
                                             self.job.settings.simulated_ratio, tuple(self.base.exclude_profiles))
        cfg = round_config(self.base, card, model_dir, dirs, round_dir, self.job.settings)
        self.log(f"round {k}: fine-tuning for {cfg.max_steps} steps at learning rate {cfg.learning_rate} on "
                 f"{len(labels.records)} pseudo-labelled and {n_simulated} simulated articles, into {round_dir}")
        data = {"pseudo": {**labels.summary(), "path": str(dirs[1] / "train.jsonl")}, "simulated_articles": n_simulated}
        try:
            train_model(cfg, resume=False, progress=self.progress, gold_dirs=self.simulated)
        except Undertrained as e:
            self.log(f"round {k}: undertrained ({e}); keeping {model_dir}")
            return None, data
        finally:
            shutil.rmtree(round_dir / "last", ignore_errors=True)  # the optimizer state: no round resumes
        return round_dir / "best", data

    def run(self, k: int, model_dir: Path, before: dict[str, float], labels: PseudoLabels) -> dict:
        """Round ``k`` from the model in ``model_dir`` (scored ``before``) on its pseudo-labels: the round's
        record for ``adapt.json``."""
        round_dir = self.out / f"round-{k}"
        if round_dir.exists():  # a rerun redoes the round
            shutil.rmtree(round_dir)
        record = {"round": k, "model_before": str(model_dir), "before": before, "mean_before": mean(before)}
        new, data = self.train(k, model_dir, labels)
        record.update(data)
        if new is None:
            return {**record, "decision": "undertrained"}
        self.log(f"round {k}: scoring {new} on {len(self.test)} test files")
        after = score_model(new, self.test, round_dir / "eval")
        kept = better(before, after)
        self.log(f"round {k}: mean span F1 {mean(before):.4f} before, {mean(after):.4f} after: "
                 + ("keeping the new model" if kept else f"not better, keeping {model_dir}"))
        return {**record, "model_after": str(new), "after": after, "mean_after": mean(after),
                "decision": "kept" if kept else "rejected"}


def adapt(job: AdaptJob, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Run the job's rounds (the module's docstring); write ``adapt.json`` (after every round) and
    ``best/`` under ``job.out``; returns what ``adapt.json`` holds."""
    test = list(dict.fromkeys(Path(t) for t in job.test))
    if not test:
        raise ValueError("adapt needs labelled test files (--test FILE ...)")
    for t in test:
        if not t.is_file():
            raise FileNotFoundError(f"{t}: no such file")
    simulated = data_dirs(job.data)
    for split in ("train", "validation"):
        split_files(simulated, split)  # a missing one is an error now, not after the first scoring
    start = check_model_dir(job.model)
    base = base_config(ModelCard.load(start), job.config, job.overrides)
    held_out = {r.get("text") for t in test for r in read_jsonl(t)}
    articles, n_held_out = corpus_articles(job.corpus, job.text_field, job.id_field, held_out, job.limit,
                                           lambda msg: log(f"skipped {msg}"))
    if n_held_out:
        log(f"left out {n_held_out} corpus articles that are test articles")
    if not articles:
        raise ValueError("the corpus holds no article" + (" outside the --test files" if n_held_out else ""))
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    rounds = Rounds(job, base, simulated, test, articles, log, progress)
    report = {"start_model": str(start), "corpus": job.corpus, "articles": len(articles),
              "held_out_articles": n_held_out, "data": [str(d) for d in simulated], "test": [str(t) for t in test],
              "settings": dataclasses.asdict(job.settings), "rounds": [], "chosen": str(start)}
    current, scores = start, None
    for k in range(1, job.settings.rounds + 1):
        labels = rounds.pseudo_labels(k, current)
        if not labels.records:
            if k == 1:
                raise NothingToLearn(NOTHING_TO_LEARN)
            log(f"round {k}: {NOTHING_TO_LEARN}; stopping")
            report["rounds"].append({"round": k, "model_before": str(current), "pseudo": labels.summary(),
                                     "decision": "nothing to learn"})
            break
        if scores is None:  # the starting model, scored once the corpus is known to teach something
            log(f"scoring the starting model {start} on {len(test)} test files")
            scores = report["start_scores"] = score_model(start, test, out / "eval-start")
        record = rounds.run(k, current, scores, labels)
        report["rounds"].append(record)
        if record["decision"] == "kept":
            current, scores = Path(record["model_after"]), record["after"]
            report["chosen"] = str(current)
        _write_report(out, report)
        if record["decision"] != "kept":
            break
    log(f"copying the chosen model {current} to {out / 'best'}")
    publish(current, out / "best")
    report.update(chosen_scores=scores, best=str(out / "best"))
    _write_report(out, report)
    return report


def _write_report(out: Path, report: dict) -> None:
    (out / "adapt.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
