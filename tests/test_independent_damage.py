"""The generators of tools/independent_damage (damage made without corefix's simulator) write records that
corefix reads, and make-dataset --labelled imports them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corefix.cli import main
from corefix.data.records import read_jsonl, split_of
from corefix.data.simulate import undo

from .conftest import ARTICLES

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "independent_damage"


def _test_split_corpus(tmp_path):
    """The fixture articles, three times each, under ids of the test split (the generators pick by split)."""
    ids = (f"art-{i}" for i in range(1000))
    test_ids = [i for i in ids if split_of(i) == "test"]
    rows = [{"id": test_ids[k], "text": text} for k, (_, text) in enumerate(ARTICLES * 3)]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


@pytest.mark.parametrize("generator", ["mechanism", "resolver_loops", "subword_offsets"])
def test_a_generator_writes_records_that_corefix_reads_and_imports(tmp_path, generator):
    corpus, rows = _test_split_corpus(tmp_path)
    out = tmp_path / "raw.jsonl"
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(TOOLS / f"{generator}.py"), "--input", str(corpus), "--out", str(out),
                    "--split", "test", "--seed", "7"], check=True, env=env, capture_output=True)
    records = read_jsonl(out)  # checks every span: inside the text, no overlap, a known label
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)
    assert sum(bool(r["spans"]) for r in records) >= len(records) // 2  # most articles damaged
    for r in records:
        assert len(r["tags"]) == len(r["words"])
        assert sum(t.startswith("B-") for t in r["tags"]) == len(r["spans"])
        if generator in ("mechanism", "subword_offsets"):  # putting back what each copy overwrote gives the original
            assert undo(r["text"], r["spans"]).rstrip() == r["original"].rstrip()
    main(["make-dataset", "--labelled", str(out), "--out", str(tmp_path / "ds"), "--profile", generator,
          "--splits", "test"])
    imported = read_jsonl(tmp_path / "ds" / "test.jsonl")
    assert [r["tags"] for r in imported] == [r["tags"] for r in records]
    assert {r["profile"] for r in imported} == {generator}
