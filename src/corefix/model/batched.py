"""Whole-corpus prediction in large batches: the fast path for a GPU.

:func:`predict_words_batched` returns what :func:`corefix.model.inference.predict_words`
returns (the same windows of the same segments; each word read from the window
where it sits furthest from an edge, a tie going to the window that
``predict_words`` reads first), but does the work in bulk, so that a GPU is not
left waiting on the host:

- one call of the fast tokenizer for all segments of a chunk of articles (its
  Rust threads tokenize them in parallel), instead of one call per segment;
- the window each word is read from chosen before the forward pass, with one sort;
- all windows padded once on the host and copied to the device once, then cut
  into batches of about ``batch_tokens`` tokens, longest first; a batch whose
  windows all have one length goes without an attention mask, so SDPA may use
  its flash kernel;
- the model runs in whatever dtype it has (:func:`fast_copy` gives a bf16 copy:
  weights in bf16, not autocast);
- softmax and the gather of each word's first sub-word on the device, one copy back.

Decoding in bulk is :func:`corefix.model.decode.decode_tags_batch`. Memory is
bounded by ``chunk_words``: articles are taken that many words at a time.
Word vectors (the span heads' input) are not offered here.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..words import TAG2ID, TAGS, split_words
from .features import WordFeatures
from .inference import (SEGMENT_OVERLAP, SEGMENT_WORDS, WordPredictions, first_subwords, segment_groups,
                        segment_ranges)

CHUNK_WORDS = 500_000  # articles are predicted this many words at a time (bounds host and device memory)
BATCH_TOKENS = 65_536  # tokens (padded) per forward pass


@dataclass
class CorpusWindows:
    """The token windows of a chunk of articles, padded into one array, and where each word is read from."""

    ids: np.ndarray  # (n_windows, longest) int64, padded with the pad id
    types: np.ndarray | None  # (n_windows, longest) int64 token types, or None (no word features)
    lengths: np.ndarray  # (n_windows,) tokens of each window
    word_window: np.ndarray  # (n_words,) per word of the chunk (articles concatenated): its window, -1 for none
    word_pos: np.ndarray  # (n_words,) and its first sub-word's position in that window
    article_words: list[int]  # words of each article of the chunk

    @property
    def tokens(self) -> int:
        """Real (unpadded) tokens in all windows."""
        return int(self.lengths.sum())


def fast_copy(model, dtype: torch.dtype = torch.bfloat16):
    """A copy of ``model`` in ``dtype`` (weights, not autocast), in eval mode, with SDPA attention where the
    installed transformers lets one choose it."""
    fast = copy.deepcopy(model).to(dtype).eval()
    setter = getattr(fast, "set_attn_implementation", None)
    if setter is not None:
        try:
            setter("sdpa")
        except Exception:  # an architecture or a transformers version without SDPA: keep what it has
            pass
    return fast


def _units(words: list[list[str]], segment_words: int) -> list[tuple[int, int, int]]:
    """``(article, first word, end word)`` of each segment, as predict_words cuts them."""
    overlap = min(SEGMENT_OVERLAP, segment_words // 2)
    return [(a, ws, we) for a, w in enumerate(words) if w for ws, we in segment_ranges(len(w), segment_words, overlap)]


def _unit_groups(units: list[tuple[int, int, int]]) -> list[int]:
    """The group (predict_words' memory bound) each segment falls in."""
    return [g for g, group in enumerate(segment_groups(units)) for _ in group]


def corpus_windows(tokenizer, words: list[list[str]], word_types: list[list[int] | None], max_length: int,
                   stride: int, segment_words: int = SEGMENT_WORDS, groups: list[int] | None = None) -> CorpusWindows:
    """The windows of these articles' words (as :func:`corefix.model.features.encode_words` cuts them,
    segment by segment as :func:`corefix.model.inference.predict_words` does), and each word's window.

    ``groups``: the group of each segment as predict_words counts them over all the texts it is given (None:
    counted over these articles). Groups only break ties: a word in the overlap of two segments, equally far
    from an edge in a window of each, is read from the earlier group's window.
    """
    units = _units(words, segment_words)
    group_of = _unit_groups(units) if groups is None else groups
    starts = np.cumsum([0] + [len(w) for w in words])
    n_words = int(starts[-1])
    pad_id = tokenizer.pad_token_id or 0
    typed = any(t is not None for t in word_types)
    if not units:
        empty = np.zeros((0, 0), dtype=np.int64)
        return CorpusWindows(empty, empty if typed else None, np.zeros(0, dtype=np.int64),
                             np.full(n_words, -1, dtype=np.int64), np.zeros(n_words, dtype=np.int64),
                             [len(w) for w in words])
    enc = tokenizer([words[a][ws:we] for a, ws, we in units], is_split_into_words=True, truncation=True,
                    max_length=max_length, stride=stride, return_overflowing_tokens=True)
    unit_of = enc["overflow_to_sample_mapping"]
    n_windows = len(enc["input_ids"])
    lengths = np.array([len(x) for x in enc["input_ids"]], dtype=np.int64)
    ids = np.full((n_windows, int(lengths.max())), pad_id, dtype=np.int64)
    types = np.zeros_like(ids) if typed else None
    type_arrays = [None if t is None else np.asarray(t, dtype=np.int64) for t in word_types]
    cand_word, cand_window, cand_pos, cand_margin = [], [], [], []
    for k in range(n_windows):
        a, ws, _ = units[unit_of[k]]
        n = lengths[k]
        ids[k, :n] = enc["input_ids"][k]
        wid = np.array([-1 if w is None else w for w in enc.word_ids(k)], dtype=np.int64)
        if type_arrays[a] is not None:
            types[k, :n] = np.where(wid >= 0, type_arrays[a][ws + np.maximum(wid, 0)], 0)
        pos, first = first_subwords(wid.tolist())
        cand_word.append(starts[a] + ws + first)
        cand_window.append(np.full(len(pos), k, dtype=np.int64))
        cand_pos.append(pos)
        cand_margin.append(np.minimum(pos, n - 1 - pos))
    word = np.concatenate(cand_word)
    window = np.concatenate(cand_window)
    pos = np.concatenate(cand_pos)
    margin = np.concatenate(cand_margin)
    # predict_words reads the groups in turn, each group's windows longest first (ties in the order they were
    # cut), and keeps a word's first window of the largest margin: the same choice, by one sort
    group = np.asarray(group_of, dtype=np.int64)[np.asarray(unit_of, dtype=np.int64)][window]
    order = np.lexsort((window, -lengths[window], group, -margin, word))
    first = order[np.r_[True, word[order][1:] != word[order][:-1]]]
    word_window = np.full(n_words, -1, dtype=np.int64)
    word_pos = np.zeros(n_words, dtype=np.int64)
    word_window[word[first]] = window[first]
    word_pos[word[first]] = pos[first]
    return CorpusWindows(ids, types, lengths, word_window, word_pos, [len(w) for w in words])


def length_batches(lengths: np.ndarray, batch_tokens: int = BATCH_TOKENS) -> list[np.ndarray]:
    """Window indices in batches of about ``batch_tokens`` padded tokens, longest windows first."""
    order = np.argsort(-lengths, kind="stable")
    out, b = [], 0
    while b < len(order):
        size = max(1, batch_tokens // max(int(lengths[order[b]]), 1))
        out.append(order[b:b + size])
        b += size
    return out


@torch.inference_mode()
def window_probs(model, windows: CorpusWindows, batch_tokens: int = BATCH_TOKENS) -> torch.Tensor:
    """Tag probabilities (float32, on the model's device) at every token of every window."""
    device = next(model.parameters()).device
    n, longest = windows.ids.shape
    probs = torch.zeros((n, longest, len(TAGS)), dtype=torch.float32, device=device)
    if n == 0:
        return probs
    ids = torch.from_numpy(windows.ids).to(device, non_blocking=True)
    types = torch.from_numpy(windows.types).to(device, non_blocking=True) if windows.types is not None else None
    lengths = torch.from_numpy(windows.lengths).to(device)
    for batch in length_batches(windows.lengths, batch_tokens):
        width = int(windows.lengths[batch[0]])
        rows = torch.from_numpy(batch).to(device, non_blocking=True)
        same = windows.lengths[batch[-1]] == width  # all windows of this batch have one length: no mask needed
        mask = None if same else (torch.arange(width, device=device) < lengths[rows, None]).long()
        extra = {"token_type_ids": types[rows, :width]} if types is not None else {}
        logits = model(input_ids=ids[rows, :width], attention_mask=mask, **extra).logits
        probs[rows, :width] = torch.softmax(logits.float(), dim=-1)
    return probs


@contextmanager
def _stage(timings: dict | None, name: str, device: torch.device | None = None):
    """Add the seconds of the block to ``timings[name]`` (after the device has finished its work)."""
    if timings is None:
        yield
        return
    t = time.perf_counter()
    yield
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t


def _word_probs(model, windows: CorpusWindows, batch_tokens: int) -> np.ndarray:
    """(n_words, n_tags) probabilities of each word of the chunk, from its window (a word without one: O)."""
    device = next(model.parameters()).device
    probs = window_probs(model, windows, batch_tokens)
    found = windows.word_window >= 0
    per_word = np.zeros((len(windows.word_window), len(TAGS)), dtype=np.float32)
    if found.any():
        sel = torch.from_numpy(windows.word_window[found]).to(device), torch.from_numpy(windows.word_pos[found]).to(device)
        per_word[found] = probs[sel].cpu().numpy()
    per_word[~found, TAG2ID["O"]] = 1.0  # a word the tokenizer gives no piece: kept, as predict_words does
    return per_word


def _articles(split: list, per_word: np.ndarray, article_words: list[int]) -> list[WordPredictions]:
    out, start = [], 0
    for (offsets, words), n in zip(split, article_words):
        out.append(WordPredictions(offsets, per_word[start:start + n], words=words))
        start += n
    return out


def predict_words_batched(model, tokenizer, texts: list[str], max_length: int = 256, stride: int = 64,
                          features: WordFeatures = WordFeatures(), batch_tokens: int = BATCH_TOKENS,
                          segment_words: int = SEGMENT_WORDS, chunk_words: int = CHUNK_WORDS,
                          timings: dict | None = None) -> list[WordPredictions]:
    """Word-level tag probabilities of each text, as :func:`corefix.model.inference.predict_words` gives them,
    computed in bulk (the module's docstring says how). ``timings``: a dict that collects the seconds of each
    stage (words, windows, forward: the forward passes with the gather of each word's probabilities)."""
    device = next(model.parameters()).device
    out: list[WordPredictions] = []
    with _stage(timings, "words"):
        split = [split_words(t) for t in texts]
        word_types = [features.type_ids(w) for _, w in split]
        units = _units([w for _, w in split], segment_words)
        group_of = _unit_groups(units)
    chunk: list[int] = []
    size = 0
    u = 0  # the first segment of the chunk
    for i in range(len(texts) + 1):
        if i < len(texts):
            chunk.append(i)
            size += len(split[i][0])
            if size < chunk_words:
                continue
        if not chunk:
            break
        n_units = sum(1 for a, _, _ in units[u:] if a <= chunk[-1])
        with _stage(timings, "windows"):
            cw = corpus_windows(tokenizer, [split[a][1] for a in chunk], [word_types[a] for a in chunk], max_length,
                                stride, segment_words, groups=group_of[u:u + n_units])
        with _stage(timings, "forward", device):
            out.extend(_articles([split[a] for a in chunk], _word_probs(model, cw, batch_tokens), cw.article_words))
        u += n_units
        chunk, size = [], 0
    return out


# ---------------------------------------------------------------- the host's work in worker processes

_WORKER: dict = {}


def _init_worker(tokenizer, settings: dict) -> None:
    import os

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread each: the processes are the parallelism
    os.environ["RAYON_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    _WORKER.update(settings, tokenizer=tokenizer)


def _prepare(texts: list[str]):
    """In a worker: the words and windows of a chunk of articles."""
    split = [split_words(t) for t in texts]
    features = _WORKER["features"]
    windows = corpus_windows(_WORKER["tokenizer"], [w for _, w in split], [features.type_ids(w) for _, w in split],
                             _WORKER["max_length"], _WORKER["stride"], _WORKER["segment_words"])
    return split, windows


def _decode(probs: list[np.ndarray], words: list[list[str]], policy) -> list[list[str]]:
    from .decode import decode_tags_batch

    return decode_tags_batch(probs, words, policy)


class HostPool:
    """Worker processes that do the host's share of batched prediction, so that one GPU process is not held
    up by one CPU core: the words and windows of chunks of articles (:func:`corpus_windows`) and the decoding
    of their tags (:func:`corefix.model.decode.decode_tags_batch`), while the parent runs the forward passes.

    Started once (``spawn``: each worker imports corefix afresh) and used for many calls; ``with`` closes it.
    The tags are the batched path's but for one tie: the groups that break ties between segments are
    counted per chunk (an article of more than ``segment_words`` words whose overlap holds a word equally far
    from an edge in two segments' windows may read it from the other one).
    """

    def __init__(self, tokenizer, workers: int, max_length: int = 256, stride: int = 64,
                 features: WordFeatures = WordFeatures(), segment_words: int = SEGMENT_WORDS,
                 chunk_chars: int = 60_000):
        import multiprocessing

        settings = {"max_length": max_length, "stride": stride, "features": features, "segment_words": segment_words}
        self.workers = workers
        self.chunk_chars = chunk_chars  # articles are sent to the workers about this many characters at a time
        self._pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (tokenizer, settings))

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _chunks(self, texts: list[str]) -> list[list[str]]:
        chunks, cur, size = [], [], 0
        for t in texts:
            cur.append(t)
            size += len(t)
            if size >= self.chunk_chars:
                chunks.append(cur)
                cur, size = [], 0
        return chunks + ([cur] if cur else [])

    def predict(self, model, texts: list[str], policy=None,
                batch_tokens: int = BATCH_TOKENS) -> tuple[list[WordPredictions], list[list[str]] | None]:
        """Word predictions of each text and, with a decoding ``policy``, their tags: the workers cut the
        chunks into windows while the parent runs the windows of the chunks already cut, and decode each chunk
        once its probabilities are in."""
        preds: list[WordPredictions] = []
        decoding = []
        for split, windows in self._pool.imap(_prepare, self._chunks(texts)):
            chunk = _articles(split, _word_probs(model, windows, batch_tokens), windows.article_words)
            preds.extend(chunk)
            if policy is not None:
                decoding.append(self._pool.apply_async(_decode, ([p.probs for p in chunk], [p.words for p in chunk],
                                                                 policy)))
        tags = [t for d in decoding for t in d.get()] if policy is not None else None
        return preds, tags
