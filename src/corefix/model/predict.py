"""Predict inserted spans on new articles and restore readable text.

Library use::

    from corefix import Restorer
    r = Restorer.from_pretrained()  # the model shipped with corefix; or a directory, "runs/cpu-small/best"
    result = r.restore(damaged_text)
    result.restored, result.spans

The path of one article: :class:`~corefix.model.inference.Detector` (word
probabilities and vectors, then spans under the card's policy) -> the span
heads' reading of each span (:func:`corefix.model.heads.annotate_articles`,
the path evaluation and head fitting take too) -> :mod:`corefix.model.restore`
(the text put right), the same restoration code the evaluation scores, so
evaluation and prediction cannot disagree. The :class:`Restorer` owns all of
restoration: the heads, the gap mode and the fill threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .heads import SpanHeads, annotate_articles
from .inference import Detector
from .network import check_model_dir
from .options import InferenceOptions, RestoreOptions, split_options
from .restore import left_gap, restore_text


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
    """The gaps of a restored article: each removed copy that left one (:func:`~corefix.model.restore.left_gap`), with the copy's place in the input (``start``, ``end``),
    the gap's place in the restored text (``at``), what was put there (``filled``: the words, the mark
    or ""), the head's likeliest ``words`` and their ``score``, and ``destroyed`` (P(words were destroyed))."""
    out = []
    for s in spans:
        if not left_gap(s):
            continue
        gap = s["gap"]
        out.append({"start": s["start"], "end": s["end"], "at": s["at"], "filled": s["replacement"],
                    "words": gap["words"], "score": gap["score"], "destroyed": gap["destroyed"]})
    return out


class Restorer:
    """A trained detector plus the restoration: its span heads where the model has them, the rules otherwise.

    ``options`` (:class:`RestoreOptions`): the gap mode, and the fill threshold
    (None: the one the model's card holds, chosen on validation data). A model
    without span heads drops every copy whatever the mode.
    """

    def __init__(self, detector: Detector, heads: SpanHeads | None = None, options: RestoreOptions | None = None):
        self.detector = detector
        self.heads = heads
        self.options = options or RestoreOptions()
        self.gaps = self.options.gaps
        threshold = self.options.fill_threshold
        self.fill_threshold = threshold if threshold is not None else heads.fill_threshold if heads is not None else None

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, options: InferenceOptions | None = None,
                        restoration: RestoreOptions | None = None, **option_values) -> "Restorer":
        """Load a model directory written by training (safetensors weights only), with its span heads;
        None: the shipped model.

        Options come as one :class:`InferenceOptions` (and one :class:`RestoreOptions`) or as their
        fields by name (``device=``, ``threshold=``, ``precision=``, ``gaps=``, ...).
        """
        if option_values:
            if options is not None or restoration is not None:
                raise TypeError("give either options or option values by name, not both")
            options, restoration = split_options(option_values)
        path = check_model_dir(path)
        detector = Detector.load(path, options)
        return cls(detector, SpanHeads.of_model(path, detector.card), restoration)

    def annotate(self, texts: list[str], predictions, spans: list[list[dict]]) -> list[list[dict]]:
        """Each article's spans with the heads' pronouns and gaps (:func:`~corefix.model.heads.annotate_articles`)."""
        return annotate_articles(self.heads, texts, predictions, spans)

    def restore_many(self, texts: list[str], ids: list[str] | None = None, progress: bool = False) -> list[Restoration]:
        """Spans and restored text of each article; empty texts come back unchanged."""
        ids = ids or [str(i) for i in range(len(texts))]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        todo_texts = [texts[i] for i in todo]
        preds = self.detector.predict(todo_texts, progress=progress, vectors=self.heads is not None)
        spans = self.annotate(todo_texts, preds, [self.detector.spans(p) for p in preds])
        spans_of = dict(zip(todo, spans))
        out = []
        for i, (art_id, text) in enumerate(zip(ids, texts)):
            restored, spans = restore_text(text, spans_of.get(i, []), self.gaps, self.fill_threshold)
            out.append(Restoration(art_id, text, spans, restored, gap_list(spans)))
        return out

    def restore(self, text: str, id: str = "0") -> Restoration:
        """Spans and restored text of one article; empty text comes back unchanged."""
        return self.restore_many([text], [id])[0]
