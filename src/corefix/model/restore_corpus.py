"""Restore a whole damaged corpus: streamed, sharded, resumable, parallel.

The input is streamed record by record (JSONL, CSV, Parquet, a folder of
``.txt``, or a hub dataset id) and cut into shards of ``shard_size`` records in
input order. Shard ``k`` belongs to worker ``k % num_workers``; each finished
shard is written atomically (a temporary file renamed into place) with a small
``.stats.json`` beside it. A rerun of the same command skips every shard whose
output exists, so a killed run continues from the last finished shard and
produces the same files as an uninterrupted one.

Workers are local processes (``--num-workers``) or, under ``accelerate launch``
/ ``torchrun``, the processes of that launch (``RANK``/``WORLD_SIZE``), each
on its own device; both can be combined.

The per-record step (:func:`process_records`), the output rows
(:func:`row_line`, :func:`rows_table`) and the summary (:func:`totals`) are
shared with the Ray engine, :mod:`corefix.model.restore_corpus_ray`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data.corpus import Article, LoadReport, iter_corpus
from .options import InferenceOptions, RestoreOptions

FORMATS = ("jsonl", "parquet")
PROBLEM = "__problem__"  # the key of a record that could not be read (see problem())


@dataclass
class CorpusJob:
    model: str
    input: str
    output: str
    text_field: str = "text"
    id_field: str = "id"
    shard_size: int = 500
    num_workers: int = 1
    format: str = "jsonl"
    split: str = "train"
    options: InferenceOptions = field(default_factory=InferenceOptions)  # device, batch size, precision, ...
    restoration: RestoreOptions = field(default_factory=RestoreOptions)  # gap mode, fill threshold


def shard_path(out_dir: Path, k: int, fmt: str) -> Path:
    return out_dir / f"shard-{k:05d}.{fmt}"


def iter_shards(job: CorpusJob):
    """(shard index, raw records) in input order; bad records included (handled later)."""
    shard, k = [], 0
    for rec in _iter_raw(job):
        shard.append(rec)
        if len(shard) == job.shard_size:
            yield k, shard
            shard, k = [], k + 1
    if shard:
        yield k, shard


def problem(where_why: str) -> dict:
    """The marker that stands in the stream for a record that could not be read ("where: why")."""
    return {PROBLEM: where_why}


def record_of(art: Article, job: CorpusJob) -> dict:
    """The record of one article as both engines pass it on: its other columns, then id and text."""
    return {**art.extra, job.id_field: art.id, job.text_field: art.text}


def _iter_raw(job: CorpusJob):
    """Every record of the input, in order, with a marker where a record could not be read."""
    pending: list[str] = []
    report = LoadReport(listener=pending.append)
    # keep_empty: empty texts come back unchanged; unreadable records become failure markers
    for art in iter_corpus(job.input, job.text_field, job.id_field, job.split, report, keep_empty=True):
        while pending:
            yield problem(pending.pop(0))
        yield record_of(art, job)
    while pending:
        yield problem(pending.pop(0))


def process_records(restorer, job: CorpusJob, records: list[dict]) -> tuple[list[dict], dict]:
    """Restore one batch of records (problem markers among them): ``(output rows, stats)``.

    A row is the record untouched plus ``restored``, ``spans`` and ``gaps``; the stats
    count articles, words, spans removed and replaced, undamaged articles, and
    list the failures. Both engines (local shards, Ray batches) use this.
    """
    rows, failures, stats = [], [], {"articles": 0, "words": 0, "removed": 0, "replaced": 0, "undamaged": 0}
    good = []
    for rec in records:
        if PROBLEM in rec:
            failures.append({"record": rec[PROBLEM]})
            continue
        good.append(rec)
    results = restorer.restore_many([r[job.text_field] for r in good], [str(r[job.id_field]) for r in good])
    for rec, res in zip(good, results):
        row = dict(rec)
        row["restored"] = res.restored
        row["spans"] = res.spans
        row["gaps"] = res.gaps
        rows.append(row)
        stats["articles"] += 1
        stats["words"] += len(res.text.split())
        stats["removed"] += sum(s["label"] == "DUP" for s in res.spans)
        stats["replaced"] += sum(s["label"] == "SUB" for s in res.spans)
        stats["undamaged"] += not res.spans
    stats["failures"] = failures
    return rows, stats


def row_line(row: dict) -> str:
    """One output row as a JSONL line (without the newline)."""
    return json.dumps(row, ensure_ascii=False, default=str)


def spans_type():
    """The Arrow type of the ``spans`` column, fixed so a batch without spans has the same schema.

    Every key a restored span can carry (:class:`corefix.model.predict.Restoration`) has its field, so
    Parquet holds what JSONL holds: a span without a pronoun or gap has null there. :func:`rows_table`
    refuses a span key this type does not name, rather than let Arrow drop it silently.
    """
    import pyarrow as pa

    gap = pa.struct([("destroyed", pa.float64()), ("words", pa.string()), ("score", pa.float64())])
    span = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
                      ("replacement", pa.string()), ("at", pa.int64()), ("pronoun", pa.string()),
                      ("pronoun_score", pa.float64()), ("gap", gap)])
    return pa.list_(span)


def gaps_type():
    """The Arrow type of the ``gaps`` column (:func:`corefix.model.predict.gap_list`)."""
    import pyarrow as pa

    gap = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("at", pa.int64()), ("filled", pa.string()),
                     ("words", pa.string()), ("score", pa.float64()), ("destroyed", pa.float64())])
    return pa.list_(gap)


def rows_table(rows: list[dict]):
    """Output rows as an Arrow table (for Parquet): columns as the rows hold them, ``spans`` and ``gaps`` typed."""
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    for name, kind in (("spans", spans_type()), ("gaps", gaps_type())):
        if rows and name in table.column_names:
            known = {f.name for f in kind.value_type}
            extra = {k for r in rows for item in r[name] or () for k in item} - known
            if extra:
                raise ValueError(f"{name} carry fields the Parquet schema lacks: {sorted(extra)}")
            i = table.column_names.index(name)
            table = table.set_column(i, name, pa.array([r[name] for r in rows], type=kind))
    return table


def _write_shard(path: Path, rows: list[dict], fmt: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(row_line(row) + "\n")
    else:
        import pyarrow.parquet as pq

        pq.write_table(rows_table(rows), tmp)
    os.replace(tmp, path)


def run_worker(job: CorpusJob, worker: int, n_workers: int, device: str | None = None, progress: bool = True,
               total: int | None = None) -> dict:
    """Process the shards of one worker; returns its summary counts. ``total``: records in the input, if known."""
    import torch
    from tqdm.auto import tqdm

    from .predict import Restorer

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))
    out_dir = Path(job.output)
    options = job.options if device is None else dataclasses.replace(job.options, device=device)
    restorer = Restorer.from_pretrained(job.model, options, job.restoration)
    done = {"shards": 0, "skipped_shards": 0, "articles": 0}
    bar = tqdm(desc=f"worker {worker}", unit="article", disable=not progress, position=worker,
               total=None if total is None else -(-total // n_workers))
    start = time.monotonic()
    for k, records in iter_shards(job):
        if k % n_workers != worker:
            continue
        path = shard_path(out_dir, k, job.format)
        if path.exists() and path.with_suffix(".stats.json").exists():
            done["skipped_shards"] += 1
            continue
        rows, stats = process_records(restorer, job, records)
        _write_shard(path, rows, job.format)
        path.with_suffix(".stats.json").write_text(json.dumps(stats), encoding="utf-8")
        done["shards"] += 1
        done["articles"] += stats["articles"]
        bar.update(len(records))
        bar.set_postfix(articles_per_s=f"{done['articles'] / max(time.monotonic() - start, 1e-9):.1f}")
    bar.close()
    return done


def count_records(job: CorpusJob) -> int | None:
    """Records in a local JSONL input (a cheap line count, for the progress bar's ETA); None otherwise."""
    path = Path(job.input)
    if not (path.is_file() and path.suffix.lower() in (".jsonl", ".json")):
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _worker_entry(args):
    job, worker, n_workers, total = args
    return run_worker(job, worker, n_workers, progress=True, total=total)


def totals(batch_stats) -> dict:
    """The end-of-run summary over the stats of every processed shard (or batch)."""
    total = {"shards": 0, "articles": 0, "words": 0, "removed": 0, "replaced": 0, "undamaged": 0, "failures": []}
    for s in batch_stats:
        total["shards"] += 1
        for k in ("articles", "words", "removed", "replaced", "undamaged"):
            total[k] += s[k]
        total["failures"].extend(s["failures"])
    words = max(total["words"], 1)
    total["removed_per_100_words"] = 100 * total["removed"] / words
    total["replaced_per_100_words"] = 100 * total["replaced"] / words
    return total


def summarize(out_dir: str | Path) -> dict:
    """Totals over every finished shard's ``.stats.json``."""
    files = sorted(Path(out_dir).glob("shard-*.stats.json"))
    return totals(json.loads(f.read_text(encoding="utf-8")) for f in files)


def check_job(job: CorpusJob) -> None:
    """Fail early (ValueError, or the model's own error) on a job that cannot run, before any work."""
    if job.format not in FORMATS:
        raise ValueError(f"unknown output format {job.format!r} (use {' or '.join(FORMATS)})")
    if job.shard_size < 1 or job.num_workers < 1:
        raise ValueError("--shard-size and --num-workers must be at least 1")
    from .network import check_model_dir

    check_model_dir(job.model)


def restore_corpus(job: CorpusJob, progress: bool = True) -> dict:
    """Run the job with ``num_workers`` local processes (times the launch's processes); return the summary."""
    check_job(job)
    out_dir = Path(job.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    n_workers = world * job.num_workers
    device = None
    if world > 1:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    ids = [rank * job.num_workers + i for i in range(job.num_workers)]
    total = count_records(job)
    start = time.monotonic()
    if job.num_workers == 1:
        run_worker(job, ids[0], n_workers, device=device, progress=progress, total=total)
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(job.num_workers) as pool:
            pool.map(_worker_entry, [(job, w, n_workers, total) for w in ids])
    summary = summarize(out_dir)
    summary["seconds"] = time.monotonic() - start
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
