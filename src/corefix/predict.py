"""Predict inserted spans on new articles and restore readable text.

Library use::

    from corefix import Restorer
    r = Restorer.from_pretrained("runs/cpu-small/best")
    result = r.restore(damaged_text)
    result.restored, result.spans

The restoration itself is :mod:`corefix.restore`, the same code the evaluation
scores, so evaluation and prediction cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .labels import tags_to_spans
from .model import Detector
from .restore import restore_text


@dataclass
class Restoration:
    id: str
    text: str  # the input, unchanged
    spans: list[dict] = field(default_factory=list)  # start, end, label, score, replacement
    restored: str = ""

    def to_record(self) -> dict:
        return {"id": self.id, "text": self.text, "spans": self.spans, "restored": self.restored}


class Restorer:
    """A trained detector plus the restoration rules."""

    def __init__(self, detector: Detector, threshold: float | None = None):
        """``threshold``: decide "inserted" when P(inserted) >= threshold; None keeps the model's own."""
        self.detector = detector
        if threshold is not None:
            detector.threshold = threshold

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, threshold: float | None = None,
                        batch_size: int | None = None, precision: str = "fp32", overlap: int | None = None,
                        decoding: str | None = None) -> "Restorer":
        """Load a model directory written by training (safetensors weights only)."""
        return cls(Detector.load(path, device, batch_size, precision, overlap, threshold, decoding))

    def predict_spans(self, texts: list[str], progress: bool = False) -> list[list[dict]]:
        """Character spans (start, end, label, score) predicted in each text."""
        out = []
        for p in self.detector.predict(texts, progress=progress):
            spans = tags_to_spans(p.offsets, p.tags(), p.scores())
            for s in spans:
                s["score"] = round(float(s["score"]), 4)
            out.append(spans)
        return out

    def restore_many(self, texts: list[str], ids: list[str] | None = None, progress: bool = False) -> list[Restoration]:
        """Spans and restored text of each article; empty texts come back unchanged."""
        ids = ids or [str(i) for i in range(len(texts))]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        spans_of = dict(zip(todo, self.predict_spans([texts[i] for i in todo], progress=progress)))
        out = []
        for i, (art_id, text) in enumerate(zip(ids, texts)):
            restored, spans = restore_text(text, spans_of.get(i, []))
            out.append(Restoration(art_id, text, spans, restored))
        return out

    def restore(self, text: str, id: str = "0") -> Restoration:
        """Spans and restored text of one article; empty text comes back unchanged."""
        return self.restore_many([text], [id])[0]
