"""Load clean (or damaged) articles from a JSONL file, a CSV/Parquet file, a
folder of ``.txt`` files, or a Hugging Face hub dataset id.

Every loader yields ``Article(id, text)`` and counts what it had to skip
(empty texts, malformed lines, unreadable files) instead of crashing.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """A corpus that cannot be read at all (missing path, unknown format)."""


@dataclass
class Article:
    id: str
    text: str
    extra: dict = field(default_factory=dict)


@dataclass
class LoadReport:
    loaded: int = 0
    skipped_empty: int = 0
    skipped_malformed: int = 0
    problems: list[str] = field(default_factory=list)
    listener: Callable[[str], None] | None = None  # told of each skipped record as it happens

    @property
    def skipped(self) -> int:
        return self.skipped_empty + self.skipped_malformed

    def malformed(self, where: str, why: str) -> None:
        self.skipped_malformed += 1
        if self.listener is not None:
            self.listener(f"{where}: {why}")
        if len(self.problems) < 20:
            self.problems.append(f"{where}: {why}")

    def summary(self) -> str:
        return (f"loaded {self.loaded} articles, skipped {self.skipped_empty} empty "
                f"and {self.skipped_malformed} malformed records")


def iter_corpus(
    source: str | Path,
    text_field: str = "text",
    id_field: str = "id",
    split: str = "train",
    report: LoadReport | None = None,
    keep_empty: bool = False,
    max_chars: int | None = None,
) -> Iterator[Article]:
    """Stream the articles of ``source``; ``report`` (if given) counts skips.

    Empty texts are skipped unless ``keep_empty`` (prediction hands them back unchanged); a text longer than
    ``max_chars`` is a malformed record (:func:`to_article`).
    """
    report = report if report is not None else LoadReport()
    path = Path(source)
    if path.is_dir():
        records = _iter_txt_folder(path, report)
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json"):
            records = _iter_jsonl(path, report)
        elif suffix in (".csv", ".parquet", ".tsv"):
            records = _iter_datasets(_local_dataset(path), report)
        elif suffix == ".txt":
            records = _iter_txt_files([path], report)
        else:
            raise CorpusError(f"{path}: unknown corpus format {suffix!r} (use .jsonl, .csv, .parquet, .txt or a folder)")
    elif _looks_like_hub_id(str(source)):
        records = _iter_datasets(_hub_dataset(str(source), split), report)
    else:
        raise CorpusError(f"{source}: no such file or folder")
    for n, (where, rec) in enumerate(records):  # where: the record's file and line, when it has them
        if rec is None:
            continue
        art = to_article(rec, n, text_field, id_field, max_chars=max_chars)
        if isinstance(art, str):
            report.malformed(where or f"record {n}", art)
            continue
        if not art.text.strip() and not keep_empty:
            report.skipped_empty += 1
            continue
        report.loaded += 1
        yield art


def to_article(rec: dict, n: int, text_field: str = "text", id_field: str = "id", id_prefix: str = "",
               max_chars: int | None = None) -> Article | str:
    """Record ``n`` of a corpus as an :class:`Article`, or why it cannot be one.

    The text is the string in ``text_field`` (an empty CSV cell is ""); a
    record without an id gets ``<id_prefix>doc-NNNNNN``; every other field is
    kept in ``extra``. A text of more than ``max_chars`` characters is refused
    (restoring it would take memory in proportion: ``restore-corpus --max-chars``).
    """
    text = rec.get(text_field)
    if text is None and text_field in rec:
        text = ""  # an empty CSV cell
    if not isinstance(text, str):
        return f"no string field {text_field!r}"
    if max_chars is not None and len(text) > max_chars:
        return f"text of {len(text):,} characters, over the limit of {max_chars:,} (--max-chars): not restored"
    art_id = rec.get(id_field)
    art_id = str(art_id) if art_id not in (None, "") else f"{id_prefix}doc-{n:06d}"
    return Article(art_id, text, {k: v for k, v in rec.items() if k not in (text_field, id_field)})


def load_corpus(source, text_field="text", id_field="id", split="train", limit=None):
    """Load a whole corpus into memory: ``(articles, report)``."""
    report = LoadReport()
    out = []
    for art in iter_corpus(source, text_field, id_field, split, report):
        out.append(art)
        if limit is not None and len(out) >= limit:
            break
    return out, report


def _looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") for p in parts) and not s.endswith(
        (".jsonl", ".json", ".csv", ".txt", ".parquet"))


def json_record(line: str) -> tuple[dict | None, str | None]:
    """One JSONL line as ``(record, None)``, or ``(None, why)`` when it is not a JSON object."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg})"
    return (rec, None) if isinstance(rec, dict) else (None, "not a JSON object")


