"""Fine-tune the token classifier: one training loop on ``accelerate``.

Runs on the CPU, on one GPU (with mixed precision when available) or, under
``accelerate launch``, on several. Everything lands under ``run_dir``:

- ``best/``: the model with the best validation span F1 (safetensors weights,
  tokenizer, and the model card ``corefix.json``: window settings, the
  decoding policy chosen by calibration, the simulator settings of the
  training data) -- what ``evaluate`` and ``predict`` take;
- ``last/``: the full training state (model, optimizer, scheduler, RNG,
  ``progress.json``) written at each evaluation, for resuming after a kill;
- ``metrics.jsonl``: one line per logged step and per evaluation.

:func:`train` trains only; calibration and the span heads come after it
(:func:`corefix.model.pipeline.train_model`, what ``corefix train`` runs). Its
parts: the data (:func:`load_training_data`), the optimizer and schedule
(:func:`make_optimizer`, :func:`make_schedule`), checkpointing
(:class:`Checkpoints`) and the loop (:func:`run_loop`, one optimizer step of
it :func:`training_step`, the step the benchmark times).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import check_fields, coerce_setting, parse_override, read_yaml, setting_types
from ..data.records import data_dirs, load_split, read_records
from .card import ModelCard
from .decode import DecodePolicy
from .features import WordFeatures, length_grouped_order, window_dataset
from .inference import predict_words
from .metrics import METRICS, span_scores
from .network import DEFAULT_MODEL, configure_encoder, fit_token_types, initial_model, save_trained
from .precision import TRAINING_PRECISIONS, cpu_name, training_precision
from .release import git_commit


@dataclass
class TrainConfig:
    model: str = DEFAULT_MODEL  # hub id, local path, the offline default, or a trained corefix model to fine-tune
    data_dir: str | list[str] = "data/bbc"  # folder with train.jsonl and validation.jsonl, or a list (a mixture)
    exclude_profiles: list[str] = dataclasses.field(default_factory=list)  # leave these damage profiles out
    run_dir: str = "runs/cpu-small"
    max_length: int = 256  # tokens per window
    stride: int = 64  # tokens of overlap between windows at inference (and in training unless train_stride is set)
    train_stride: int | None = None  # tokens of overlap between training windows (None: stride)
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set
    max_minutes: float | None = None  # stop (and keep the best) after this much training time
    eval_every: int = 200  # optimizer steps between validations
    eval_docs: int | None = 150  # validation articles used during training (None: all)
    calibration_docs: int | None = 200  # validation articles that choose the decoding and threshold (0: arg-max)
    calibration_metric: str = "f1"  # what calibration maximises: f1, or f0.5 (precision counts twice)
    log_every: int = 10
    case_feature: bool = True  # feed capitalisation through token_type_ids (needs type_vocab_size >= 2)
    evidence: bool = False  # feed whole-article repeat evidence through token_type_ids (corefix.model.features)
    inserted_weight: float = 1.0  # loss weight of the non-O tags (inserted words are ~10 % of words)
    dropout: float | None = None  # set every dropout of the encoder to this (None: keep the encoder's)
    freeze_word_embeddings: bool = False  # keep the pretrained word-piece embeddings as they are
    seed: int = 42
    mixed_precision: str = "auto"  # auto (by what the hardware computes natively), no (fp32), fp16, bf16
    train_limit: int | None = None  # use only the first N training articles
    heads_train_docs: int = 0  # training articles the span heads are fitted on after training (0: no heads)
    heads_validation_docs: int = 300  # validation articles that choose the heads' fill threshold

    def __post_init__(self):
        if self.calibration_metric not in METRICS:
            raise ValueError(f"calibration_metric must be one of {', '.join(METRICS)}, got {self.calibration_metric!r}")
        if self.mixed_precision not in TRAINING_PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {', '.join(TRAINING_PRECISIONS)}, "
                             f"got {self.mixed_precision!r}")

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: list[str] | None = None) -> "TrainConfig":
        """The config of a YAML file with ``KEY=VALUE`` overrides, each value read as its setting's type."""
        return cls.with_overrides(read_yaml(path) if path is not None else {}, overrides)

    @classmethod
    def with_overrides(cls, data: dict[str, Any], overrides: list[str] | None = None) -> "TrainConfig":
        """The config of the settings ``data`` (a YAML file's, a model card's) with ``KEY=VALUE`` overrides,
        each value read as its setting's type."""
        data = dict(data)
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not KEY=VALUE")
            key, value = (part.strip() for part in item.split("=", 1))
            check_fields(cls, {key: value}, "training setting")
            data[key] = parse_override(key, setting_types(cls)[key], value)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        check_fields(cls, data, "training settings")
        types = setting_types(cls)
        return cls(**{k: coerce_setting(k, types[k], v) for k, v in data.items()})


