"""Restore a whole damaged corpus: streamed, sharded, resumable, parallel.

The input is streamed record by record (JSONL, CSV, Parquet, a folder of
``.txt``, or a hub dataset id) and cut into shards of ``shard_size`` records in
input order. Shard ``k`` belongs to worker ``k % num_workers``; each finished
shard is written atomically with a small ``.stats.json`` beside it
(:class:`corefix.model.shards.ShardFolder`, the output folder both engines
share). A rerun of the same command skips every finished shard, so a killed
run continues from the last finished shard and produces the same files as an
uninterrupted one; the summary is counted from the shards on disk.

Workers are local processes (``--num-workers``) or, under ``accelerate launch``
/ ``torchrun``, the processes of that launch (``RANK``/``WORLD_SIZE``), each
on its own device; both can be combined. A local worker process that dies (a
kill, the out-of-memory killer) is started again and continues from the
finished shards (:func:`run_processes`).

The job (:class:`CorpusJob`, :func:`check_job`, :func:`manifest`), the cutting
into shards (:func:`cut_into_shards`) and the per-record step
(:func:`process_records`) are shared with the Ray engine,
:mod:`corefix.model.restore_corpus_ray`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..data.corpus import Article, LoadReport, iter_corpus
from .options import InferenceOptions, RestoreOptions
from .shards import ShardFolder, check_format, encode_shard

WORKER_RESTARTS = 3  # restarts of dead local worker processes in one run before it stops (a rerun continues)
MAX_CHARS = 1_000_000  # the default limit on one record's text (about 100 times a long news article)
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
    max_chars: int | None = MAX_CHARS  # a longer text is a failed record, named, not restored (None: no limit)
    options: InferenceOptions = field(default_factory=InferenceOptions)  # device, batch size, precision, ...
    restoration: RestoreOptions = field(default_factory=RestoreOptions)  # gap mode, fill threshold


def cut_into_shards(records: Iterable[dict], size: int) -> Iterator[tuple[int, list[dict]]]:
    """(shard index, records) of ``size`` records each (the last fewer), in input order: the shards of both engines."""
    shard, k = [], 0
    for rec in records:
        shard.append(rec)
        if len(shard) == size:
            yield k, shard
            shard, k = [], k + 1
    if shard:
        yield k, shard


def iter_shards(job: CorpusJob) -> Iterator[tuple[int, list[dict]]]:
    """(shard index, raw records) in input order; bad records included (handled later)."""
    return cut_into_shards(_iter_raw(job), job.shard_size)


def manifest(job: CorpusJob) -> dict:
    """What decides the contents of the job's shards (its ``job.json``): a rerun continues only the same job.

    The device and batch size are left out: a run may continue on other hardware. ``input_stamp``
    (:func:`input_stamp`) tells a changed local input from the one the folder's shards came from.
    """
    from .network import check_model_dir

    local = Path(job.input).exists() and "://" not in job.input
    options = {k: v for k, v in dataclasses.asdict(job.options).items() if k not in ("device", "batch_size")}
    return {"input": str(Path(job.input).resolve()) if local else job.input, "split": job.split,
            "input_stamp": input_stamp(job.input) if local else None,
            "text_field": job.text_field, "id_field": job.id_field, "shard_size": job.shard_size,
            "max_chars": job.max_chars,
            "format": job.format, "model": str(check_model_dir(job.model).resolve()), "options": options,
            "restoration": dataclasses.asdict(job.restoration)}


def input_stamp(source: str) -> dict:
    """Size and modification time of a local input (a folder: of its files, as one digest), so that a rerun over
    an input that changed since the folder's first run is refused rather than mix two versions in one output.
    Cheap (no reading of the data): an input rewritten with the same size and time stamp goes unnoticed."""
    import hashlib

    path = Path(source)
    if path.is_file():
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest, n, size = hashlib.sha256(), 0, 0
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        st = p.stat()
        digest.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        n, size = n + 1, size + st.st_size
    return {"files": n, "size": size, "digest": digest.hexdigest()[:16]}


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
    for art in iter_corpus(job.input, job.text_field, job.id_field, job.split, report, keep_empty=True,
                           max_chars=job.max_chars):
        while pending:
            yield problem(pending.pop(0))
        yield record_of(art, job)
    while pending:
        yield problem(pending.pop(0))


def process_records(restorer, job: CorpusJob, records: list[dict]) -> tuple[list[dict], dict]:
    """Restore one batch of records (problem markers among them): ``(output rows, stats)``.

    A row is the record untouched plus ``restored``, ``spans`` and ``gaps``; the stats
    count articles, words, spans removed and replaced, undamaged articles, and
    list the failures. Both engines use this, one shard at a time.
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


