"""Packaging a trained model for release: compact weights, and a card that says where it came from.

``corefix package-model`` writes what :func:`corefix.model.network.save_compact`
keeps (only the tensors training changed, in float16), then records in the
card's ``release`` the command and config that trained it, its training data,
the code's commit and its scores on every evaluated test set. The model
shipped inside corefix (``src/corefix/default_model``) is made this way.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

from .card import ModelCard
from .network import SHIPPED_MODEL_DIR, SHIPPED_NAMES, check_model_dir, save_compact

SCORE_KEYS = ("precision", "recall", "f1", "f0.5")


def test_scores(eval_dirs: str | Path | list) -> dict[str, dict]:
    """The model's headline figures in each ``metrics.json`` under ``eval_dirs`` (one folder or several; one
    ``metrics.json`` per test set). A set of clean articles only (no gold span) also records the share of its
    articles with any flag, the figure a release is judged by there."""
    return _score_rows(_evaluations(eval_dirs))


def _evaluations(eval_dirs: str | Path | list) -> list[tuple[Path, dict]]:
    """Each ``*/metrics.json`` under ``eval_dirs`` (one folder or several), read: (path, result)."""
    dirs = [eval_dirs] if isinstance(eval_dirs, (str, Path)) else list(eval_dirs)
    paths = sorted(p for d in dirs for p in Path(d).glob("*/metrics.json"))
    return [(path, json.loads(path.read_text(encoding="utf-8"))) for path in paths]


def _score_rows(evaluations: list[tuple[Path, dict]]) -> dict[str, dict]:
    out = {}
    for path, result in evaluations:
        model = result.get("model")
        if not model:
            continue
        if path.parent.name in out:
            raise ValueError(f"two evaluations of the test set {path.parent.name!r} ({path.parent}): give one")
        spans = model["spans"]
        row = {"data": result.get("data"), "articles": result["articles"],
               **{f"span_{k}": round(spans.get("micro", {}).get(k, 0.0), 4) for k in SCORE_KEYS},
               "sub_f1": round(spans.get("SUB", {}).get("f1", 0.0), 4),
               "dup_f1": round(spans.get("DUP", {}).get("f1", 0.0), 4),
               "word_f1": round(model["words"]["f1"], 4),
               "first_mentions_flagged": round(model["first_mention_flag_rate"], 4),
               "wer_input": round(result["input"]["wer"], 4), "wer_model": round(model["wer"], 4),
               "wer_oracle": round(result["oracle"]["wer"], 4)}
        if not spans.get("micro", {}).get("support") and model.get("clean_articles"):
            row["clean_articles_flagged"] = round(model["clean_flag_rate"], 4)
        heads_row = result.get("restoration", {}).get("rows", {}).get("model, heads, gaps drop")
        if heads_row:
            row["wer_model_heads"] = round(heads_row["wer"], 4)
            if heads_row.get("pronoun_accuracy") is not None:
                row["pronoun_accuracy"] = round(heads_row["pronoun_accuracy"], 4)
        out[path.parent.name] = row
    return out


def git_commit(cwd: str | Path = ".") -> str | None:
    """The commit checked out in ``cwd`` (with ``+changes`` when the tree differs from it), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


class NotBetter(ValueError):
    """A new model that does not beat the released one on every test set."""


def not_better(name: str, new: dict[str, dict], old_row: dict) -> str | None:
    """Why ``new`` is not better than ``old_row`` on the test set ``name`` (None when it is): higher span F1, or,
    on a set of clean articles, no larger share of them flagged (0 % cannot be bettered), on as many articles
    (a set scored with another ``--limit`` is a different test set under the same name)."""
    if name not in new:
        return f"{name}: not evaluated"
    if new[name].get("articles") != old_row.get("articles"):
        return (f"{name}: scored on {new[name].get('articles')} articles against {old_row.get('articles')}: "
                "evaluate both models on the same articles")
    if "clean_articles_flagged" in old_row:
        flagged = new[name].get("clean_articles_flagged")
        if flagged is None or flagged > old_row["clean_articles_flagged"]:
            return f"{name}: clean articles flagged {flagged} against {old_row['clean_articles_flagged']}"
        return None
    if new[name]["span_f1"] <= old_row["span_f1"]:
        return f"{name}: span F1 {new[name]['span_f1']:.4f} against {old_row['span_f1']:.4f}"
    return None


def check_better(new: dict[str, dict], old: dict[str, dict]) -> None:
    """Raise :class:`NotBetter` unless ``new`` is better than ``old`` on every test set ``old`` was scored on
    (:func:`not_better`)."""
    worse = [why for name, row in old.items() if (why := not_better(name, new, row))]
    if worse:
        raise NotBetter("the new model is not better on every test set than the released one, which is kept "
                        f"({'; '.join(worse)}); --force replaces it anyway")


def package_model(model_dir: str | Path, out_dir: str | Path, eval_dir: str | Path | list | None = None,
                  command: str | None = None, config: str | None = None, force: bool = False) -> ModelCard:
    """Write ``model_dir`` compactly into ``out_dir`` with its release record; returns the card written.

    A released model already in ``out_dir`` is replaced only by one better on
    every test set it was scored on (unless ``force``).
    """
    scores = test_scores(eval_dir) if eval_dir else {}
    old = Path(out_dir) / "corefix.json"
    if old.is_file() and not force:
        check_better(scores, ModelCard.load(out_dir).release.get("test_scores", {}))
    save_compact(model_dir, out_dir)
    card = ModelCard.load(out_dir)
    train_cfg = card.train_config
    card.release = {
        "command": command,
        "config": config,
        "training_data": train_cfg.get("data_dir"),
        "steps": card.training.get("steps_done", card.step),
        "commit": card.training.get("commit") or git_commit(),
        "packaged": datetime.date.today().isoformat(),
        "test_scores": scores,
    }
    card.save(out_dir)
    return card


def record_scores(out_dir: str | Path, eval_dir: str | Path | list) -> ModelCard:
    """Score the released model in ``out_dir`` again: the test sets in ``eval_dir`` replace the card's rows of
    the same name (a larger set of articles, say), and the weights stay. Every evaluation there must be of the
    model in ``out_dir`` (``corefix evaluate --model OUT`` or, for the shipped model, no ``--model``)."""
    card = ModelCard.load(check_model_dir(out_dir))
    evaluations = _evaluations(eval_dir)
    for path, result in evaluations:
        evaluated = result.get("model_dir")
        evaluated = SHIPPED_MODEL_DIR if evaluated in SHIPPED_NAMES else Path(evaluated)
        if evaluated.resolve() != Path(out_dir).resolve():
            raise ValueError(f"{path} scored the model in {evaluated}, not the one in {out_dir}")
    scores = _score_rows(evaluations)
    if not scores:
        raise ValueError(f"no evaluation of a model (*/metrics.json) under {eval_dir}")
    card.release["test_scores"] = {**card.release.get("test_scores", {}), **scores}
    card.release.setdefault("rescored", []).append(
        {"date": datetime.date.today().isoformat(), "sets": sorted(scores), "commit": git_commit()})
    card.save(out_dir)
    return card
