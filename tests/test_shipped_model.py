"""The model shipped inside corefix: it loads from the install with no path, compactly, and restores damage."""
import re
import time
from pathlib import Path

import pytest

import corefix
from corefix.cli import main
from corefix.model.card import ModelCard
from corefix.model.network import SHIPPED_MODEL_DIR, check_model_dir

CORRUPTION = Path(__file__).resolve().parents[1].parent / "shared" / "CORRUPTION.md"
# Made up in the shape of the real damage (the README's example): three copies over real words, a tail.
EXAMPLE = ("phoning her a Ms. Lopez about an hour after she had Ms. Lopez the vote , but the two leaders have not "
           "met . \" Ghana has a Ghana in Lopez , \" she said .\n Mr. Haldane President Lopez Ghana")


@pytest.fixture(scope="module")
def restorer():
    return corefix.load()


def test_the_shipped_model_is_compact_and_says_where_it_came_from():
    files = {f.name: f.stat().st_size for f in SHIPPED_MODEL_DIR.iterdir() if f.is_file()}
    assert {"model.safetensors", "config.json", "corefix.json", "heads.safetensors"} <= set(files)
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    assert sum(files.values()) < 30 * 2**20
    card = ModelCard.load(SHIPPED_MODEL_DIR)
    assert card.weights["from_base"] and card.weights["dtype"] == "float16" and card.warning is None
    release = card.release
    assert release["command"] and release["config"] == "configs/default-model.yaml" and release["commit"]
    assert release["training_data"] and card.training["steps_done"] == card.training["steps_planned"]
    scores = release["test_scores"]
    assert {"bbc-seed-test", "bbc-resolvers-test", "us-seed-test", "us-resolvers-test"} <= set(scores)
    assert all(0.0 < row["span_f1"] <= 1.0 for row in scores.values())
    assert check_model_dir(None) == SHIPPED_MODEL_DIR == check_model_dir("default")


def test_it_loads_in_a_few_seconds_with_no_path():
    start = time.perf_counter()
    restorer = corefix.load()
    assert time.perf_counter() - start < 20  # a few seconds; generous for a loaded CI machine
    assert restorer.detector.heads is not None and restorer.detector.card.evidence


def test_it_removes_the_copies_and_keeps_the_words_of_a_made_up_example(restorer):
    res = restorer.restore(EXAMPLE)
    out = res.restored
    assert "Ms. Lopez" not in out  # both copies over real words removed
    assert "Haldane" not in out and "President Lopez" not in out  # the overflow tail removed
    for kept in ("phoning her a", "about an hour after she had", "the vote , but the two leaders have not met .",
                 "Ghana has a", "in Lopez , \" she said ."):
        assert kept in out, kept
    outside = [c for i, c in enumerate(res.text) if not any(s["start"] <= i < s["end"] for s in res.spans)]
    assert re.sub(r"\s+", "", "".join(outside)) == re.sub(r"\s+", "", out)  # only spans removed, nothing else


@pytest.mark.skipif(not CORRUPTION.is_file(), reason="../shared/CORRUPTION.md (the real damaged excerpts) not here")
def test_it_restores_a_real_damaged_excerpt(restorer):
    page = CORRUPTION.read_text(encoding="utf-8")
    quote = next(line[2:].strip() for line in page.splitlines() if line.startswith("> sending him a Mr. Trump"))
    out = restorer.restore(quote).restored
    assert "Mr. Trump" not in out  # both misplaced copies
    for kept in ("sending him a", "about an hour after he had", "the victor , but the two men have not met"):
        assert kept in out, kept


def test_predict_needs_no_model_flag(tmp_path, capsys):
    art = tmp_path / "example.txt"
    art.write_text(EXAMPLE, encoding="utf-8")
    main(["predict", "--input", str(art)])
    out = capsys.readouterr().out
    assert "Ms. Lopez" not in out and "the two leaders have not met" in out
