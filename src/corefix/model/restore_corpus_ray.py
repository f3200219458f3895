"""Restore a whole corpus on a Ray cluster: the scale-out engine of ``restore-corpus``.

The same job as :mod:`corefix.model.restore_corpus` (the local engine), run
as a Ray Data pipeline::

    read_binary_files  ->  flat_map(parse)  ->  map_batches(restore, actor pool)  ->  write (Parquet or JSONL)

- **read**: the input's files (JSONL, CSV/TSV, Parquet, ``.txt``; one file or
  a folder; a local path or any URI pyarrow's filesystems take, ``s3://``...)
  are read by Ray tasks and parsed file by file, so every record knows its
  position (an id-less record gets the local engine's ``doc-NNNNNN``) and a
  record that cannot be read (invalid JSON or UTF-8, no text field, a binary
  ``.txt``, an unreadable file) becomes a failure marker instead of failing
  the run. (``read_text``/``read_json`` would stop the run at the first bad
  line, and ``read_text`` splits lines at U+2028, which JSON text may hold.)
- **restore**: a fixed pool of ``num_actors`` stateful actors, each loading
  the model once (on its GPU when given ``gpus_per_actor``), runs
  :func:`~corefix.model.restore_corpus.process_records`, the local engine's
  own per-record step, on batches of ``shard_size`` records.
- **write**: rows are written as Parquet (:func:`rows_table`) or JSONL
  (:func:`row_line`, the local engine's lines) files, ``shard_size`` rows or
  more each; ``summary.json`` (:func:`totals`, the local summary) goes beside
  them.

Without ``address`` a local Ray instance is started for the run and stopped
after it; with one (``auto``, ``ray://HOST:PORT``) the run joins that cluster,
the model directory is shipped to the actors through the object store, and
local input and output paths are read and written on the driver's node.
Unlike the local engine a run is not resumable: ``output`` must be empty.

Ray is an optional extra (``pip install -e ".[ray]"``); this module imports
it only inside functions, so the package imports without it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pickle
import posixpath
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..data.corpus import Article, InputFiles, filesystem, file_records, list_input, to_article
from .restore_corpus import (
    CorpusJob,
    check_job,
    count_records,
    problem,
    process_records,
    record_of,
    row_line,
    rows_table,
    totals,
)

INSTALL_HINT = 'the ray engine needs Ray: pip install -e ".[ray]"  (or: pip install "ray[data]>=2.60")'


class RayNotInstalled(ImportError):
    """``--engine ray`` without Ray installed (the message says how to install it)."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray for the run; "auto" or "ray://HOST:PORT": join a cluster
    num_actors: int = 1  # restoring actors, each with the model loaded once
    gpus_per_actor: float = 0.0  # > 0: each actor runs the model on its GPU
    cpus_per_actor: float = 1.0  # also the actor's torch threads (at least 1)

    def __post_init__(self):
        if self.num_actors < 1:
            raise ValueError("--num-actors must be at least 1")
        if self.gpus_per_actor < 0 or self.cpus_per_actor < 0:
            raise ValueError("--gpus-per-actor and --cpus-per-actor must be 0 or more")


def import_ray():
    """The ``ray`` module with ``ray.data`` loaded, or :class:`RayNotInstalled`."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayNotInstalled(INSTALL_HINT) from None
    return ray


def start_ray(options: RayOptions) -> bool:
    """Connect to ``options.address``, or start a quiet local Ray; False if Ray was already up (left as it is)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs = {"log_to_driver": False, "logging_level": logging.ERROR}
    if options.address:
        kwargs["address"] = options.address
    else:  # room for every actor and a reading task, even on a machine with fewer cores (they then share them)
        need = math.ceil(options.num_actors * options.cpus_per_actor) + 1
        kwargs.update(num_cpus=max(os.cpu_count() or 1, need), include_dashboard=False)
    ray.init(**kwargs)
    return True


# ---------------------------------------------------------------- the input