MIN_TRAINED_SHARE = 0.75  # a run that a time budget stops before this share of its planned steps is undertrained


class Undertrained(RuntimeError):
    """A time budget ended the run before :data:`MIN_TRAINED_SHARE` of its planned steps."""

    def __init__(self, message: str, best: dict):
        super().__init__(message)
        self.best = best


def undertrained_warning(steps_done: int, steps_planned: int, out_of_time: bool) -> str | None:
    """The warning for a run its time budget stopped early, or None.

    The learning rate decays linearly to zero at the last planned step: a run
    stopped before three quarters of it never reached the small steps that
    settle the weights (its learning rate is still above a quarter of the
    peak), so its model is not what the config describes.
    """
    if not out_of_time or steps_planned <= 0 or steps_done >= MIN_TRAINED_SHARE * steps_planned:
        return None
    return (f"the time budget stopped training at step {steps_done} of {steps_planned} "
            f"({100 * steps_done / steps_planned:.0f} % of the planned steps, under {MIN_TRAINED_SHARE:.0%}): "
            f"the model is undertrained. Raise max_minutes, lower max_steps, or check the precision "
            f"(mixed_precision: auto runs fp32 where bf16 is only emulated)")


def training_record(steps_done: int, steps_planned: int, out_of_time: bool, precision, commit: str | None) -> dict:
    """What the model card says of the run: steps done against planned, why it stopped, its precision, the
    code's ``commit``."""
    record = {"steps_done": steps_done, "steps_planned": steps_planned,
              "stopped_by": "time budget" if out_of_time else "planned steps",
              "precision": precision.precision, "precision_reason": precision.reason, "cpu": cpu_name(),
              "commit": commit}
    warning = undertrained_warning(steps_done, steps_planned, out_of_time)
    if warning:
        record["warning"] = warning
    return record


def configure_model(model, cfg: TrainConfig) -> None:
    """Apply the config's dropout and embedding freeze to a fresh model (:func:`corefix.model.network.configure_encoder`)."""
    configure_encoder(model, cfg.dropout, cfg.freeze_word_embeddings)


def validate(model, tokenizer, records: list[dict], cfg: TrainConfig, features: WordFeatures) -> dict:
    """Span scores of ``model`` on ``records`` (whole articles, windows merged), Viterbi with no threshold."""
    model.eval()
    preds = predict_words(model, tokenizer, [r["text"] for r in records], cfg.max_length, cfg.stride,
                          features=features)
    model.train()
    return span_scores([r["tags"] for r in records], [p.tags(DecodePolicy()) for p in preds])


@dataclass
class TrainingData:
    """What a run trains and validates on."""

    windows: Any  # the training windows (memory-mapped Arrow, read a batch at a time)
    lengths: list[int]  # tokens of each window, for length-grouped batches
    validation: list[dict]  # the validation articles scored during training
    simulator: dict  # the simulator settings of the training data (one entry per folder of a mixture)


