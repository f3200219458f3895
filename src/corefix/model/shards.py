"""The output folder of ``restore-corpus``, shared by both engines: shard files, their stats, the summary.

Shard ``k`` holds the records ``k * shard_size`` to ``(k + 1) * shard_size - 1`` of the input, in input
order, as ``shard-NNNNN.jsonl`` (:func:`row_line`) or ``shard-NNNNN.parquet`` (:func:`rows_table`), with
``shard-NNNNN.stats.json`` beside it. Every file is written whole or not at all (a temporary file of the
writer's own, synced, then renamed into place; on an object store the upload is the atomic step), the stats
after the shard, so a shard is finished exactly when both are there and a killed run leaves nothing that
looks finished but is not; a run that ends removes the temporary files killed writers left beside finished
shards (:meth:`ShardFolder.remove_stale_temps`).
``job.json`` (the :class:`Manifest`) records what decides the shards' contents, so a rerun continues only the
same job. The summary is counted from the stats on disk, so a shard restored twice (a retried batch, a rerun)
counts once, and failures come in input order.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import uuid
from typing import Iterable

FORMATS = ("jsonl", "parquet")
STATS = ".stats.json"
MANIFEST = "job.json"
SUMMARY = "summary.json"
ADDED_LATER = ("input_stamp", "max_chars")  # manifest keys a folder written by an older corefix lacks (not compared then)
COUNTS = ("articles", "words", "removed", "replaced", "undamaged")


class OutputError(OSError):
    """The output folder cannot be written (full, read-only, gone): one line naming it; a rerun continues."""


def check_format(fmt: str) -> None:
    """ValueError for an output format neither engine writes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r} (use {' or '.join(FORMATS)})")


def shard_name(k: int, fmt: str) -> str:
    """The file name of shard ``k``."""
    return f"shard-{k:05d}.{fmt}"


def stats_name(k: int) -> str:
    """The file name of shard ``k``'s stats (written after the shard: its presence marks the shard finished)."""
    return f"shard-{k:05d}{STATS}"


def shard_index(name: str) -> int | None:
    """``k`` of a stats file's name, None for any other file."""
    if not (name.startswith("shard-") and name.endswith(STATS)):
        return None
    digits = name[len("shard-"):-len(STATS)]
    return int(digits) if digits.isdigit() else None


# ---------------------------------------------------------------- encoding rows

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


def encode_shard(rows: list[dict], fmt: str) -> bytes:
    """The bytes of a shard file holding ``rows`` (the same bytes whichever engine or process makes them)."""
    if fmt == "jsonl":
        return "".join(row_line(row) + "\n" for row in rows).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(rows_table(rows), sink)
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------- the summary

def totals(shard_stats: Iterable[dict]) -> dict:
    """The end-of-run summary over the stats of every finished shard, in shard order."""
    total = {"shards": 0, "articles": 0, "words": 0, "removed": 0, "replaced": 0, "undamaged": 0, "failures": []}
    for s in shard_stats:
        total["shards"] += 1
        for k in COUNTS:
            total[k] += s[k]
        total["failures"].extend(s["failures"])
    words = max(total["words"], 1)
    total["removed_per_100_words"] = 100 * total["removed"] / words
    total["replaced_per_100_words"] = 100 * total["replaced"] / words
    return total


# ---------------------------------------------------------------- the folder

def _write_local(path: str, data: bytes) -> None:
    """``data`` into ``path`` whole or not at all: a temporary file of this writer's own, synced, renamed."""
    tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _final_name(temp: str) -> str:
    """The file a temporary file was to become: ``NAME.<12 hex>.tmp`` (or an older ``NAME.tmp``) -> ``NAME``."""
    base = temp.removesuffix(".tmp")
    head, _, tag = base.rpartition(".")
    return head if len(tag) == 12 and all(c in "0123456789abcdef" for c in tag) else base