def jsonl_records(lines: Iterable[bytes]) -> Iterator[tuple[int, dict | None, str | None]]:
    """``(line number, record, None)`` or ``(line number, None, why)`` for each non-blank line of JSONL bytes.

    Lines are split as Python's text files split them (\\n, \\r\\n, \\r) and each is
    decoded on its own, so a line of invalid UTF-8 is one bad record, not a lost file.
    """
    lineno = 0
    for chunk in lines:
        for raw in chunk.splitlines():
            lineno += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, None, f"not valid UTF-8 ({e.reason} at byte {e.start} of the line)"
                continue
            if not line.strip():
                continue
            rec, why = json_record(line)
            yield lineno, rec, why


def _iter_jsonl(path: Path, report: LoadReport):
    with open(path, "rb") as f:
        for lineno, rec, why in jsonl_records(f):
            if why:
                report.malformed(f"{path}:{lineno}", why)
            yield f"{path}:{lineno}", rec


def local_text_files(folder: Path) -> list[Path]:
    """The ``.txt`` entries of a local folder, recursively, in name order (both engines read them in this order):
    files, and what only looks like one (a broken link, a link to a folder, a FIFO), so that reading names it;
    real sub-folders are searched, not listed."""
    return sorted(p for p in folder.rglob("*.txt") if p.is_symlink() or not p.is_dir())


def unreadable_entry(p: Path) -> str | None:
    """Why a local entry named like a text file is not one to read (a broken link, a folder, a FIFO: reading
    a FIFO would wait forever), or None."""
    if p.is_symlink() and not p.exists():
        return f"broken link (to {os.readlink(p)})"
    if p.exists() and not p.is_file():
        kind = ("a folder" if p.is_dir() else "a FIFO" if p.is_fifo() else "a socket" if p.is_socket()
                else "a device")
        return f"not a regular file ({kind})"
    return None


def read_error(e: OSError) -> str:
    """What a file that could not be opened or read is, in one line (permission denied, I/O error...)."""
    return f"unreadable ({e.strerror or type(e).__name__})"


def _iter_txt_folder(path: Path, report: LoadReport):
    files = local_text_files(path)
    if not files:
        raise CorpusError(f"{path}: folder has no .txt files")
    yield from _iter_txt_files(files, report, root=path)


def decode_text(data: bytes, where: str) -> str:
    """Bytes of a text file as a string, exactly (no newline translation).

    Raises :class:`CorpusError` for binary data or invalid UTF-8.
    """
    if b"\x00" in data:
        raise CorpusError(f"{where}: binary file, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    return text


def _iter_txt_files(files, report: LoadReport, root: Path | None = None):
    for p in files:
        why = unreadable_entry(p)
        if why is None:
            try:
                text = decode_text(p.read_bytes(), str(p))
            except OSError as e:
                why = read_error(e)
            except CorpusError as e:
                why = str(e).split(": ", 1)[-1]
        if why is not None:
            report.malformed(str(p), why)
            yield str(p), None
            continue
        rel = p.relative_to(root) if root else Path(p.name)
        yield str(p), {"id": str(rel.with_suffix("")), "text": text}


def _local_dataset(path: Path):
    from datasets import load_dataset

    kind = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}[path.suffix.lower()]
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    return load_dataset(kind, data_files=str(path), split="train", streaming=True, **kwargs)


def _hub_dataset(name: str, split: str):
    """A hub dataset, streamed (needs network access unless it is cached)."""
    from datasets import load_dataset

    return load_dataset(name, split=split, streaming=True)


def _iter_datasets(ds, report: LoadReport):
    for rec in ds:
        yield None, dict(rec)


def read_inputs(sources: list[str], text_field: str = "text", id_field: str = "id",
                complain: Callable[[str], None] | None = None, stdin=None) -> tuple[list[Article], list[Path]]:
    """The articles of each source to restore, and the files they came from.

    A source is a ``.txt`` file (one article, its name the id), a folder, a
    JSONL file, or ``-`` for ``stdin`` (bytes). Empty records are kept (they
    come back unchanged); a source or record that cannot be read is passed to
    ``complain`` and skipped, never fatal.
    """
    complain = complain or (lambda msg: log.warning(msg))
    articles: list[Article] = []
    files: list[Path] = []
    report = LoadReport(listener=complain)
    for src in sources:
        if src == "-":
            try:
                articles.append(Article("stdin", decode_text(stdin.read() if stdin else b"", "standard input")))
            except CorpusError as e:
                complain(str(e))
            continue
        path = Path(src)
        if not path.exists():
            complain(f"{path}: no such file or folder")
            continue
        files.extend([path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()])
        try:
            if path.is_file() and path.suffix.lower() not in (".jsonl", ".json"):
                articles.append(Article(path.stem, decode_text(path.read_bytes(), str(path))))
            else:
                articles.extend(iter_corpus(path, text_field, id_field, report=report, keep_empty=True))
        except CorpusError as e:
            complain(str(e))
        except OSError as e:
            complain(f"{path}: {e.strerror or e}")
    return articles, files


