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
# Made up in the shape of the real damage (examples/README.md): a substitution, three copies over real words, a tail.
EXAMPLE = (Path(__file__).resolve().parents[1] / "examples" / "damaged.txt").read_text(encoding="utf-8")


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
    assert release["command"] and release["commit"]
    root = SHIPPED_MODEL_DIR.parents[2]  # the checkout: the config that made it is the one the script names
    assert release["config"] in (root / "scripts" / "make_default_model.sh").read_text(encoding="utf-8")
    assert release["training_data"] and card.training["steps_done"] == card.training["steps_planned"]
    scores = release["test_scores"]
    assert {"bbc-seed-test", "bbc-resolvers-test", "us-seed-test", "us-resolvers-test"} <= set(scores)
    damaged = {name: row for name, row in scores.items() if "clean_articles_flagged" not in row}
    assert all(0.0 < row["span_f1"] <= 1.0 for row in damaged.values())
    assert all(0.0 <= row["clean_articles_flagged"] <= 1.0 for name, row in scores.items() if name not in damaged)
    assert check_model_dir(None) == SHIPPED_MODEL_DIR == check_model_dir("default")


def test_it_loads_in_a_few_seconds_with_no_path():
    start = time.perf_counter()
    restorer = corefix.load()
    assert time.perf_counter() - start < 20  # a few seconds; generous for a loaded CI machine
    assert restorer.heads is not None
    assert restorer.detector.card.evidence


def test_it_removes_the_copies_and_keeps_the_words_of_a_made_up_example(restorer):
    res = restorer.restore(EXAMPLE)
    out = res.restored
    assert "Ms. Lopez about" not in out and "had Ms. Lopez the vote" not in out  # copies over real words removed
    assert "what they consider" in out  # the substitution given its pronoun back
    assert "President Lopez" not in out and "\n Mr. Mensah" not in out  # the overflow tail removed
    for kept in ("ACCRA  —  President Kofi Mensah of Ghana and Prime Minister Ana Lopez spoke by telephone",
                 "Mr. Mensah congratulated Ms. Lopez , phoning her a", "about an hour after she had",
                 "the vote , but the two leaders have not met .", "Ghana has a", "in Lopez , \" Mr. Mensah said ."):
        assert kept in out, kept
    kept_text = list(res.text)
    for s in sorted(res.spans, key=lambda s: -s["start"]):
        kept_text[s["start"]:s["end"]] = list(s["replacement"])
    assert re.sub(r"\s+", " ", "".join(kept_text)).strip() == re.sub(r"\s+", " ", out).strip()  # nothing else touched


@pytest.mark.skipif(not CORRUPTION.is_file(), reason="../shared/CORRUPTION.md (the real damaged excerpts) not here")
def test_it_restores_a_real_damaged_excerpt(restorer):
    page = CORRUPTION.read_text(encoding="utf-8")
    quote = next(line.strip()[2:] for line in page.splitlines() if line.strip().startswith("> sending him a Mr. Trump"))
    out = restorer.restore(quote).restored
    assert "Mr. Trump" not in out  # both misplaced copies
    for kept in ("sending him a", "about an hour after he had", "the victor , but the two men have not met"):
        assert kept in out, kept


def test_predict_needs_no_model_flag(tmp_path, capsys):
    art = tmp_path / "example.txt"
    art.write_text(EXAMPLE, encoding="utf-8")
    main(["predict", "--input", str(art)])
    out = capsys.readouterr().out
    assert "had Ms. Lopez the vote" not in out and "what they consider" in out and "the two leaders have not met" in out
