"""Labelled records (damaged articles with gold spans): the splits, and reading them.

A record is one damaged article: ``id``, ``original``, ``text``, ``spans``
(``start``, ``end``, ``label``, ``overwritten``, ``replacement``, ``drift``),
``words`` and their IOB2 ``tags``. Reading needs neither the simulator nor spaCy.
A record made by other code may hold ``text``, ``original`` and its ``spans``
alone: reading adds the words and tags (:func:`complete_record`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..words import LABELS, spans_to_tags, split_words

SPLITS = ("train", "validation", "test")


def split_of(article_id: str) -> str:
    """A stable ~80/10/10 split by a hash of the article id."""
    h = int(hashlib.sha1(article_id.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if h < 8 else "validation" if h == 8 else "test"


def read_jsonl(path: str | Path) -> list[dict]:
    """Every record of one JSONL file."""
    return list(_stream(Path(path)))


def data_dirs(data_dir: str | Path | list) -> list[Path]:
    """One dataset folder or several (a training mixture of corpora), as a list."""
    dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    if not dirs:
        raise ValueError("no dataset folder given")
    return [Path(d) for d in dirs]


def split_files(dirs: list[Path], split: str) -> list[Path]:
    """``<dir>/<split>.jsonl`` of each folder; a missing one is a FileNotFoundError naming it."""
    files = [d / f"{split}.jsonl" for d in dirs]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: build it with make_dataset")
    return files


def read_records(dirs: list[Path], split: str, limit: int | None = None,
                 exclude_profiles: tuple[str, ...] = ()) -> list[dict]:
    """Up to ``limit`` records of ``split``, taken in turn from each folder (so a mixture is sampled evenly),
    leaving out records damaged by the profiles in ``exclude_profiles``; streamed, not read whole."""
    streams = [_stream(f, exclude_profiles) for f in split_files(dirs, split)]
    out: list[dict] = []
    while streams and (limit is None or len(out) < limit):
        for s in list(streams):
            rec = next(s, None)
            if rec is None:
                streams.remove(s)
            elif limit is None or len(out) < limit:
                out.append(rec)
    return out


def import_labelled(path: str | Path, out_dir: str | Path, profile: str | None = None,
                    splits: tuple[str, ...] = SPLITS) -> dict[str, int]:
    """Split a JSONL file of labelled damage made by other code (an independent generator, hand-labelled
    articles) into ``<out_dir>/<split>.jsonl`` by each record's ``id`` (:func:`split_of`, as the simulator's
    datasets are), with words and tags added; ``profile`` names where the damage came from. Returns the
    records written per split."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {s: open(out_dir / f"{s}.jsonl", "w", encoding="utf-8") for s in splits}
    counts = dict.fromkeys(splits, 0)
    try:
        for n, rec in enumerate(_stream(Path(path)), 1):
            if "id" not in rec:
                raise ValueError(f"{path}: record {n} has no 'id' (it decides the record's split)")
            split = split_of(str(rec["id"]))
            if split in files:
                files[split].write(json.dumps({**rec, **({"profile": profile} if profile else {})},
                                              ensure_ascii=False) + "\n")
                counts[split] += 1
    finally:
        for f in files.values():
            f.close()
    return counts


def complete_record(rec: dict, where: str = "record") -> dict:
    """``rec`` with its ``words`` and IOB2 ``tags`` when it came without them (labelled damage made by other
    code: ``text``, ``original`` and character ``spans`` with a ``label`` each), and each span's
    ``overwritten`` ("" when not given). A span out of the text, overlapping another or with an unknown
    label is a ValueError naming ``where``."""
    if "tags" in rec and "words" in rec:
        return rec
    for key in ("text", "original", "spans"):
        if key not in rec:
            raise ValueError(f"{where}: a labelled record needs {key!r} (it has {sorted(rec)})")
    text, spans = rec["text"], sorted(rec["spans"], key=lambda s: (s.get("start", -1), s.get("end", -1)))
    end = 0
    for s in spans:
        if s.get("label") not in LABELS:
            raise ValueError(f"{where}: span label {s.get('label')!r} is not one of {', '.join(LABELS)}")
        start, stop = s.get("start"), s.get("end")
        if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= len(text)):
            raise ValueError(f"{where}: span {start}-{stop} is not a stretch of the text ({len(text)} characters)")
        if s["start"] < end:
            raise ValueError(f"{where}: span {s['start']}-{s['end']} overlaps the span before it")
        end = s["end"]
        s.setdefault("overwritten", "")
    offsets, words = split_words(text)
    return {**rec, "spans": spans, "words": words, "tags": spans_to_tags(offsets, spans)}


def _stream(path: Path, exclude_profiles: tuple[str, ...] = ()):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                rec = complete_record(json.loads(line), f"{path}:{n}")
                if rec.get("profile") not in exclude_profiles:
                    yield rec


def load_split(dirs: list[Path], split: str, exclude_profiles: tuple[str, ...] = (),
               columns: tuple[str, ...] = ("id", "words", "tags", "profile")):
    """A split of one or more dataset folders as a Hugging Face ``datasets.Dataset``.

    The JSONL files are converted once to Arrow files in ``<first folder>/.cache``
    and memory-mapped from there, so a corpus of any size trains in bounded
    memory and a rerun reuses the conversion.
    """
    from datasets import load_dataset

    files = [str(f) for f in split_files(dirs, split)]
    ds = load_dataset("json", data_files=files, split="train", cache_dir=str(dirs[0] / ".cache"))
    ds = ds.select_columns([c for c in columns if c in ds.column_names])
    if exclude_profiles:
        ds = ds.filter(lambda p: p not in exclude_profiles, input_columns="profile", desc="leaving out profiles")
    return ds