class ShardFolder:
    """The output folder of one job, local or any pyarrow filesystem URI (``s3://``...)."""

    def __init__(self, location: str, fmt: str):
        from ..data.corpus import filesystem

        check_format(fmt)
        self.location, self.fmt = location, fmt
        self.fs, self.root = filesystem(location)
        self.local = "://" not in location

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name) if not self.local else os.path.join(self.root, name)

    def _failed(self, e: OSError) -> OutputError:
        why = e.strerror or str(e) or type(e).__name__
        return OutputError(f"cannot write to {self.location}: {why}; fix it, then rerun the same command to continue")

    def _write(self, name: str, data: bytes) -> None:
        try:
            if self.local:
                _write_local(self._path(name), data)
            else:  # an object store: the object appears whole when its upload completes
                with self.fs.open_output_stream(self._path(name)) as f:
                    f.write(data)
        except OutputError:
            raise
        except OSError as e:
            raise self._failed(e) from None

    def _read(self, name: str) -> bytes | None:
        import pyarrow.fs as pafs

        if self.fs.get_file_info(self._path(name)).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(self._path(name)) as f:
            return f.read()

    def prepare(self, manifest: dict) -> None:
        """Make the folder, and claim it for the job ``manifest`` describes (ValueError: another job's)."""
        import pyarrow.fs as pafs

        kind = self.fs.get_file_info(self.root).type
        if kind == pafs.FileType.File:
            raise ValueError(f"{self.location}: is a file; --output must be a folder")
        try:
            self.fs.create_dir(self.root, recursive=True)
        except OSError as e:
            raise self._failed(e) from None
        manifest = json.loads(json.dumps(manifest))  # as it reads back
        old = self._read(MANIFEST)
        if old is None:
            self._write(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
            return
        old = json.loads(old)
        differ = sorted(k for k in set(manifest) | set(old) if old.get(k) != manifest.get(k)
                        and not (k in ADDED_LATER and k not in old))
        if differ == ["input_stamp"]:
            raise ValueError(f"{self.location}: holds shards of another version of the input ({manifest.get('input')} "
                             f"changed since they were written: size or modification time differ, see {MANIFEST}); "
                             f"give a new --output to restore it anew")
        if differ:
            raise ValueError(f"{self.location}: holds shards of another job ({', '.join(differ)} differ, see "
                             f"{MANIFEST}); rerun with its settings to continue it, or give a new --output")

    def _names(self) -> set[str]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        return {posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.File}

    def finished(self) -> set[int]:
        """The indices of the shards already finished (their stats written, their file there)."""
        names = self._names()
        return {k for k in map(shard_index, names) if k is not None and shard_name(k, self.fmt) in names}

    def remove_stale_temps(self, sole_writer: bool = False) -> None:
        """Remove the temporary files killed writers left beside finished shards (nobody writes those again;
        a shard another process of the run is still writing keeps its own); ``sole_writer`` (no other process
        writes into the folder now): those of ``job.json`` and ``summary.json`` too."""
        if not self.local:
            return
        names, done = self._names(), self.finished()
        finals = {shard_name(k, self.fmt) for k in done} | {stats_name(k) for k in done}
        finals |= {MANIFEST, SUMMARY} if sole_writer else set()
        for name in names:
            if name.endswith(".tmp") and _final_name(name) in finals:
                with contextlib.suppress(OSError):
                    os.unlink(self._path(name))

    def write_shard(self, k: int, data: bytes, stats: dict) -> None:
        """Shard ``k``'s file, then its stats (each whole or not at all): the shard is then finished. When the
        stats cannot be written (the disk filled up between the two), the shard's file goes too, so that the
        folder holds no shard file without its stats (but after a kill between the two: a rerun redoes it)."""
        self._write(shard_name(k, self.fmt), data)
        try:
            self._write(stats_name(k), json.dumps(stats).encode("utf-8"))
        except OutputError:
            with contextlib.suppress(OSError):
                self.fs.delete_file(self._path(shard_name(k, self.fmt)))
            raise

    def summary(self) -> dict:
        """:func:`totals` over the stats of every finished shard, read from the folder (each shard once)."""
        return totals(json.loads(self._read(stats_name(k))) for k in sorted(self.finished()))

    def write_summary(self, summary: dict) -> None:
        self._write(SUMMARY, json.dumps(summary, indent=2).encode("utf-8"))
