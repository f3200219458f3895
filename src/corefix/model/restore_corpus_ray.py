"""Restore a whole corpus on a Ray cluster: the scale-out engine of ``restore-corpus``.

The same job as :mod:`corefix.model.restore_corpus` (the local engine), with the same shards, in the same
output folder (:class:`corefix.model.shards.ShardFolder`), resumed the same way::

    driver: read the input in order  ->  cut into shards  ->  skip the finished ones
    actors: restore a shard (the local engine's process_records), encode its file
    driver: write each shard atomically as it comes back  ->  summary.json from the shards on disk

- **read**: the input's files (JSONL, CSV/TSV, Parquet, ``.txt``; one file or a folder; a local path or
  any URI pyarrow's filesystems take, ``s3://``...) are read on the driver, file by file in name order, and
  parsed from their bytes, so every record knows its position (an id-less record gets the local engine's
  ``doc-NNNNNN``) and a record that cannot be read (invalid JSON or UTF-8, no text field, a binary
  ``.txt``, an unreadable file) becomes a failure marker instead of failing the run. The records are cut
  into the local engine's shards (:func:`~corefix.model.restore_corpus.cut_into_shards`).
- **restore**: a fixed pool of ``num_actors`` stateful actors, each loading the model once (on its GPU when
  given ``gpus_per_actor``), runs :func:`~corefix.model.restore_corpus.process_records`, the local
  engine's own per-record step, on each shard and sends back the shard file's bytes and stats. At most two
  shards per actor are in flight, so reading keeps pace without holding the corpus in memory.
- **write**: the driver writes each shard as it comes back, whole or not at all, then its stats. An actor
  that dies (a lost node, a killed process) is restarted by Ray and its shard retried; the shard is
  written once whatever Ray retried, and ``summary.json`` is counted from the shards on disk, failures in
  input order.

A killed run (the driver, the head node) is continued by running the same command again: finished shards
are skipped, and the files are those of one uninterrupted run, byte for byte, and those of the local
engine. Without ``address`` a local Ray instance is started for the run and stopped after it; with one
(``auto``, ``ray://HOST:PORT``) the run joins that cluster and the model directory is shipped to the
actors through the object store; local input and output paths are read and written on the driver.

Ray is an optional extra (``pip install -e ".[ray]"``); this module imports it only inside functions, so
the package imports without it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..data.corpus import (
    Article,
    InputFiles,
    file_records,
    filesystem,
    list_input,
    read_error,
    to_article,
    unreadable_entry,
)
from .restore_corpus import (
    CorpusJob,
    check_job,
    count_records,
    cut_into_shards,
    manifest,
    problem,
    process_records,
    record_of,
)
from .shards import ShardFolder, encode_shard

INSTALL_HINT = 'the ray engine needs Ray: pip install -e ".[ray]"  (or: pip install "ray>=2.60")'
RETRIES = 3  # restarts of a dead actor, and retries of the shard it held, before the run stops (a rerun continues)
EXIT_ONCE_ENV = "COREFIX_TEST_ACTOR_EXIT_ONCE"  # tests only: a marker path; the first actor to finish a shard dies


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
    """The ``ray`` module, or :class:`RayNotInstalled`."""
    try:
        import ray
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
    else:  # room for every actor, even on a machine with fewer cores (they then share them)
        need = math.ceil(options.num_actors * options.cpus_per_actor)
        kwargs.update(num_cpus=max(os.cpu_count() or 1, need), include_dashboard=False)
    ray.init(**kwargs)
    return True


# ---------------------------------------------------------------- the input

def parse_file(path: str, data: bytes, job: CorpusJob, files: InputFiles) -> list[dict]:
    """The records of one input file, from its bytes, as the engines pass them on (markers for bad ones)."""
    shown, rel = files.shown(path), posixpath.relpath(path, files.root)
    where = "" if files.single else f"{shown}: "
    out = []
    for n, (loc, rec, why) in enumerate(file_records(data, files.kind, shown, rel)):
        if why is None:
            art = to_article(rec, n, job.text_field, job.id_field, files.id_prefix(path), job.max_chars)
            at = f"{loc}: " if loc else f"{where}record {n}: "
            out.append(record_of(art, job) if isinstance(art, Article) else problem(f"{at}{art}"))
        else:
            out.append(problem(why))
    return out


def iter_input_records(job: CorpusJob, files: InputFiles) -> Iterator[dict]:
    """Every record of the input, file by file in order, a marker where a record or file could not be read."""
    fs = filesystem(files.source)[0]
    for path in files.paths:
        why = unreadable_entry(Path(path)) if files.local else None
        if why is None:
            try:
                if files.local:  # as the local engine reads it (the same errors)
                    data = Path(path).read_bytes()
                else:
                    with fs.open_input_stream(path) as f:
                        data = f.read()
            except OSError as e:
                why = read_error(e) if files.local else f"unreadable ({str(e).splitlines()[0] if str(e) else e})"
        if why is not None:
            yield problem(f"{files.shown(path)}: {why}")
            continue
        yield from parse_file(path, data, job, files)


# ---------------------------------------------------------------- restoring

def _exit_once(marker: str | None) -> None:
    """Test hook, off unless ``COREFIX_TEST_ACTOR_EXIT_ONCE`` names a marker file: the first actor to get
    here makes the marker and dies mid-shard (as on a lost node); Ray restarts it and retries the shard."""
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)


def _unpack_model(files: dict[str, bytes]) -> str:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="corefix-model-"))
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return str(root)


def _model_files(model_dir: str) -> dict[str, bytes]:
    root = Path(model_dir)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class ShardRestorer:
    """The Ray actor: loads the model once, then restores shards into their file's bytes and stats."""

    def __init__(self, job: CorpusJob, cpus: float, shipped_model=None, exit_once: str | None = None):
        import ray
        import torch

        from .predict import Restorer

        torch.set_num_threads(max(1, int(cpus)))
        options = job.options
        if options.device is None and ray.get_gpu_ids():
            options = dataclasses.replace(options, device="cuda")  # Ray shows the actor its own GPU(s) only
        model = _unpack_model(ray.get(shipped_model[0])) if shipped_model else job.model
        self.restorer = Restorer.from_pretrained(model, options, job.restoration)
        self.job, self.exit_once = job, exit_once

    def restore(self, records: list[dict]) -> tuple[bytes, dict]:
        """One shard's records (failure markers among them): its file's bytes and its stats."""
        rows, stats = process_records(self.restorer, self.job, records)
        _exit_once(self.exit_once)
        return encode_shard(rows, self.job.format), stats


