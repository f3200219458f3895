"""Word-level inference: texts in, per-word tag probabilities out.

Each word takes its logits from the window where it sits furthest from an
edge, so every word gets exactly one prediction. Long inputs are encoded in
overlapping segments and predicted in groups, so memory stays bounded.
Deciding tags from these probabilities is the next stage,
:mod:`corefix.model.decode`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..words import TAG2ID, TAGS, split_words
from .card import ModelCard
from .decode import DecodePolicy, decode_spans, decode_tags
from .features import WordFeatures, encode_words
from .network import check_model_dir, load_trained
from .options import InferenceOptions
from .precision import Choice, inference_precision, inference_runtime


class ModelWarning(UserWarning):
    """What a model's card says its user must know (an undertrained run)."""


@dataclass
class WordPredictions:
    """Per-word tag probabilities of one article."""

    offsets: list[tuple[int, int]]
    probs: np.ndarray  # (n_words, n_tags)
    words: list[str] | None = None  # the words' text (for the title rule)
    vectors: np.ndarray | None = None  # (n_words, hidden) float16: the encoder's last layer at each word, when asked for

    def tags(self, policy: DecodePolicy) -> list[str]:
        """IOB2 tags of the words under ``policy`` (:func:`corefix.model.decode.decode_tags`)."""
        return decode_tags(self.probs, self.words, policy)

    def spans(self, policy: DecodePolicy) -> list[dict]:
        """Character spans with scores under ``policy`` (:func:`corefix.model.decode.decode_spans`)."""
        return decode_spans(self.offsets, self.probs, self.words, policy)


SEGMENT_WORDS = 2000  # long articles are encoded this many words at a time ...
SEGMENT_OVERLAP = 100  # ... overlapping by this many words
GROUP_WORDS = 8000  # words encoded and predicted together: bounds memory whatever the input size


def segment_ranges(n_words: int, size: int, overlap: int):
    """Word ranges covering ``0..n_words`` in overlapping segments."""
    start = 0
    while True:
        end = min(n_words, start + size)
        yield start, end
        if end >= n_words:
            return
        start = end - overlap


