"""What ``corefix train`` runs: train, then calibrate, then fit the span heads.

Each step is its own module and its own command (``corefix calibrate``,
``corefix fit-heads``); this one puts them in order on a run's ``best/``
model. An undertrained run (:class:`~corefix.model.train.Undertrained`) stops
after training: it is neither calibrated nor given heads.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.records import data_dirs, read_records
from .calibrate import calibrate
from .decode import DECODINGS
from .fit_heads import fit_heads
from .train import TrainConfig, train


def train_model(cfg: TrainConfig, resume: bool = True, progress: bool = True,
                gold_dirs: list[Path] | None = None) -> dict:
    """Train (:func:`~corefix.model.train.train`), calibrate the best model's decoding on
    ``calibration_docs`` validation articles, and fit its span heads on ``heads_train_docs`` training
    articles; returns the best validation scores with the calibration's choices. Under ``accelerate
    launch`` only the main process calibrates and fits.

    ``gold_dirs``: the dataset folders whose gold spans calibrate and fit the heads (None: ``data_dir``);
    pseudo-labelled folders (:mod:`corefix.model.adapt`) have tags but no gold spans."""
    from accelerate import PartialState

    best = train(cfg, resume=resume, progress=progress)
    best_dir = Path(cfg.run_dir) / "best"
    if not PartialState().is_main_process or not best_dir.is_dir():
        return best
    dirs, excluded = gold_dirs or data_dirs(cfg.data_dir), tuple(cfg.exclude_profiles)
    step = _last_step(best_dir)
    if cfg.calibration_docs:
        records = read_records(dirs, "validation", cfg.calibration_docs, excluded)
        if records:
            info = calibrate(best_dir, records, cfg.calibration_metric).calibration_info()
            _log(cfg, {"step": step, **info})
            if best:
                best.update(info)
            print(_calibration_line(info))
    if cfg.heads_train_docs:
        heads = fit_heads(best_dir, read_records(dirs, "train", cfg.heads_train_docs, excluded),
                          read_records(dirs, "validation", cfg.heads_validation_docs, excluded),
                          seed=cfg.seed, progress=progress, log=print)
        _log(cfg, {"step": step, "heads": {k: v for k, v in heads.info.items() if k != "fill_thresholds"},
                   "fill_threshold": heads.fill_threshold})
    return best


def training_split(model_dir: Path, split: str, limit: int | None) -> tuple[str, list[dict]]:
    """``(description, records)``: up to ``limit`` records of a split of the data the model in ``model_dir``
    was trained on (every folder of a mixture, its excluded profiles left out), as its card records it;
    what ``corefix calibrate`` and ``corefix fit-heads`` read by default."""
    from .card import ModelCard

    cfg = ModelCard.load(model_dir).train_config
    dirs = data_dirs(cfg.get("data_dir") or ".")
    records = read_records(dirs, split, limit, tuple(cfg.get("exclude_profiles") or ()))
    return ", ".join(str(d / f"{split}.jsonl") for d in dirs), records


def _last_step(best_dir: Path) -> int | None:
    """The step the run stopped at, as the best model's card records it."""
    from .card import ModelCard

    return (ModelCard.load(best_dir).training or {}).get("steps_done")


def _log(cfg: TrainConfig, rec: dict) -> None:
    with open(Path(cfg.run_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def _calibration_line(info: dict) -> str:
    cal = info["calibration"]
    metric = cal["metric"]
    tuned = ", ".join(f"{d} {cal[d][metric]:.4f} at {cal[d]['best_threshold']}" for d in DECODINGS)
    return (f"decoding {info['decoding']}, threshold {info['threshold']} (validation micro {metric}: "
            f"{tuned}; arg-max {cal['argmax_' + metric]:.4f}; {cal['articles']} articles)")
