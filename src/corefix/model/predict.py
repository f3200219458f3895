"""Predict inserted spans on new articles and restore readable text.

Library use::

    from corefix import Restorer
    r = Restorer.from_pretrained()  # the model shipped with corefix; or a directory, "runs/cpu-small/best"
    result = r.restore(damaged_text)
    result.restored, result.spans

The path of one article: :class:`~corefix.model.inference.Detector` (word
probabilities) -> :mod:`corefix.model.decode` (spans, under the card's policy)
-> :mod:`corefix.model.restore` (the text put right), the same restoration
code the evaluation scores, so evaluation and prediction cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .inference import Detector
from .options import InferenceOptions
from .restore import DESTROYED, restore_text


@dataclass
class Restoration:
    id: str
    text: str  # the input, unchanged
    spans: list[dict] = field(default_factory=list)  # start, end, label, score, replacement, at (+ pronoun, gap)
    restored: str = ""
    gaps: list[dict] = field(default_factory=list)  # where removed copies destroyed words (:func:`gap_list`)

    def to_record(self) -> dict:
        return {"id": self.id, "text": self.text, "spans": self.spans, "restored": self.restored, "gaps": self.gaps}


def gap_list(spans: list[dict]) -> list[dict]:
    """The gaps of a restored article: each removed copy that the gap head says destroyed words
    (:data:`~corefix.model.restore.DESTROYED`), with the copy's place in the input (``start``, ``end``),
    the gap's place in the restored text (``at``), what was put there (``filled``: the words, the mark
    or ""), the head's likeliest ``words`` and their ``score``, and ``destroyed`` (P(words were destroyed))."""
    out = []
    for s in spans:
        gap = s.get("gap")
        if s["label"] != "DUP" or not gap or gap["destroyed"] < DESTROYED:
            continue
        out.append({"start": s["start"], "end": s["end"], "at": s["at"], "filled": s["replacement"],
                    "words": gap["words"], "score": gap["score"], "destroyed": gap["destroyed"]})
    return out


class Restorer:
    """A trained detector plus the restoration: its span heads where the model has them, the rules otherwise.

    The gap mode is ``detector.options.gaps``; ``fill`` fills only above the
    threshold the model's card holds (chosen on validation data), and a model
    without span heads drops every copy whatever the mode.
    """

    def __init__(self, detector: Detector):
        self.detector = detector
        heads = detector.heads
        self.gaps = detector.options.gaps
        self.fill_threshold = heads.fill_threshold if heads is not None else None

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, options: InferenceOptions | None = None,
                        **option_values) -> "Restorer":
        """Load a model directory written by training (safetensors weights only); None: the shipped model.

        Inference options come as one :class:`InferenceOptions` or as its
        fields by name (``device=``, ``threshold=``, ``precision=``, ...).
        """
        if options is None:
            options = InferenceOptions(**option_values)
        elif option_values:
            raise TypeError("give either options or option values by name, not both")
        return cls(Detector.load(path, options))

    def predict_spans(self, texts: list[str], progress: bool = False) -> list[list[dict]]:
        """Character spans (start, end, label, score) predicted in each text."""
        return self.detector.predict_spans(texts, progress=progress)

    def restore_many(self, texts: list[str], ids: list[str] | None = None, progress: bool = False) -> list[Restoration]:
        """Spans and restored text of each article; empty texts come back unchanged."""
        ids = ids or [str(i) for i in range(len(texts))]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        spans_of = dict(zip(todo, self.predict_spans([texts[i] for i in todo], progress=progress)))
        out = []
        for i, (art_id, text) in enumerate(zip(ids, texts)):
            restored, spans = restore_text(text, spans_of.get(i, []), self.gaps, self.fill_threshold)
            out.append(Restoration(art_id, text, spans, restored, gap_list(spans)))
        return out

    def restore(self, text: str, id: str = "0") -> Restoration:
        """Spans and restored text of one article; empty text comes back unchanged."""
        return self.restore_many([text], [id])[0]