def load_training_data(cfg: TrainConfig, tokenizer, features: WordFeatures) -> TrainingData:
    """The training windows (:func:`corefix.model.features.window_dataset`) and validation articles of ``cfg``."""
    dirs = data_dirs(cfg.data_dir)
    excluded = tuple(cfg.exclude_profiles)
    # eval_docs None: every validation article; 0: as many as calibration reads
    wanted = None if cfg.eval_docs is None else max(cfg.eval_docs, cfg.calibration_docs or 0)
    validation = read_records(dirs, "validation", wanted, excluded)[: cfg.eval_docs or None]
    train_records = load_split(dirs, "train", excluded)
    if cfg.train_limit:
        train_records = train_records.select(range(min(cfg.train_limit, len(train_records))))
    train_stride = cfg.stride if cfg.train_stride is None else cfg.train_stride
    windows = window_dataset(train_records, tokenizer, cfg.max_length, train_stride, features)
    lengths = list(windows["length"])
    if not lengths:
        raise ValueError(f"{', '.join(str(d) for d in dirs)}: no training windows")
    sims = {str(d): json.loads((d / "simulate.json").read_text()) for d in dirs if (d / "simulate.json").is_file()}
    simulator = next(iter(sims.values())) if len(dirs) == 1 and sims else sims
    return TrainingData(windows.remove_columns("length"), lengths, validation, simulator)


def planned_steps(cfg: TrainConfig, n_windows: int, num_processes: int) -> int:
    """Optimizer steps of the run: ``max_steps``, or ``epochs`` over the windows shared by the processes."""
    steps_per_epoch = math.ceil(n_windows / (cfg.batch_size * cfg.grad_accum * num_processes))
    return cfg.max_steps or max(1, int(cfg.epochs * steps_per_epoch))


NO_DECAY = ("bias", "LayerNorm.weight", "layernorm", "norm")  # parameters trained without weight decay


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, without weight decay on biases and norms."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if not any(k in n for k in NO_DECAY)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in trainable if any(k in n for k in NO_DECAY)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate)


def make_schedule(optimizer, cfg: TrainConfig, total_steps: int, num_processes: int = 1):
    """Linear warmup then linear decay to zero at the last of ``total_steps`` optimizer steps.

    ``accelerate`` steps a prepared scheduler once per process at each
    optimizer step, so under ``accelerate launch`` with N processes the
    schedule is N times as long as the optimizer steps (as in Hugging Face's
    ``no_trainer`` examples); otherwise the learning rate would reach zero
    after 1/N of the run.
    """
    from transformers import get_scheduler

    return get_scheduler("linear", optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps) * num_processes,
                         num_training_steps=total_steps * num_processes)


def class_weights(cfg: TrainConfig, device) -> torch.Tensor:
    """The loss weight of each tag: 1 for ``O``, ``inserted_weight`` for the others."""
    return torch.tensor([1.0] + [cfg.inserted_weight] * 4, device=device)


def batch_loss(model, batch: dict, weights: torch.Tensor) -> torch.Tensor:
    """The class-weighted token cross-entropy of one batch (``labels`` -100 ignored)."""
    batch = dict(batch)
    labels = batch.pop("labels")
    logits = model(**batch).logits
    return torch.nn.functional.cross_entropy(
        logits.float().view(-1, logits.shape[-1]), labels.view(-1), weight=weights, ignore_index=-100)


def training_step(accelerator, model, optimizer, scheduler, batch: dict, weights: torch.Tensor) -> float:
    """One batch of the loop: loss, backward, and (at the end of gradient accumulation) the optimizer and
    schedule step; the batch's loss."""
    with accelerator.accumulate(model):
        loss = batch_loss(model, batch, weights)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return loss.item()