def parse_file(row: dict, job: CorpusJob, files: InputFiles) -> list[dict]:
    """The records of one input file (a row of ``read_binary_files``), each pickled as the engines pass it on."""
    path = row["path"].split("://", 1)[-1]
    if files.local and not path.startswith("/"):  # a local:// read's path, its leading slash lost
        path = "/" + path
    shown, rel = files.shown(path), posixpath.relpath(path, files.root)
    where = "" if files.single else f"{shown}: "
    out = []
    for n, (loc, rec, why) in enumerate(file_records(row["bytes"], files.kind, shown, rel)):
        if why is None:
            art = to_article(rec, n, job.text_field, job.id_field, files.id_prefix(path))
            at = f"{loc}: " if loc else f"{where}record {n}: "
            out.append(record_of(art, job) if isinstance(art, Article) else problem(f"{at}{art}"))
        else:
            out.append(problem(why))
    return [{"record": pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)} for r in out]


# ---------------------------------------------------------------- restoring

class _Tally:
    """One small actor that gathers each batch's stats (for the summary and the progress line)."""

    def __init__(self):
        self.stats: list[dict] = []
        self.records = 0

    def add(self, stats: dict) -> None:
        self.stats.append(stats)
        self.records += stats["articles"] + len(stats["failures"])

    def count(self) -> int:
        return self.records

    def all(self) -> list[dict]:
        return self.stats


def _unpack_model(files: dict[str, bytes]) -> str:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="corefix-model-"))
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return str(root)


class RestoreBatches:
    """The actor of ``map_batches``: loads the model once, then restores batches of pickled records."""

    def __init__(self, job: CorpusJob, tally, cpus: float, shipped_model=None):
        import ray
        import torch

        from .predict import Restorer

        torch.set_num_threads(max(1, int(cpus)))
        options = job.options
        if options.device is None and ray.get_gpu_ids():
            options = dataclasses.replace(options, device="cuda")  # Ray shows the actor its own GPU(s) only
        model = _unpack_model(ray.get(shipped_model[0])) if shipped_model else job.model
        self.restorer = Restorer.from_pretrained(model, options, job.restoration)
        self.job, self.tally = job, tally

    def __call__(self, batch):
        import pyarrow as pa
        import ray

        records = [pickle.loads(b) for b in batch.column("record").to_pylist()]
        rows, stats = process_records(self.restorer, self.job, records)
        ray.get(self.tally.add.remote(stats))  # counted before the batch is done, so none is lost at the end
        if self.job.format == "jsonl":
            return pa.table({"line": pa.array([row_line(r) for r in rows], pa.string())})
        return rows_table(rows)


def _jsonl_sink(path: str, min_rows: int):
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonlLines(BlockBasedFileDatasink):
        """Files of the ``line`` column, one line each: the local engine's JSONL, byte for byte."""

        def write_block_to_file(self, block, file):
            file.write("".join(line + "\n" for line in block.to_arrow().column("line").to_pylist()).encode("utf-8"))

    return JsonlLines(path, min_rows_per_file=min_rows, file_format="jsonl")


def _model_files(model_dir: str) -> dict[str, bytes]:
    root = Path(model_dir)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _check_output_empty(output: str) -> None:
    import pyarrow.fs as pafs

    fs, path = filesystem(output)
    if fs.get_file_info(path).type == pafs.FileType.File:
        raise ValueError(f"{output}: is a file; --output must be a folder")
    if fs.get_file_info(path).type == pafs.FileType.Directory and fs.get_file_info(pafs.FileSelector(path)):
        raise ValueError(f"{output}: not empty (the ray engine does not resume a run; give a new or empty --output)")


def _write_summary(output: str, summary: dict) -> None:
    fs, path = filesystem(output)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(posixpath.join(path, "summary.json")) as f:
        f.write(json.dumps(summary, indent=2).encode("utf-8"))


