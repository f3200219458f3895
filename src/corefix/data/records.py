"""Labelled records (damaged articles with gold spans): the splits, and reading them.

A record is one damaged article: ``id``, ``original``, ``text``, ``spans``
(``start``, ``end``, ``label``, ``overwritten``, ``replacement``, ``drift``),
``words`` and their IOB2 ``tags``. Reading needs neither the simulator nor spaCy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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


def _stream(path: Path, exclude_profiles: tuple[str, ...] = ()):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
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