@dataclass
class Progress:
    """Where a run stands; saved with each checkpoint (``progress.json``) so a killed run resumes."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_f1: float = -1.0
    elapsed_s: float = 0.0
    best: dict | None = None
    out_of_time: bool = False


class Checkpoints:
    """The run folder: ``best/`` (the best model, with its card), ``last/`` (the whole training state),
    ``metrics.jsonl`` (what the run logs), ``train_config.yaml``."""

    def __init__(self, cfg: TrainConfig, accelerator, tokenizer, features: WordFeatures, data: TrainingData,
                 total_steps: int, precision, base_model: str | None = None):
        self.cfg, self.accelerator, self.tokenizer, self.features = cfg, accelerator, tokenizer, features
        self.base_model = cfg.model if base_model is None else base_model  # the encoder under a fine-tuned model
        self.data, self.total_steps, self.precision = data, total_steps, precision
        self.commit = git_commit(Path(__file__).parent)  # the code this run trains with, asked of git once
        self.run_dir = Path(cfg.run_dir)
        self.last_dir = self.run_dir / "last"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "train_config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg)), encoding="utf-8")
        self.log_file = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def resume(self, progress: Progress) -> Progress:
        """The progress of the last checkpoint, its state loaded into the prepared objects; else ``progress``."""
        if not (self.last_dir / "progress.json").is_file():
            return progress
        self.accelerator.load_state(str(self.last_dir))
        saved = json.loads((self.last_dir / "progress.json").read_text())
        progress = dataclasses.replace(progress, **{k: v for k, v in saved.items() if k in Progress.__dataclass_fields__})
        self.accelerator.print(f"resumed from {self.last_dir} at step {progress.step}")
        return progress

    def log(self, rec: dict) -> None:
        if self.accelerator.is_main_process:
            self.log_file.write(json.dumps(rec) + "\n")
            self.log_file.flush()

    def record(self, progress: Progress) -> dict:
        return training_record(progress.step, self.total_steps, progress.out_of_time, self.precision, self.commit)

    def save_best(self, model, progress: Progress, scores: dict) -> None:
        cfg, features = self.cfg, self.features
        card = ModelCard(max_length=cfg.max_length, stride=cfg.stride, base_model=self.base_model,
                         case_feature=features.case, evidence=features.evidence, step=progress.step, validation=scores,
                         simulator=self.data.simulator, train_config=dataclasses.asdict(cfg),
                         training=self.record(progress))
        save_trained(model, self.tokenizer, card, self.run_dir / "best")

    def evaluate_and_save(self, model, progress: Progress) -> None:
        """Validate, keep the model if it is the best yet, and save the whole state to ``last/``."""
        acc = self.accelerator
        if acc.is_main_process:
            unwrapped = acc.unwrap_model(model)
            scores = validate(unwrapped, self.tokenizer, self.data.validation, self.cfg, self.features)
            f1 = scores.get("micro", {}).get("f1", 0.0)
            self.log({"step": progress.step, "eval": scores})
            if f1 > progress.best_f1:
                progress.best_f1 = f1
                progress.best = {"step": progress.step, "validation": scores}
                self.save_best(unwrapped, progress, scores)
            acc.print(f"step {progress.step}: validation micro F1 {f1:.4f} (best {progress.best_f1:.4f})")
        acc.wait_for_everyone()
        acc.save_state(str(self.last_dir))
        if acc.is_main_process:
            (self.last_dir / "progress.json").write_text(json.dumps(dataclasses.asdict(progress)))

    def finish(self, progress: Progress) -> None:
        """The best model's card says how far its run got, whatever step it was saved at."""
        best_dir = self.run_dir / "best"
        if self.accelerator.is_main_process and best_dir.is_dir():
            card = ModelCard.load(best_dir)
            card.training = self.record(progress)
            card.save(best_dir)

    def close(self) -> None:
        self.log_file.close()


class RunningLoss:
    """The mean loss of the batches since the last log line, whatever epochs they came from."""

    def __init__(self):
        self.total, self.batches = 0.0, 0

    def add(self, loss: float) -> None:
        self.total += loss
        self.batches += 1

    def take(self) -> float:
        mean = self.total / max(self.batches, 1)
        self.total, self.batches = 0.0, 0
        return mean