class _QuietRayData:
    """Ray Data without its progress bars, start-up notes and INFO logs, for the length of a run."""

    def __enter__(self):
        from ray.data import DataContext

        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", module=r"ray\.")  # tuning hints and deprecations meant for Ray's users
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")  # see _restarts
        ctx = DataContext.get_current()
        self.saved = (ctx.enable_progress_bars, ctx.print_on_execution_start)
        ctx.enable_progress_bars, ctx.print_on_execution_start = False, False
        self.logger = logging.getLogger("ray.data")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars, ctx.print_on_execution_start = self.saved
        self.logger.setLevel(self.level)
        self.warnings.__exit__(*exc)


def _progress_line(tally, total: int | None, enabled: bool):
    """One tqdm line fed from the tally every half second; returns a function that stops it."""
    import ray
    from tqdm.auto import tqdm

    bar = tqdm(desc="restore-corpus (ray)", unit="record", total=total, disable=not enabled)
    stop = threading.Event()

    def update():
        n = ray.get(tally.count.remote())
        if n != bar.n:
            bar.update(n - bar.n)

    def poll():
        while not stop.wait(0.5):
            update()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()

    def close():
        stop.set()
        thread.join()
        update()
        bar.close()

    return close


def _restarts(options: RayOptions) -> dict:
    """On a cluster Ray restarts a lost actor and retries its batch (and its C++ core logs one note per actor
    about it, ray-project/ray#53727); on one machine an actor's death is a bug to see, so no restarts, no note."""
    import inspect

    from ray.data import Dataset

    params = inspect.signature(Dataset.map_batches).parameters.values()
    takes_remote_args = any(p.kind is p.VAR_KEYWORD for p in params)  # deprecated in Ray 2.60, gone in 2.64
    return {"max_restarts": 0} if takes_remote_args and not options.address else {}


def restore_corpus_ray(job: CorpusJob, options: RayOptions = RayOptions(), progress: bool = True) -> dict:
    """Run the job on Ray; return the summary (the local engine's, ``shards`` counting batches)."""
    ray = import_ray()
    check_job(job)
    files = list_input(job.input)
    _check_output_empty(job.output)
    started = start_ray(options)
    try:
        return _run(ray, job, options, files, progress)
    finally:
        if started:
            ray.shutdown()


def _run(ray, job: CorpusJob, options: RayOptions, files: InputFiles, progress: bool) -> dict:
    # joined to a cluster: local paths are read and written on this (the driver's) node
    on_driver = options.address is not None and not options.address.startswith("ray://")
    local_scheme = on_driver and files.local
    paths = [f"local://{p}" for p in files.paths] if local_scheme else list(files.paths)
    output = job.output if "://" in job.output else os.path.abspath(job.output)
    if on_driver and "://" not in job.output:
        output = f"local://{output}"
    shipped = [ray.put(_model_files(job.model))] if options.address else None
    tally = ray.remote(num_cpus=0)(_Tally).remote()
    start = time.monotonic()
    with _QuietRayData():
        fs = None if local_scheme else filesystem(files.source)[0]  # the one the files were listed on
        ds = ray.data.read_binary_files(paths, filesystem=fs, include_paths=True)
        ds = ds.flat_map(parse_file, fn_kwargs={"job": job, "files": dataclasses.replace(files, paths=())})
        # a file is one block, one actor's work: cut into blocks of a batch so every actor gets some (streaming)
        ds = ds.repartition(target_num_rows_per_block=job.shard_size)
        ds = ds.map_batches(RestoreBatches, batch_size=job.shard_size, batch_format="pyarrow",
                            concurrency=options.num_actors, num_cpus=options.cpus_per_actor,
                            num_gpus=options.gpus_per_actor or None, **_restarts(options),
                            fn_constructor_kwargs={"job": job, "tally": tally, "cpus": options.cpus_per_actor,
                                                   "shipped_model": shipped})
        stop_progress = _progress_line(tally, count_records(job), progress)
        try:
            if job.format == "jsonl":
                ds.write_datasink(_jsonl_sink(output, job.shard_size))
            else:
                ds.write_parquet(output, min_rows_per_file=job.shard_size)
        finally:
            stop_progress()
    summary = totals(ray.get(tally.all.remote()))
    summary["seconds"] = time.monotonic() - start
    _write_summary(job.output, summary)
    return summary