def _start_actors(ray, job: CorpusJob, options: RayOptions, shipped: list | None) -> list:
    """The pool of restoring actors; Ray restarts a dead one and retries the shard it held (``RETRIES`` times).

    ``shipped``: ``[object ref of the model's files]`` when joined to a cluster (the nodes need not share a disk).
    """
    actor = ray.remote(ShardRestorer).options(num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor,
                                              max_restarts=RETRIES, max_task_retries=RETRIES)
    exit_once = os.environ.get(EXIT_ONCE_ENV) or None
    return [actor.remote(job, options.cpus_per_actor, shipped, exit_once) for _ in range(options.num_actors)]


class _Pool:
    """Shards in flight on the actors (at most two each, so each has the next one waiting), written as they
    come back. The actors start at the first shard to restore: a finished run loads no model."""

    def __init__(self, ray, job: CorpusJob, options: RayOptions, folder: ShardFolder, bar):
        self.ray, self.job, self.options, self.folder, self.bar = ray, job, options, folder, bar
        self.actors: list = []
        self.shipped: list | None = None
        self.load: list[int] = []
        self.in_flight: dict = {}  # ObjectRef -> (shard index, actor index, record count)

    def submit(self, k: int, records: list[dict]) -> None:
        if not self.actors:
            if self.options.address:  # kept here while the actors live: a restarted actor reads it again
                from .network import check_model_dir

                self.shipped = [self.ray.put(_model_files(str(check_model_dir(self.job.model))))]
            self.actors = _start_actors(self.ray, self.job, self.options, self.shipped)
            self.load = [0] * len(self.actors)
        while len(self.in_flight) >= 2 * len(self.actors):
            self.collect()
        i = min(range(len(self.actors)), key=self.load.__getitem__)
        self.in_flight[self.actors[i].restore.remote(records)] = (k, i, len(records))
        self.load[i] += 1

    def collect(self) -> None:
        """Wait for a shard to come back and write it."""
        (ref,), _ = self.ray.wait(list(self.in_flight), num_returns=1)
        k, i, n = self.in_flight.pop(ref)
        self.load[i] -= 1
        data, stats = self.ray.get(ref)
        self.folder.write_shard(k, data, stats)
        self.bar.update(n)

    def drain(self) -> None:
        while self.in_flight:
            self.collect()


def restore_corpus_ray(job: CorpusJob, options: RayOptions = RayOptions(), progress: bool = True) -> dict:
    """Run the job on Ray, continuing a killed run of it in ``job.output``; return the summary (the local engine's).

    :class:`~corefix.model.shards.OutputError` when the output folder cannot be written (a rerun continues).
    """
    ray = import_ray()
    check_job(job)
    files = list_input(job.input)
    folder = ShardFolder(job.output, job.format)
    folder.prepare(manifest(job))
    started = start_ray(options)
    try:
        return _run(ray, job, options, files, folder, progress)
    finally:
        if started:
            ray.shutdown()


def _run(ray, job: CorpusJob, options: RayOptions, files: InputFiles, folder: ShardFolder, progress: bool) -> dict:
    from tqdm.auto import tqdm

    start = time.monotonic()
    finished = folder.finished()
    bar = tqdm(desc="restore-corpus (ray)", unit="record", total=count_records(job), disable=not progress)
    pool = _Pool(ray, job, options, folder, bar)
    try:
        for k, records in cut_into_shards(iter_input_records(job, files), job.shard_size):
            if k in finished:
                bar.update(len(records))
            else:
                pool.submit(k, records)
        pool.drain()
    finally:
        bar.close()
    folder.remove_stale_temps(sole_writer=True)
    summary = folder.summary()
    summary["seconds"] = time.monotonic() - start
    folder.write_summary(summary)
    return summary
