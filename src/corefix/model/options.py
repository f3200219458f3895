"""Inference and restoration options: one object each, built once by the CLI or the API.

Every command that runs a trained model (evaluate, predict, restore-corpus,
calibrate, benchmark) takes the same detection options; they travel as one
:class:`InferenceOptions` down to :class:`corefix.model.inference.Detector`.
What restoration puts in place of the spans (the gap mode, the fill threshold)
is the :class:`RestoreOptions` of the :class:`corefix.model.predict.Restorer`.
This module imports nothing heavy, so the CLI can read its choices at start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .decode import DecodePolicy, check_decoding

PRECISIONS = ("fp32", "bf16", "int8", "auto")
RUNTIMES = ("auto", "torch", "onnx")  # what runs the network: torch, ONNX Runtime (the onnx extra), or the faster here
MEASURES = ("prediction", "restoration", "training", "memory")  # what corefix benchmark measures (corefix.model.benchmark)
# Tokens shared by neighbouring windows under --precision auto (when --overlap is not given). Against no
# overlap, the card's training stride (64) costs 21 % more tokens, 32 costs 10 %, 16 costs 5 % (100 BBC test
# articles, 45,397 tokens without overlap). Span F1 of ONNX Runtime int8 against torch fp32 at 64, over the four
# seed and resolvers test sets (300 articles each): -0.16 points on average at 32, -0.24 at 16, -0.63 at 0;
# 16 was 2-3 % faster than 32 in three benchmark runs (docs/benchmarks.md).
AUTO_OVERLAP = 16
GAP_MODES = ("drop", "mark", "fill")  # what restoration puts where a copy destroyed words (corefix.model.restore)


@dataclass(frozen=True)
class InferenceOptions:
    device: str | None = None  # "cpu", "cuda", "cuda:1", ... (None: where the model loads)
    batch_size: int | None = None  # windows per forward pass (None: 8 on CPU, 64 on GPU, measured fastest)
    precision: str = "fp32"  # fp32 (exact), bf16 (autocast), int8 (quantized, CPU only), auto (the fastest here at equal F1)
    runtime: str = "auto"  # torch, onnx (ONNX Runtime), auto (onnx on a CPU where onnxruntime is installed, else torch)
    overlap: int | None = None  # tokens shared by neighbouring windows (None: :meth:`overlap_for`)
    threshold: float | None = None  # flag a word when P(inserted) >= this (None: the card's)
    decoding: str | None = None  # viterbi or independent (None: the card's)
    article_gate: float | None = None  # an article keeps its spans only if a flag reaches this P(inserted) (None: the card's; 0: no gate)
    gate_density: float | None = None  # with a gate: sure spans per 100 words an article must hold (None: the card's)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r} (use {', '.join(PRECISIONS)})")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {self.runtime!r} (use {', '.join(RUNTIMES)})")
        if self.decoding is not None:
            check_decoding(self.decoding)
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.overlap is not None and self.overlap < 0:
            raise ValueError("overlap must be 0 or more")
        if self.article_gate is not None and not 0.0 <= self.article_gate < 1.0:
            raise ValueError("article gate must be at least 0 and below 1")
        if self.gate_density is not None and not 0.0 <= self.gate_density <= 100.0:
            raise ValueError("gate density must be between 0 and 100 spans per 100 words")

    def overlap_for(self, stride: int) -> int:
        """The overlap of neighbouring windows for a model trained with ``stride``: the option's where set, else
        under ``precision="auto"`` (the fastest path) at most :data:`AUTO_OVERLAP`, else ``stride``."""
        if self.overlap is not None:
            return self.overlap
        return min(stride, AUTO_OVERLAP) if self.precision == "auto" else stride

    def policy(self, base: DecodePolicy) -> DecodePolicy:
        """``base`` (the card's policy) with this object's threshold and decoding where set."""
        changes = {}
        if self.threshold is not None:
            changes["threshold"] = self.threshold
        if self.decoding is not None:
            changes["decoding"] = self.decoding
        if self.article_gate is not None:
            changes["article_gate"] = self.article_gate
        if self.gate_density is not None:
            changes["gate_density"] = self.gate_density
        return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class RestoreOptions:
    gaps: str = "drop"  # at a copy that destroyed words: drop (delete it), mark (a visible mark) or fill (the words)
    fill_threshold: float | None = None  # fill the gap head's words scored at least this (None: the card's, chosen on validation data)

    def __post_init__(self):
        if self.gaps not in GAP_MODES:
            raise ValueError(f"unknown gap mode {self.gaps!r} (use {', '.join(GAP_MODES)})")


def split_options(values: dict) -> tuple[InferenceOptions, RestoreOptions]:
    """Option values by name (``threshold=``, ``gaps=``, ...) as the detector's and the restorer's options."""
    restore_fields = {f.name for f in dataclasses.fields(RestoreOptions)}
    return (InferenceOptions(**{k: v for k, v in values.items() if k not in restore_fields}),
            RestoreOptions(**{k: v for k, v in values.items() if k in restore_fields}))
