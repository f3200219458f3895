"""Build train/validation/test splits of damaged articles with the simulator, and measure their damage."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from tqdm.auto import tqdm

from .corpus import Article
from .parses import ParseCache
from .records import SPLITS, split_of
from .simulate import Simulator

# The real damaged article of CORRUPTION.md, measured by hand.
REAL_ARTICLE = {
    "spans per 100 words": 4.2,
    "inserted words %": 10.7,
    "DUP share of spans %": 100 * 32 / 34,
    "mean span length (words)": 87 / 34,
    "mean words overwritten per misplaced copy": 1.5,
    "overflow tail mentions per tailed article": 3.0,
}

def build_dataset(
    articles: list[Article],
    out_dir: str | Path,
    simulator: Simulator,
    samples_per_article: int = 1,
    n_process: int = 1,
    progress: bool = True,
    splits: tuple[str, ...] = SPLITS,
    parse_cache: str | Path | None = None,
) -> dict[str, int]:
    """Damage each article ``samples_per_article`` times; write the splits named in ``splits``.

    An article's split is decided by its id (:func:`corefix.data.records.split_of`),
    so building only the test split of a corpus damages exactly the articles
    that a full build puts there, and no test article is ever trained on.
    ``parse_cache``: a folder of spaCy parses shared by builds (:class:`corefix.data.parses.ParseCache`); the
    records are the same with or without it.
    """
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)} (use {', '.join(SPLITS)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    articles = [a for a in articles if split_of(a.id) in splits]
    files = {s: open(out_dir / f"{s}.jsonl", "w", encoding="utf-8") for s in splits}
    counts = Counter()
    try:
        texts = [a.text for a in articles]
        cache = ParseCache(parse_cache, simulator.nlp) if parse_cache is not None else None
        docs = (cache or simulator.nlp).pipe(texts, batch_size=16, n_process=n_process)
        for art, doc in tqdm(zip(articles, docs), total=len(articles), desc="simulating", disable=not progress):
            split = split_of(art.id)
            for k in range(samples_per_article):
                rec = simulator.damage(art.id, art.text, sample=k, doc=doc, dateline=art.extra.get("dateline")).to_record()
                files[split].write(json.dumps(rec, ensure_ascii=False) + "\n")
                counts[split] += 1
        if cache is not None and progress:
            tqdm.write(f"parses: {cache.hits} read from {cache.folder}, {cache.misses} parsed and kept there")
    finally:
        for f in files.values():
            f.close()
    with open(out_dir / "simulate.json", "w", encoding="utf-8") as f:
        json.dump(simulator.settings.to_dict(), f, indent=2)
    return {s: counts[s] for s in splits}


def damage_stats(records: list[dict]) -> dict[str, float]:
    """The measures of CORRUPTION.md's table over ``records`` (whitespace words)."""
    words = inserted_words = 0
    n_spans = n_dup = 0
    span_lens: list[int] = []
    overwrite_lens: list[int] = []
    tails: list[int] = []
    articles_with_tail = 0
    for r in records:
        text = r["text"]
        n_words = len(text.split())
        words += n_words
        tail = _tail_length(text, r["spans"])
        for s in r["spans"]:
            n_spans += 1
            w = len(text[s["start"]:s["end"]].split())
            span_lens.append(w)
            inserted_words += w
            if s["label"] == "DUP":
                n_dup += 1
                if s["overwritten"]:
                    overwrite_lens.append(len(s["overwritten"].split()))
        if tail:
            tails.append(tail)
        articles_with_tail += tail > 0
    return {
        "articles": len(records),
        "spans per 100 words": 100 * n_spans / max(words, 1),
        "inserted words %": 100 * inserted_words / max(words, 1),
        "DUP share of spans %": 100 * n_dup / max(n_spans, 1),
        "mean span length (words)": statistics.fmean(span_lens) if span_lens else 0.0,
        "one-word spans %": 100 * sum(n == 1 for n in span_lens) / max(len(span_lens), 1),
        "mean words overwritten per misplaced copy": statistics.fmean(overwrite_lens) if overwrite_lens else 0.0,
        "overflow tail mentions per tailed article": statistics.fmean(tails) if tails else 0.0,
        "articles with a tail %": 100 * articles_with_tail / max(len(records), 1),
    }


def _tail_length(text: str, spans: list[dict]) -> int:
    """How many spans form a run of insertions at the very end of ``text``."""
    n = 0
    end = len(text)
    for s in sorted(spans, key=lambda s: s["start"], reverse=True):
        if s["overwritten"] or text[s["end"]:end].strip():
            break
        n += 1
        end = s["start"]
    return n


def folder_stats(folder: str | Path, splits=None) -> dict[str, dict[str, float]]:
    """:func:`damage_stats` of each split file of a built dataset folder (every split there, or ``splits``)."""
    from .records import SPLITS, read_jsonl

    files = {s: Path(folder) / f"{s}.jsonl" for s in (splits or SPLITS)}
    return {s: damage_stats(read_jsonl(f)) for s, f in files.items() if f.exists()}


def format_stats(per_split: dict[str, dict[str, float]]) -> str:
    """A markdown table of the measures per split beside the real article."""
    names = list(per_split)
    rows = ["| measure | real article | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names)]
    keys = list(next(iter(per_split.values())).keys()) if per_split else []
    for k in keys:
        real = REAL_ARTICLE.get(k)
        real_s = f"{real:.2f}" if real is not None else "-"
        vals = []
        for n in names:
            v = per_split[n][k]
            mark = ""
            if real is not None and abs(v - real) > 0.25 * real:
                mark = " (!)"
            vals.append(f"{v:.2f}{mark}" if isinstance(v, float) else str(v))
        rows.append(f"| {k} | {real_s} | " + " | ".join(vals) + " |")
    return "\n".join(rows)