# ---------------------------------------------------------------- files by their bytes (the Ray engine's reading)
# The same records as :func:`iter_corpus` reads from local files, read from the bytes of each file on any
# pyarrow filesystem (local, ``s3://``...), a record that cannot be read becoming a problem, not an error.

FILE_KINDS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".txt": "txt"}


@dataclass(frozen=True)
class InputFiles:
    """The files of one input, found on its filesystem."""
    source: str  # as given
    kind: str  # jsonl, csv, tsv, parquet or txt
    root: str  # the folder the files are named from (a one-file input: its folder)
    paths: tuple[str, ...]  # on the filesystem, without a scheme
    single: bool  # one file given (ids and messages then read as the local engine's)
    local: bool  # on this machine's filesystem

    def shown(self, path: str) -> str:
        """A file's name in messages, as the local engine writes it."""
        if self.single:
            return self.source
        rel = posixpath.relpath(path, self.root)
        return str(Path(self.source) / rel) if self.local else f"{self.source.rstrip('/')}/{rel}"

    def id_prefix(self, path: str) -> str:
        """What goes before ``doc-NNNNNN`` of an id-less record: the file's name when there are several."""
        return "" if self.single else posixpath.splitext(posixpath.relpath(path, self.root))[0] + "/"


def filesystem(location: str):
    """The pyarrow filesystem of ``location`` (a local path or a URI) and the path on it."""
    import pyarrow.fs as pafs

    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(location)


def list_input(source: str) -> InputFiles:
    """The files of ``source`` and their kind (a folder: its ``.txt`` files, else its one kind of data file)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(source)
    local = isinstance(fs, pafs.LocalFileSystem)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        kind = FILE_KINDS.get(posixpath.splitext(path)[1].lower())
        if kind is None:
            raise CorpusError(f"{source}: unknown corpus format (use .jsonl, .csv, .tsv, .parquet, .txt or a folder)")
        return InputFiles(source, kind, posixpath.dirname(path), (path,), True, local)
    if info.type != pafs.FileType.Directory:
        raise CorpusError(f"{source}: no such file or folder (the ray engine reads files and folders, local or "
                          "any pyarrow filesystem URI; hub datasets need --engine local)")
    files = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                   if i.type == pafs.FileType.File)
    # a local folder's text files as the local engine lists them (broken links and FIFOs too, to name them)
    txt = tuple(map(str, local_text_files(Path(path)))) if local else tuple(f for f in files if f.endswith(".txt"))
    if txt:
        return InputFiles(source, "txt", path, txt, False, local)
    data = [f for f in files if not posixpath.basename(f).startswith((".", "_"))
            and posixpath.splitext(f)[1].lower() in FILE_KINDS]
    kinds = {FILE_KINDS[posixpath.splitext(f)[1].lower()] for f in data}
    if len(kinds) != 1:
        found = (f"mixes {', '.join(sorted(kinds))} files" if kinds
                 else "has no .txt, .jsonl, .csv, .tsv or .parquet files")
        raise CorpusError(f"{source}: folder {found}")
    return InputFiles(source, kinds.pop(), path, tuple(data), False, local)


def file_records(data: bytes, kind: str, shown: str, rel: str):
    """(where, record or None, problem or None) for each record of one file's bytes, in order; ``where`` is
    the record's file and line (a JSONL file) or file (a text file), None in a table."""
    if kind == "txt":
        try:
            yield shown, {"id": posixpath.splitext(rel)[0], "text": decode_text(data, shown)}, None
        except CorpusError as e:
            yield shown, None, str(e)
        return
    if kind == "jsonl":
        for lineno, rec, why in jsonl_records([data]):
            yield f"{shown}:{lineno}", rec, why and f"{shown}:{lineno}: {why}"
        return
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(pa.BufferReader(data)).iter_batches()
        else:
            import pyarrow.csv as pcsv

            parse = pcsv.ParseOptions(delimiter="\t" if kind == "tsv" else ",")
            batches = pcsv.read_csv(pa.BufferReader(data), parse_options=parse).to_batches()
        for batch in batches:
            for rec in batch.to_pylist():
                yield None, rec, None
    except (pa.ArrowException, OSError) as e:
        yield None, None, f"{shown}: unreadable {kind} file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
