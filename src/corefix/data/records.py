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
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