def segment_groups(units: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    """Segments ``(article, first word, end word)`` in consecutive groups of about :data:`GROUP_WORDS` words."""
    groups, cur, size = [], [], 0
    for u in units:
        cur.append(u)
        size += u[2] - u[1]
        if size >= GROUP_WORDS:
            groups.append(cur)
            cur, size = [], 0
    if cur:
        groups.append(cur)
    return groups


def _padded(windows: list[dict], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input ids, attention mask, token types)`` of a batch of windows, padded to the longest."""
    longest = max(len(f["input_ids"]) for f in windows)
    ids = torch.full((len(windows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), longest), dtype=torch.long)
    types = torch.zeros((len(windows), longest), dtype=torch.long)
    for r, f in enumerate(windows):
        ids[r, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[r, : len(f["input_ids"])] = 1
        if "token_type_ids" in f:
            types[r, : len(f["input_ids"])] = torch.tensor(f["token_type_ids"])
    return ids, mask, types


def tag_probabilities(logits: torch.Tensor) -> np.ndarray:
    """Softmax of a batch's logits, as float32 numpy: on the device for a GPU; on a CPU in numpy, which wakes
    no torch threads (next to ONNX Runtime's, they made this step 40 times slower, docs/benchmarks.md)."""
    if logits.device.type != "cpu":
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()
    x = logits.float().numpy()
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def first_subwords(word_ids: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """Token positions of the first sub-word of each word in a window, and those words' ids."""
    wid = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64)
    prev = np.concatenate(([-1], wid[:-1]))
    pos = np.nonzero((wid >= 0) & (wid != prev))[0]
    return pos, wid[pos]


@torch.inference_mode()
def predict_words(
    model,
    tokenizer,
    texts: list[str],
    max_length: int = 256,
    stride: int = 64,
    batch_size: int = 8,
    progress: bool = False,
    features: WordFeatures = WordFeatures(),
    bf16: bool = False,
    segment_words: int = SEGMENT_WORDS,
    vectors: bool = False,
) -> list[WordPredictions]:
    """Word-level tag probabilities for each text, batched across articles.

    Articles are cut into overlapping segments of ``segment_words`` words and
    segments are encoded and predicted in groups of about ``GROUP_WORDS``
    words, so memory stays bounded however long an article is. Within a group
    the windows are sorted by length and padded per batch only; each word
    keeps the window where it sits furthest from an edge.

    ``vectors``: also keep each word's vector from the encoder's last layer
    (what the tag classifier reads), from that same window, for the span
    heads (:mod:`corefix.model.heads`); it comes from the same forward pass.
    """
    from tqdm.auto import tqdm

    device = model.device
    split = [split_words(t) for t in texts]
    offsets = [o for o, _ in split]
    words = [w for _, w in split]
    word_types = [features.type_ids(w) for w in words]  # over each whole article, before it is cut
    typed = features.case or features.evidence
    n_tags = len(TAGS)
    probs = [np.zeros((len(o), n_tags), dtype=np.float32) for o in offsets]
    best_margin = [np.full(len(o), -1, dtype=np.int64) for o in offsets]
    vecs = [None] * len(offsets)
    overlap = min(SEGMENT_OVERLAP, segment_words // 2)
    units = [(a, ws, we) for a, o in enumerate(offsets) if o for ws, we in segment_ranges(len(o), segment_words, overlap)]
    groups = segment_groups(units)
    pad_id = tokenizer.pad_token_id or 0
    bar = tqdm(total=sum(len(o) for o in offsets), desc="predicting", disable=not progress, unit="word")
    for group in groups:
        feats = []  # (article index, first word of the segment, window features)
        for a, ws, we in group:
            seg_types = word_types[a][ws:we] if word_types[a] is not None else None
            for f in encode_words(tokenizer, words[a][ws:we], max_length, stride, word_types=seg_types):
                feats.append((a, ws, f))
        order = sorted(range(len(feats)), key=lambda i: len(feats[i][2]["input_ids"]), reverse=True)
        for b in range(0, len(order), batch_size):
            batch = order[b:b + batch_size]
            ids, mask, types = _padded([feats[i][2] for i in batch], pad_id)
            extra = {"token_type_ids": types.to(device)} if typed else {}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=vectors, **extra)
            p = tag_probabilities(out.logits)
            hidden = out.hidden_states[-1].float().cpu().numpy() if vectors else None
            for r, i in enumerate(batch):
                a, ws, f = feats[i]
                pos, wid = first_subwords(f["word_ids"])
                target = ws + wid
                margin = np.minimum(pos, len(f["word_ids"]) - 1 - pos)
                better = margin > best_margin[a][target]
                best_margin[a][target[better]] = margin[better]
                probs[a][target[better]] = p[r, pos[better]]
                if hidden is not None:
                    if vecs[a] is None:
                        vecs[a] = np.zeros((len(offsets[a]), hidden.shape[-1]), dtype=np.float16)  # half the memory
                    vecs[a][target[better]] = hidden[r, pos[better]]
        bar.update(sum(we - ws - (overlap if ws else 0) for _, ws, we in group))  # words new to the bar
    bar.close()
    for pr, margin in zip(probs, best_margin):
        pr[margin < 0, TAG2ID["O"]] = 1.0  # a word the tokenizer gives no piece (a stray control character): kept
    return [WordPredictions(o, pr, words=w, vectors=v) for o, pr, w, v in zip(offsets, probs, words, vecs)]


class Detector:
    """A trained model with its card and inference options: texts in, word predictions out.

    ``options.precision``: ``fp32`` (exact), ``bf16`` (autocast; about 2x
    faster on CPUs with AVX512-BF16 and on GPUs, 3x slower where the CPU
    only emulates it), ``int8`` (dynamic int8 quantization of the linear
    layers, CPU only) or ``auto`` (bf16 where the hardware computes it
    natively, fp32 elsewhere: :mod:`corefix.model.precision`). The reduced precisions can
    change a few decisions: ``corefix evaluate --precision`` measures by how
    much. ``policy`` is the card's decoding policy with the options' overrides.
    What goes in place of the spans is restoration's business
    (:class:`corefix.model.predict.Restorer`), not the detector's.
    """

    def __init__(self, model, tokenizer, card: ModelCard | None = None, options: InferenceOptions | None = None,
                 path: Path | None = None):
        options = options or InferenceOptions()
        card = card or ModelCard()
        device_type = model.device.type
        # measured: small batches are fastest on CPU cores, large ones on GPUs
        self.batch_size = options.batch_size or (64 if device_type == "cuda" else 8)
        requested = options.runtime if path is not None or options.runtime != "auto" else "torch"
        self.runtime = inference_runtime(requested, options.precision, device_type)  # what runs, and why
        self.precision = inference_precision(options.precision, device_type, self.runtime.precision)
        if self.runtime.precision == "onnx":
            if path is None:
                raise ValueError("the onnx engine exports a model loaded from a model directory (Detector.load)")
            try:
                model = _onnx_model(model, Path(path), self.precision.precision)
            except Exception as exc:
                if options.runtime != "auto":
                    raise
                # auto never does worse than torch: an export or cache that fails here falls back to it
                warnings.warn(f"ONNX Runtime unavailable for this model ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); running on torch", ModelWarning,
                              stacklevel=2)
                self.runtime = Choice("torch", "auto: the ONNX export failed here, so torch")
                self.precision = inference_precision(options.precision, device_type, "torch")
        if self.runtime.precision == "torch" and self.precision.precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.tokenizer = tokenizer
        self.card = card
        self.options = options
        # tokens shared by neighbouring windows: the training stride unless set, at most options.AUTO_OVERLAP under
        # precision auto (fewer: faster, a few words near window edges see less context)
        self.stride = options.overlap_for(card.stride)
        if not 0 <= self.stride <= card.max_length // 2:
            raise ValueError(f"overlap must be between 0 and {card.max_length // 2} tokens, got {self.stride}")
        self.policy = options.policy(card.policy)
        self.path: Path | None = path  # the model directory, when loaded from one

    @classmethod
    def load(cls, path: str | Path, options: InferenceOptions | None = None) -> "Detector":
        """The model in ``path`` (None: the model shipped with corefix); an undertrained one warns."""
        options = options or InferenceOptions()
        path = check_model_dir(path)
        model, tokenizer, card = load_trained(path, options.device)
        if card.warning:
            warnings.warn(f"{path}: {card.warning}", ModelWarning, stacklevel=2)
        return cls(model, tokenizer, card, options, path=path)

    def predict(self, texts: list[str], progress: bool = False, vectors: bool = False) -> list[WordPredictions]:
        """Word probabilities of each text (with the encoder's word vectors when ``vectors``)."""
        return predict_words(self.model, self.tokenizer, texts, self.card.max_length, self.stride, self.batch_size,
                             progress=progress, features=self.card.features,
                             bf16=self.precision.precision == "bf16", vectors=vectors)

    def spans(self, prediction: WordPredictions) -> list[dict]:
        """Character spans (start, end, label, score) of one article's predictions, under :attr:`policy`."""
        return prediction.spans(self.policy)

    def predict_spans(self, texts: list[str], progress: bool = False) -> list[list[dict]]:
        """Character spans (start, end, label, score) predicted in each text, under :attr:`policy`."""
        return [self.spans(p) for p in self.predict(texts, progress=progress)]


def _onnx_model(model, path: Path, precision: str):
    """The ONNX Runtime copy of ``model`` (exported and cached on first use, :mod:`corefix.model.onnx_engine`)."""
    from .onnx_engine import OrtTokenClassifier, onnx_file

    return OrtTokenClassifier(onnx_file(model, path, precision))


def prepare_runtime(path: str | Path | None, options: InferenceOptions) -> None:
    """Build once what the chosen runtime needs (the ONNX export, cached), so that the workers of a corpus run
    start from the cache instead of each exporting it; an export that fails fails here, before any work."""
    device_type = "cuda" if (options.device or "").startswith("cuda") else "cpu"
    runtime = inference_runtime(options.runtime, options.precision, device_type)
    if runtime.precision != "onnx":
        return
    from .onnx_engine import cached_file

    precision = inference_precision(options.precision, device_type, "onnx").precision
    if not cached_file(check_model_dir(path), precision).is_file():  # a rerun finds it built: no second load
        Detector.load(path, options)

