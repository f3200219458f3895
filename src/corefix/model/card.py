"""The model card, ``corefix.json``: what a trained model needs beside its weights.

:class:`ModelCard` is its one owner: the fields and their defaults are
stated here, and training, calibration, inference and the benchmark all read
and write the card through it. Cards carry a ``version``; a card written
before versions existed (version 1: no ``decoding`` or ``split_penalty``,
perhaps no ``threshold``) loads with the defaults below, and so does one
from before span heads (version 2: no ``heads``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .decode import DecodePolicy, check_decoding
from .features import WordFeatures

CARD_FILE = "corefix.json"
CARD_VERSION = 5  # 4: training (steps, precision, warning), weights (compact storage), release; 5: gate_density
READS_FROM = 1  # the oldest card version this corefix reads; cards say which reader version they need


class CardVersionError(ValueError):
    """A card this corefix cannot read: written for a newer card format."""


class CardWarning(UserWarning):
    """A card with fields this corefix does not know (written by a newer corefix): they are ignored."""


@dataclass
class ModelCard:
    max_length: int = 256  # tokens per window
    stride: int = 64  # tokens shared by neighbouring windows at inference
    base_model: str = ""  # the encoder the model was fine-tuned from
    case_feature: bool = False  # capitalisation fed through token_type_ids
    evidence: bool = False  # whole-article repeat evidence fed through token_type_ids (corefix.model.features)
    decoding: str = "viterbi"  # decoding policy chosen on validation data (corefix.model.decode)
    threshold: float | None = None
    split_penalty: float = 0.0
    first_mention_bias: float = 0.0
    article_gate: float = 0.0  # an article keeps its spans only if a flagged word is this sure (0: no gate)
    glued_copies: bool = False  # Viterbi lets a copy start inside the last word of a substitution (corefix.model.decode)
    gate_density: float = 0.0  # with a gate: sure spans per 100 words an article must hold (corefix.model.decode)
    calibration: dict = field(default_factory=dict)  # every candidate's validation F1
    step: int | None = None  # training step of the saved weights
    validation: dict = field(default_factory=dict)  # validation scores at that step
    simulator: dict = field(default_factory=dict)  # simulator settings of the training data
    train_config: dict = field(default_factory=dict)
    heads: dict = field(default_factory=dict)  # span heads' classes and fill threshold (corefix.model.heads); {}: none
    training: dict = field(default_factory=dict)  # steps done/planned, why it stopped, precision and why, warning
    weights: dict = field(default_factory=dict)  # compact storage: what comes from the base encoder (model.network)
    release: dict = field(default_factory=dict)  # a shipped model: command, config, data, commit, test scores
    version: int = CARD_VERSION
    needs_reader: int = 1  # the lowest card format a reader must know to use this card

    @property
    def warning(self) -> str | None:
        """What a user of this model must be told (an undertrained run), or None."""
        return self.training.get("warning") or None

    @property
    def features(self) -> WordFeatures:
        return WordFeatures(self.case_feature, self.evidence)

    @property
    def policy(self) -> DecodePolicy:
        return DecodePolicy(self.decoding, self.threshold, self.split_penalty,
                            first_mention_bias=self.first_mention_bias, article_gate=self.article_gate,
                            glued_copies=self.glued_copies, gate_density=self.gate_density)

    def calibration_info(self) -> dict[str, Any]:
        """The decoding policy the card holds and the calibration that chose it, for printing and logs."""
        return {"decoding": self.decoding, "threshold": self.threshold, "split_penalty": self.split_penalty,
                "first_mention_bias": self.first_mention_bias, "article_gate": self.article_gate,
                "gate_density": self.gate_density, "glued_copies": self.glued_copies,
                "calibration": self.calibration}

    def with_policy(self, policy: DecodePolicy, calibration: dict) -> "ModelCard":
        return dataclasses.replace(self, decoding=policy.decoding, threshold=policy.threshold,
                                   split_penalty=policy.split_penalty, first_mention_bias=policy.first_mention_bias,
                                   article_gate=policy.article_gate, gate_density=policy.gate_density,
                                   glued_copies=policy.glued_copies,
                                   calibration=calibration)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        """A card from its JSON fields; missing ones take the defaults.

        A card written by a newer corefix loads when this one can read its
        format (``needs_reader``), its unknown fields ignored with a
        :class:`CardWarning` naming them; otherwise a :class:`CardVersionError`
        says which card format it needs.
        """
        data = {"version": 1, **data}  # a card without a version predates versions
        needs = data.get("needs_reader", 1)
        if not isinstance(needs, int) or needs > CARD_VERSION:
            raise CardVersionError(f"model card format {data.get('version')} needs a corefix that reads card "
                                   f"format {needs}; this corefix reads formats {READS_FROM} to {CARD_VERSION}: "
                                   f"upgrade corefix")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            import warnings

            warnings.warn(f"model card (format {data.get('version')}) has fields this corefix "
                          f"(card format {CARD_VERSION}) does not know, ignored: {', '.join(unknown)}",
                          CardWarning, stacklevel=2)
            data = {k: v for k, v in data.items() if k in known}
        card = cls(**data)
        card.max_length, card.stride = int(card.max_length), int(card.stride)
        card.split_penalty = float(card.split_penalty)
        card.first_mention_bias = float(card.first_mention_bias)
        card.article_gate = float(card.article_gate)
        card.gate_density = float(card.gate_density)
        card.glued_copies = bool(card.glued_copies)
        card.threshold = None if card.threshold is None else float(card.threshold)
        check_decoding(card.decoding)
        if not 0 <= card.stride <= card.max_length // 2:
            raise ValueError(f"model card: stride {card.stride} does not fit windows of {card.max_length} tokens")
        return card

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, model_dir: str | Path) -> "ModelCard":
        """The card of ``model_dir``; a directory without one gets the defaults."""
        path = Path(model_dir) / CARD_FILE
        if not path.is_file():
            return cls(version=1)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        return cls.from_dict(data)

    def save(self, model_dir: str | Path) -> Path:
        """Write the card (always at the current version) into ``model_dir``."""
        path = Path(model_dir) / CARD_FILE
        data = {**self.to_dict(), "version": CARD_VERSION}
        if self.gate_density > 0 and self.article_gate > 0:  # an older reader would ignore it and gate differently
            data["needs_reader"] = max(data["needs_reader"], 5)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        return path
