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
from .calibrate import METRICS, calibrate
from .fit_heads import fit_heads
from .card import ModelCard
from .decode import DECODINGS, DecodePolicy
from .features import WordFeatures, length_grouped_order, window_dataset
from .inference import predict_words
from .metrics import span_scores
from .network import DEFAULT_MODEL, configure_encoder, fit_token_types, load_tokenizer, new_model, save_trained
from .precision import TRAINING_PRECISIONS, cpu_name, training_precision
from .release import git_commit


@dataclass
class TrainConfig:
    model: str = DEFAULT_MODEL  # hub id, local path, or the offline default
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
        data: dict[str, Any] = read_yaml(path) if path is not None else {}
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


def training_record(steps_done: int, steps_planned: int, out_of_time: bool, precision) -> dict:
    """What the model card says of the run: steps done against planned, why it stopped, its precision."""
    record = {"steps_done": steps_done, "steps_planned": steps_planned,
              "stopped_by": "time budget" if out_of_time else "planned steps",
              "precision": precision.precision, "precision_reason": precision.reason, "cpu": cpu_name(),
              "commit": git_commit(Path(__file__).parent)}
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


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True) -> dict:
    """Train, validating every ``eval_every`` steps; returns the best validation scores."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm
    from transformers import DataCollatorForTokenClassification, get_scheduler

    run_dir = Path(cfg.run_dir)
    dirs = data_dirs(cfg.data_dir)
    excluded = tuple(cfg.exclude_profiles)
    wanted = None if cfg.eval_docs is None else max(cfg.eval_docs, cfg.calibration_docs or 0)
    all_val_records = read_records(dirs, "validation", wanted, excluded)
    val_records = all_val_records[: cfg.eval_docs] if cfg.eval_docs else all_val_records
    precision = training_precision(cfg.mixed_precision)
    # accelerate keeps one mixed-precision mode per process; a second run in the same process (a notebook,
    # the tests) may choose another. The distributed state (PartialState) is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=precision.precision, gradient_accumulation_steps=cfg.grad_accum)
    accelerator.print(f"precision: {precision.precision} ({precision.reason}; {cpu_name() if accelerator.device.type == 'cpu' else accelerator.device})")
    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    model = new_model(cfg.model)
    configure_model(model, cfg)
    features = fit_token_types(model, WordFeatures(cfg.case_feature, cfg.evidence))

    train_records = load_split(dirs, "train", excluded)
    if cfg.train_limit:
        train_records = train_records.select(range(min(cfg.train_limit, len(train_records))))
    train_stride = cfg.stride if cfg.train_stride is None else cfg.train_stride
    windows = window_dataset(train_records, tokenizer, cfg.max_length, train_stride, features)
    lengths = list(windows["length"])
    feats = windows.remove_columns("length")  # memory-mapped Arrow: read a batch at a time
    if not lengths:
        raise ValueError(f"{', '.join(str(d) for d in dirs)}: no training windows")
    collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8 if accelerator.mixed_precision != "no" else None)

    steps_per_epoch = math.ceil(len(feats) / (cfg.batch_size * cfg.grad_accum * accelerator.num_processes))
    total_steps = cfg.max_steps or max(1, int(cfg.epochs * steps_per_epoch))
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm")
    groups = [
        {"params": [p for n, p in trainable if not any(k in n for k in no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in trainable if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    class_weights = torch.tensor([1.0] + [cfg.inserted_weight] * 4, device=accelerator.device)

    def compute_loss(batch):
        labels = batch.pop("labels")
        logits = model(**batch).logits
        return torch.nn.functional.cross_entropy(
            logits.float().view(-1, logits.shape[-1]), labels.view(-1), weight=class_weights, ignore_index=-100)

    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "best_f1": -1.0, "elapsed_s": 0.0, "best": None}
    last_dir = run_dir / "last"
    if resume and (last_dir / "progress.json").is_file():
        accelerator.load_state(str(last_dir))
        state.update(json.loads((last_dir / "progress.json").read_text()))
        accelerator.print(f"resumed from {last_dir} at step {state['step']}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg)), encoding="utf-8")
    # the simulator settings of the training data, one entry per folder of the mixture
    sims = {str(d): json.loads((d / "simulate.json").read_text()) for d in dirs if (d / "simulate.json").is_file()}
    sim_settings = next(iter(sims.values())) if len(dirs) == 1 and sims else sims
    log_file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def log(rec):
        if accelerator.is_main_process:
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()

    def evaluate_and_checkpoint():
        unwrapped = accelerator.unwrap_model(model)
        scores = validate(unwrapped, tokenizer, val_records, cfg, features) if accelerator.is_main_process else {}
        if accelerator.is_main_process:
            f1 = scores.get("micro", {}).get("f1", 0.0)
            log({"step": state["step"], "eval": scores})
            if f1 > state["best_f1"]:
                state["best_f1"] = f1
                state["best"] = {"step": state["step"], "validation": scores}
                card = ModelCard(max_length=cfg.max_length, stride=cfg.stride, base_model=cfg.model,
                                 case_feature=features.case, evidence=features.evidence, step=state["step"], validation=scores,
                                 simulator=sim_settings, train_config=dataclasses.asdict(cfg),
                                 training=training_record(state["step"], total_steps, out_of_time, precision))
                save_trained(unwrapped, tokenizer, card, run_dir / "best")
            accelerator.print(f"step {state['step']}: validation micro F1 {f1:.4f} (best {state['best_f1']:.4f})")
        accelerator.wait_for_everyone()
        accelerator.save_state(str(last_dir))
        if accelerator.is_main_process:
            (last_dir / "progress.json").write_text(json.dumps(state))

    model.train()
    bar = tqdm(total=total_steps, initial=state["step"], desc="training", disable=not (progress and accelerator.is_local_main_process))
    start = time.monotonic() - state["elapsed_s"]
    done = state["step"] >= total_steps
    out_of_time = bool(state.get("out_of_time"))
    while not done:
        order = length_grouped_order(lengths, cfg.batch_size, cfg.seed + state["epoch"])
        loader = DataLoader(Subset(feats, order), batch_size=cfg.batch_size, shuffle=False, collate_fn=collator)
        loader = accelerator.prepare(loader)
        if state["batches_in_epoch"]:
            loader = accelerator.skip_first_batches(loader, state["batches_in_epoch"])
        running = 0.0
        for batch in loader:
            with accelerator.accumulate(model):
                loss = compute_loss(batch)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["batches_in_epoch"] += 1
            running += loss.item()
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            state["elapsed_s"] = time.monotonic() - start
            bar.update(1)
            if state["step"] % cfg.log_every == 0:
                avg = running / (cfg.log_every * cfg.grad_accum)
                running = 0.0
                bar.set_postfix(loss=f"{avg:.4f}")
                log({"step": state["step"], "loss": avg, "lr": scheduler.get_last_lr()[0],
                     "elapsed_s": round(state["elapsed_s"], 1)})
            out_of_time = cfg.max_minutes is not None and state["elapsed_s"] >= 60 * cfg.max_minutes
            state["out_of_time"] = out_of_time
            if state["step"] >= total_steps or out_of_time:
                done = True
                break
            if state["step"] % cfg.eval_every == 0:
                evaluate_and_checkpoint()
        else:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    bar.close()
    if out_of_time:
        accelerator.print(f"time budget of {cfg.max_minutes} min reached at step {state['step']} of {total_steps}")
    evaluate_and_checkpoint()
    if (run_dir / "best").is_dir():  # the best model's card says how far its run got, whatever step it was saved at
        best_card = ModelCard.load(run_dir / "best")
        best_card.training = training_record(state["step"], total_steps, out_of_time, precision)
        best_card.save(run_dir / "best")
    warning = undertrained_warning(state["step"], total_steps, out_of_time)
    if warning:
        accelerator.print(f"\n{'!' * 78}\nWARNING: {warning}\n{'!' * 78}\n")
        log({"step": state["step"], "warning": warning})
        log_file.close()
        raise Undertrained(warning, state["best"] or {})
    if accelerator.is_main_process and cfg.calibration_docs and all_val_records and (run_dir / "best").is_dir():
        card = calibrate(run_dir / "best", all_val_records[: cfg.calibration_docs], cfg.calibration_metric)
        info = card.calibration_info()
        log({"step": state["step"], **info})
        if state["best"] is not None:
            state["best"].update(info)
        cal = info["calibration"]
        metric = cal["metric"]
        tuned = ", ".join(f"{d} {cal[d][metric]:.4f} at {cal[d]['best_threshold']}" for d in DECODINGS)
        accelerator.print(f"decoding {info['decoding']}, threshold {info['threshold']} (validation micro {metric}: "
                          f"{tuned}; arg-max {cal['argmax_' + metric]:.4f}; {cal['articles']} articles)")
    if accelerator.is_main_process and cfg.heads_train_docs and (run_dir / "best").is_dir():
        dirs = data_dirs(cfg.data_dir)
        excluded = tuple(cfg.exclude_profiles)
        heads = fit_heads(run_dir / "best", read_records(dirs, "train", cfg.heads_train_docs, excluded),
                          read_records(dirs, "validation", cfg.heads_validation_docs, excluded),
                          seed=cfg.seed, progress=progress, log=accelerator.print)
        log({"step": state["step"], "heads": {k: v for k, v in heads.info.items() if k != "fill_thresholds"},
             "fill_threshold": heads.fill_threshold})
    log_file.close()
    return state["best"] or {}
