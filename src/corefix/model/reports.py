"""What ``corefix evaluate`` writes: each labelled file scored and reported, a summary over several.

With one ``--data`` file the report goes to ``--out`` (a metrics JSON path,
``report.md`` and ``plots.png`` beside it); with several, ``--out`` is a
folder that gets one sub-folder per file and a ``summary.md``. The scoring
itself is :mod:`corefix.model.evaluate`'s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..data.records import read_jsonl
from .evaluate import blockquotes, evaluate, format_restoration, format_summary, format_table, probe, write_report


def evaluate_files(files: list[Path], restorer=None, out: str | None = None, limit: int | None = None,
                   model_dir: str | None = None) -> dict[str, dict]:
    """Score ``restorer``'s model (None: the baselines only) on each labelled JSONL file, print each table,
    write the reports under ``out``; the results by ``<folder>-<file>`` name."""
    detector = restorer.detector if restorer is not None else None
    heads = restorer.heads if restorer is not None else None
    results = {}
    for data in files:
        records = read_jsonl(data)[:limit]
        if not records:
            raise ValueError(f"{data}: no records")
        predictions = detector.predict([r["text"] for r in records], progress=True, vectors=heads is not None) if detector else None
        result = evaluate(records, predictions, detector.policy if detector else None, heads=heads)
        result.update({"data": str(data), "model_dir": model_dir,
                       "precision": detector.precision.precision if detector else None,
                       "overlap": detector.stride if detector else None})
        name = f"{data.parent.name}-{data.stem}"
        results[name] = result
        print(f"\n{data} ({len(records)} articles)\n{format_table(result)}")
        if "restoration" in result:
            print("\n" + format_restoration(result["restoration"]))
        if out:
            target = Path(out) / name / "metrics.json" if len(files) > 1 else Path(out)
            report = write_report(result, target.parent, title=f"corefix evaluation: {data}")
            if target.name != "metrics.json":
                target.write_text(json.dumps(result, indent=2), encoding="utf-8")
            print(f"wrote {target} and {report}", file=sys.stderr)
    if len(results) > 1:
        print("\n" + format_summary(results))
        if out:
            (Path(out) / "summary.md").write_text(format_summary(results) + "\n", encoding="utf-8")
    return results


def probe_quotes(source: Path, detector) -> dict:
    """Flag every blockquote of a markdown file (unlabelled real damage), print what was flagged in each
    and the first-mention flag rate; the :func:`~corefix.model.evaluate.probe` result."""
    texts = blockquotes(source.read_text(encoding="utf-8"))
    if not texts:
        raise ValueError(f"{source}: no blockquotes")
    result = probe(texts, detector.predict(texts), detector.policy)
    for item in result["items"]:
        flagged = "; ".join(f"{s['label']} {s['text']!r}" for s in item["flagged"]) or "nothing"
        print(f"- {item['text'][:70]!r}...: {flagged}")
    print(f"{source}: {len(texts)} quotes, first mentions flagged: {result['first_mentions_flagged']} of "
          f"{result['first_mentions']} ({100 * result['first_mention_flag_rate']:.1f} %)")
    return result