def run_worker(job: CorpusJob, worker: int, n_workers: int, device: str | None = None, progress: bool = True,
               total: int | None = None, parent: int | None = None) -> dict:
    """Process the shards of one worker; returns its summary counts. ``total``: records in the input, if known.

    ``parent``: the process that started this worker; if it dies (kill -9), the worker stops after its shard
    rather than go on writing beside the rerun.
    """
    import torch
    from tqdm.auto import tqdm

    from .predict import Restorer

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))
    folder = ShardFolder(job.output, job.format)
    finished = folder.finished()
    options = job.options if device is None else dataclasses.replace(job.options, device=device)
    restorer = Restorer.from_pretrained(job.model, options, job.restoration)
    done = {"shards": 0, "skipped_shards": 0, "articles": 0}
    bar = tqdm(desc=f"worker {worker}", unit="article", disable=not progress, position=worker,
               total=None if total is None else -(-total // n_workers))
    start = time.monotonic()
    for k, records in iter_shards(job):
        if parent is not None and os.getppid() != parent:
            break
        if k % n_workers != worker:
            continue
        if k in finished:
            done["skipped_shards"] += 1
            continue
        rows, stats = process_records(restorer, job, records)
        folder.write_shard(k, encode_shard(rows, job.format), stats)
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


def _worker_entry(job: CorpusJob, worker: int, n_workers: int, total: int | None, parent: int, conn) -> None:
    """A worker process: its shards, or the error that stopped it sent back to the parent."""
    try:
        run_worker(job, worker, n_workers, progress=True, total=total, parent=parent)
    except BaseException as e:
        try:
            conn.send(e)
        except Exception:  # an exception that does not pickle: its text
            conn.send(RuntimeError(f"{type(e).__name__}: {e}"))
        raise SystemExit(1) from None
    finally:
        conn.close()


def _death(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def run_processes(job: CorpusJob, ids: list[int], n_workers: int, total: int | None) -> None:
    """The workers ``ids`` as processes. One that dies (killed, out of memory) is started again and continues
    from the finished shards, up to ``WORKER_RESTARTS`` times in all (then :class:`ChildProcessError`: a rerun
    continues); an error a worker raises stops the others and is raised here."""
    import multiprocessing as mp
    import sys
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    running: dict = {}  # sentinel -> (worker, process, receiving end of its pipe)
    restarts = 0

    def launch(w: int) -> None:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker_entry, args=(job, w, n_workers, total, os.getpid(), send),
                           name=f"corefix-worker-{w}")
        proc.start()
        send.close()
        running[proc.sentinel] = (w, proc, recv)

    try:
        for w in ids:
            launch(w)
        while running:
            for sentinel in wait(list(running)):
                w, proc, recv = running.pop(sentinel)
                proc.join()
                try:
                    error = recv.recv() if recv.poll() else None
                except EOFError:
                    error = None
                recv.close()
                if error is not None:
                    raise error
                if proc.exitcode == 0:
                    continue
                restarts += 1
                if restarts > WORKER_RESTARTS:
                    raise ChildProcessError(f"worker {w} died ({_death(proc.exitcode)}), after {WORKER_RESTARTS} "
                                            "restarts of workers in this run; rerun the same command to continue")
                print(f"corefix restore-corpus: warning: worker {w} died ({_death(proc.exitcode)}); started again, "
                      "it continues from the finished shards", file=sys.stderr, flush=True)
                launch(w)
    finally:
        for _, proc, _ in running.values():
            proc.terminate()
        for _, proc, _ in running.values():
            proc.join()


def check_job(job: CorpusJob) -> None:
    """Fail early (ValueError, or the model's own error) on a job that cannot run, before any work."""
    check_format(job.format)
    if job.shard_size < 1 or job.num_workers < 1:
        raise ValueError("--shard-size and --num-workers must be at least 1")
    if job.max_chars is not None and job.max_chars < 1:
        raise ValueError("--max-chars must be at least 1")
    from .inference import prepare_runtime
    from .network import check_model_dir

    check_model_dir(job.model)
    prepare_runtime(job.model, job.options)


def restore_corpus(job: CorpusJob, progress: bool = True) -> dict:
    """Run the job with ``num_workers`` local processes (times the launch's processes); return the summary.

    A folder of a killed run of the same job is continued; :class:`~corefix.model.shards.OutputError` when the
    folder cannot be written (the shards written so far are kept, a rerun continues).
    """
    check_job(job)
    folder = ShardFolder(job.output, job.format)
    folder.prepare(manifest(job))
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
        run_processes(job, ids, n_workers, total)
    folder.remove_stale_temps(sole_writer=world == 1)  # the processes of a launch may still be writing
    summary = folder.summary()
    summary["seconds"] = time.monotonic() - start
    folder.write_summary(summary)
    return summary
