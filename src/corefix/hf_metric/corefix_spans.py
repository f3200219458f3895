"""corefix's scores as a Hugging Face ``evaluate`` metric.

Load it offline from its path (no hub access)::

    import evaluate
    from corefix.hf_metric import METRIC_PATH

    metric = evaluate.load(str(METRIC_PATH))
    metric.compute(predictions=[["O", "B-DUP", "I-DUP"]], references=[["O", "B-DUP", "O"]])

``predictions`` and ``references`` are IOB2 word tags (``O``, ``B-SUB``,
``I-SUB``, ``B-DUP``, ``I-DUP``), one list per article. The result is what
``corefix evaluate`` reports for a system, computed by the same functions
(:func:`corefix.model.metrics.span_scores` and
:func:`corefix.model.metrics.word_scores`): strict IOB2 span
precision/recall/F1/F0.5 per label and micro-averaged (seqeval), and
word-level precision/recall/F1 of "inserted or not".
"""

import datasets
import evaluate

from corefix.model.metrics import span_scores, word_scores

_DESCRIPTION = "Span precision/recall/F1/F0.5 per label (SUB, DUP) and word F1 of corefix's damage tags."
_KWARGS = """
Args:
    predictions: list of lists of IOB2 tags, one list per article.
    references: list of lists of IOB2 tags, the gold tags of the same words.
Returns:
    spans: {"SUB"|"DUP"|"micro": {"precision", "recall", "f1", "f0.5", "support"}}
    words: {"precision", "recall", "f1", "support"}
"""


class CorefixSpans(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
        )

    def _compute(self, predictions, references):
        return {"spans": span_scores(references, predictions), "words": word_scores(references, predictions)}
