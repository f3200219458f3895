"""spaCy's parses of articles kept on disk, so that datasets built from the same articles parse each once.

Every dataset of the release recipe (``scripts/build_data.sh``) damages the
same BBC and US articles again with other settings, and parsing is most of a
build's time: the recipe parses about 38,000 articles, 8,000 of them distinct.
A :class:`ParseCache` keeps each article's parse as one file named by the
SHA-256 of its text, in a folder named by the spaCy pipeline and version (a
new pipeline never reads an old one's parses). Files are written whole or not
at all (a temporary file renamed), and a file that cannot be read is parsed
again and rewritten. The files hold spaCy's own serialisation of a ``Doc``
(msgpack, zlib-compressed), which loads no Python objects: nothing is
unpickled. The tok2vec tensor and user data are not kept (the simulator reads
neither); everything the simulator reads comes back the same
(``tests/test_dataset.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_EXCLUDE = ("tensor", "user_data")


def pipeline_name(nlp) -> str:
    """The folder name of a spaCy pipeline's parses: language, name, pipeline version and spaCy version."""
    import spacy

    meta = nlp.meta
    return f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}-{meta.get('version', '0')}-spacy{spacy.__version__}"


class ParseCache:
    """Parses of texts by ``nlp``, read from ``folder`` where there and written there when new."""

    def __init__(self, folder: str | Path, nlp):
        self.nlp = nlp
        self.folder = Path(folder) / pipeline_name(nlp)
        self.hits = self.misses = 0

    def path(self, text: str) -> Path:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.doc"

    def _load(self, path: Path):
        from spacy.tokens import Doc

        try:
            return Doc(self.nlp.vocab).from_bytes(zlib.decompress(path.read_bytes()))
        except Exception as e:  # a truncated or foreign file: parse the text again
            log.warning("%s: unreadable cached parse (%s); parsing again", path, e)
            return None

    def _save(self, path: Path, doc) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(zlib.compress(doc.to_bytes(exclude=_EXCLUDE), 1))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def pipe(self, texts: Iterable[str], batch_size: int = 16, n_process: int = 1) -> Iterator:
        """The parse of each text, in order: read from the folder where kept, else parsed (``nlp.pipe``, the
        missing texts in one stream) and kept. Parses are read one at a time, as they are yielded."""
        texts = list(texts)
        paths = [self.path(t) for t in texts]
        new = [not p.exists() for p in paths]  # decided once: these come from the parsing stream, in order
        self.hits, self.misses = new.count(False), new.count(True)
        todo = [t for t, n in zip(texts, new) if n]
        parsed = self.nlp.pipe(todo, batch_size=batch_size, n_process=n_process) if todo else iter(())
        for text, path, is_new in zip(texts, paths, new):
            doc = next(parsed) if is_new else self._load(path)
            if doc is None:  # removed or unreadable since it was seen: parse it alone
                doc = self.nlp(text)
                self.hits, self.misses = self.hits - 1, self.misses + 1
                is_new = True
            if is_new:
                self._save(path, doc)
            yield doc