def run_loop(cfg: TrainConfig, accelerator, model, optimizer, scheduler, data: TrainingData, collator,
             checkpoints: Checkpoints, progress: Progress, total_steps: int, show: bool) -> Progress:
    """Train from ``progress`` to ``total_steps`` (or the time budget), validating every ``eval_every`` steps."""
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    weights = class_weights(cfg, accelerator.device)
    model.train()
    bar = tqdm(total=total_steps, initial=progress.step, desc="training", disable=not (show and accelerator.is_local_main_process))
    start = time.monotonic() - progress.elapsed_s
    running = RunningLoss()
    done = progress.step >= total_steps
    while not done:
        order = length_grouped_order(data.lengths, cfg.batch_size, cfg.seed + progress.epoch)
        loader = accelerator.prepare(DataLoader(Subset(data.windows, order), batch_size=cfg.batch_size, shuffle=False,
                                                collate_fn=collator))
        if progress.batches_in_epoch:
            loader = accelerator.skip_first_batches(loader, progress.batches_in_epoch)
        for batch in loader:
            running.add(training_step(accelerator, model, optimizer, scheduler, batch, weights))
            progress.batches_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            progress.step += 1
            progress.elapsed_s = time.monotonic() - start
            bar.update(1)
            if progress.step % cfg.log_every == 0:
                avg = running.take()
                bar.set_postfix(loss=f"{avg:.4f}")
                checkpoints.log({"step": progress.step, "loss": avg, "lr": scheduler.get_last_lr()[0],
                                 "elapsed_s": round(progress.elapsed_s, 1)})
            progress.out_of_time = cfg.max_minutes is not None and progress.elapsed_s >= 60 * cfg.max_minutes
            if progress.step >= total_steps or progress.out_of_time:
                done = True
                break
            if progress.step % cfg.eval_every == 0:
                checkpoints.evaluate_and_save(model, progress)
        else:
            progress.epoch += 1
            progress.batches_in_epoch = 0
    bar.close()
    return progress


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True) -> dict:
    """Train, validating every ``eval_every`` steps; returns the best validation scores.

    An undertrained run (:func:`undertrained_warning`) raises :class:`Undertrained`. Calibration and the
    span heads are not this function's: :func:`corefix.model.pipeline.train_model` runs them after it.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed
    from transformers import DataCollatorForTokenClassification

    precision = training_precision(cfg.mixed_precision)
    # accelerate keeps one mixed-precision mode per process; a second run in the same process (a notebook,
    # the tests) may choose another. The distributed state (PartialState) is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=precision.precision, gradient_accumulation_steps=cfg.grad_accum)
    accelerator.print(f"precision: {precision.precision} ({precision.reason}; {cpu_name() if accelerator.device.type == 'cpu' else accelerator.device})")
    set_seed(cfg.seed)
    model, tokenizer, base_model = initial_model(cfg.model)
    configure_model(model, cfg)
    features = fit_token_types(model, WordFeatures(cfg.case_feature, cfg.evidence))
    data = load_training_data(cfg, tokenizer, features)
    collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8 if accelerator.mixed_precision != "no" else None)
    total_steps = planned_steps(cfg, len(data.windows), accelerator.num_processes)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_schedule(optimizer, cfg, total_steps, accelerator.num_processes)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    checkpoints = Checkpoints(cfg, accelerator, tokenizer, features, data, total_steps, precision, base_model)
    state = checkpoints.resume(Progress()) if resume else Progress()
    state = run_loop(cfg, accelerator, model, optimizer, scheduler, data, collator, checkpoints, state, total_steps,
                     progress)
    if state.out_of_time:
        accelerator.print(f"time budget of {cfg.max_minutes} min reached at step {state.step} of {total_steps}")
    checkpoints.evaluate_and_save(model, state)
    checkpoints.finish(state)
    warning = undertrained_warning(state.step, total_steps, state.out_of_time)
    if warning:
        accelerator.print(f"\n{'!' * 78}\nWARNING: {warning}\n{'!' * 78}\n")
        checkpoints.log({"step": state.step, "warning": warning})
    checkpoints.close()
    if warning:
        raise Undertrained(warning, state.best or {})
    return state.best or {}
