"""Span heads: fitting, saving and loading, what they add to predictions, gap modes end to end, and the
readability measures of evaluation."""

import json
import shutil

import numpy as np
import pytest

from corefix.model.card import ModelCard
from corefix.model.evaluate import restoration_scores, wer_parts
from corefix.model.fit_heads import choose_fill_threshold, gap_vocabulary, pronoun_class
from corefix.model.heads import N_PARSE, NOTHING, OTHER, PRONOUN_CLASSES, span_input, surface_features
from corefix.model.inference import Detector
from corefix.model.metrics import fill_scores
from corefix.model.predict import Restorer
from corefix.model.render import to_html
from corefix.model.restore import GAP_MARK

from .test_predict import DAMAGED, run_cli


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model[0]


def _fixed_spans():
    """Spans of both labels in DAMAGED (the barely trained fixture model flags too little to test with)."""
    def at(frag, label, nth=0):
        start = -1
        for _ in range(nth + 1):
            start = DAMAGED.index(frag, start + 1)
        return {"start": start, "end": start + len(frag), "label": label, "score": 0.9}

    return [at("Ms. Lopez", "DUP"), at("Ms. Lopez", "DUP", 1), at("Ghana", "SUB", 1), at("Mr. Haldane", "DUP")]


@pytest.fixture
def fixed_spans(monkeypatch):
    """Detection that finds :func:`_fixed_spans` in DAMAGED; the heads still read the model's vectors."""
    from corefix.model.inference import WordPredictions

    monkeypatch.setattr(WordPredictions, "spans", lambda self, policy: [dict(s) for s in _fixed_spans()])


def _record(text, original, spans):
    from corefix.words import spans_to_tags, word_offsets

    return {"text": text, "original": original, "spans": spans, "tags": spans_to_tags(word_offsets(text), spans)}


def test_training_fits_heads_into_the_card(model_dir):
    card = ModelCard.load(model_dir)
    assert card.heads["pronoun_classes"] == list(PRONOUN_CLASSES)
    assert card.heads["gap_classes"][:2] == [NOTHING, OTHER]
    assert (model_dir / "heads.safetensors").is_file()
    info = card.heads["info"]
    assert info["train_articles"] == 12 and info["dup_examples"] > 0
    assert 0.3 <= card.heads["fill_threshold"] <= 1.01
    assert set(info["fill_thresholds"]) and all(0 <= v["precision"] <= 1 for v in info["fill_thresholds"].values())


def test_heads_read_every_predicted_span(model_dir, fixed_spans):
    r = Restorer.from_pretrained(model_dir)
    assert r.heads is not None and r.fill_threshold == r.heads.fill_threshold
    plain = r.detector.predict_spans([DAMAGED])[0]  # the detector detects: no pronoun, no gap
    assert all(set(s) == {"start", "end", "label", "score"} for s in plain)
    preds = r.detector.predict([DAMAGED], vectors=True)
    spans = r.annotate([DAMAGED], preds, [r.detector.spans(p) for p in preds])[0]
    assert [(s["start"], s["label"]) for s in spans] == [(s["start"], s["label"]) for s in _fixed_spans()]
    for s in spans:
        if s["label"] == "SUB":
            assert s["pronoun"] in PRONOUN_CLASSES and 0 < s["pronoun_score"] <= 1
        else:
            g = s["gap"]
            assert 0 <= g["destroyed"] <= 1 and 0 <= g["score"] <= 1
            assert g["words"] == "" or g["words"] in r.heads.gap_classes[2:]


def test_heads_load_from_safetensors_and_refuse_mismatches(model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    a = Restorer.from_pretrained(model_dir).heads
    b = Restorer.from_pretrained(copy).heads
    x = np.random.default_rng(0).normal(size=(3, a.pronoun.net[0].normalized_shape[0])).astype(np.float32)
    for pa, pb in zip(a.probabilities(x), b.probabilities(x)):
        np.testing.assert_allclose(pa, pb)
    card = json.loads((copy / "corefix.json").read_text())
    card["heads"]["surface_features"] = 3
    (copy / "corefix.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="refit"):
        Restorer.from_pretrained(copy)
    Detector.load(copy)  # the detector reads no heads
    card["heads"]["surface_features"] = a.card_fields()["surface_features"]
    (copy / "corefix.json").write_text(json.dumps(card))
    (copy / "heads.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="heads.safetensors"):
        Restorer.from_pretrained(copy)


def test_a_model_without_heads_uses_the_rules_and_drops(model_dir, tmp_path, fixed_spans):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    card = ModelCard.load(copy)
    card.heads = {}
    card.save(copy)
    r = Restorer.from_pretrained(copy, gaps="fill").restore(DAMAGED)
    assert r.gaps == [] and all("gap" not in s and "pronoun" not in s for s in r.spans)
    assert r.spans[2]["replacement"] == "it" and "Ms. Lopez" not in r.restored  # the rules' pronoun; copies dropped


@pytest.mark.parametrize("gaps", ["drop", "mark", "fill"])
def test_gap_modes_end_to_end(model_dir, tmp_path, capsys, gaps, fixed_spans):
    src = tmp_path / "in.txt"
    src.write_text(DAMAGED)
    code, out, err = run_cli(["predict", "--model", str(model_dir), "--input", str(src), "--format", "jsonl",
                              "--gaps", gaps], capsys)
    assert code == 0, err
    rec = json.loads(out)
    restored, text = rec["restored"], rec["text"]
    assert len(rec["spans"]) == 4
    for s in rec["spans"]:  # each replacement stands where the span says
        assert restored[s["at"]:s["at"] + len(s["replacement"])] == s["replacement"]
    assert [s["label"] for s in rec["spans"] if "gap" in s] == ["DUP"] * 3 and "pronoun" in rec["spans"][2]
    assert len(rec["gaps"]) == sum(s["gap"]["destroyed"] >= 0.5 for s in rec["spans"] if "gap" in s)
    for g in rec["gaps"]:
        assert g["destroyed"] >= 0.5 and text[g["start"]:g["end"]]
        assert restored[g["at"]:g["at"] + len(g["filled"])] == g["filled"]
        if gaps == "drop":
            assert g["filled"] == ""
        elif gaps == "mark":
            assert g["filled"] == GAP_MARK
        else:
            assert g["filled"] in ("", g["words"])
    # every word outside the spans is still there, in order
    kept = " ".join(text[a:b] for a, b in _outside(text, rec["spans"]))
    assert _in_order(kept, restored)


def _outside(text, spans):
    prev = 0
    for s in sorted(spans, key=lambda s: s["start"]):
        yield prev, s["start"]
        prev = s["end"]
    yield prev, len(text)


def _in_order(kept, restored):
    pos = 0
    for w in kept.split():
        pos = restored.find(w, pos)
        if pos < 0:
            return False
        pos += len(w)
    return True


def test_html_shows_filled_words_apart(model_dir, fixed_spans):
    r = Restorer.from_pretrained(model_dir, gaps="mark").restore(DAMAGED)
    marked = [g for g in r.gaps if g["filled"] == GAP_MARK]
    page = to_html([r])
    assert page.count(f'<span class="mark">{GAP_MARK}</span>') == len(marked) > 0
    fake = dict(r.spans[0], label="DUP", replacement="won", at=0, gap={"destroyed": 1.0, "words": "won", "score": 0.9})
    r.restored, r.spans = "won" + r.restored, [fake]
    assert '<span class="fill" title="filled gap, p=0.90">won</span>' in to_html([r])


def test_fit_heads_command_and_its_errors(model_dir, tiny_data, tmp_path, capsys):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    code, out, err = run_cli(["fit-heads", "--model", str(copy), "--data", str(tiny_data), "--train-limit", "6",
                              "--validation-limit", "4", "--pronoun-epochs", "2", "--gap-epochs", "1"], capsys)
    assert code == 0, err
    assert json.loads(out)["validation_pronoun"]["gold"] >= 0
    assert ModelCard.load(copy).heads["info"]["train_articles"] == 6
    code, _, err = run_cli(["fit-heads", "--model", str(copy), "--data", str(tmp_path)], capsys)
    assert code == 2 and "train.jsonl not found" in err
    code, _, err = run_cli(["fit-heads", "--model", str(copy), "--gap-epochs", "0"], capsys)
    assert code == 2 and "--gap-epochs" in err


def test_evaluate_reports_restoration_by_gap_mode(model_dir, tiny_data, tmp_path, capsys):
    code, out, err = run_cli(["evaluate", "--model", str(model_dir), "--data", str(tiny_data / "test.jsonl"),
                              "--out", str(tmp_path / "m.json")], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "m.json").read_text())["restoration"]["rows"]
    for name in ("model, heads, gaps drop", "model, heads, gaps mark", "model, heads, gaps fill",
                 "oracle: gold spans deleted, rules", "oracle: overwritten words put back"):
        assert name in rows and name in out
    assert rows["oracle: overwritten words put back"]["wer"] == 0.0  # the data's gold spans undo the damage
    assert "| restoration | WER | deletions /100" in (tmp_path / "report.md").read_text()


def test_span_inputs():
    text = "Mr. Smith said he would go. Later Smith left and he said it was fine."
    from corefix.words import word_offsets, word_range

    offsets = word_offsets(text)
    start = text.index("Smith", 10)
    a, b = word_range(offsets, start, start + 5)
    assert text[offsets[a][0]:offsets[b - 1][1]] == "Smith"
    vectors = np.arange(len(offsets) * 4, dtype=np.float16).reshape(len(offsets), 4)
    x = span_input(vectors, offsets, text, start, start + 5)
    assert x.shape == (5 * 4 + len(surface_features(text, start, start + 5)) + N_PARSE,)
    assert not x[-N_PARSE:].any() and span_input(vectors, offsets, text, start, start + 5, "SUB")[-N_PARSE:].any()
    np.testing.assert_array_equal(x[:4], vectors[a - 1])  # the word before comes first
    edge = span_input(vectors, offsets, text, 0, 3)  # no word before: zeros
    assert not edge[:4].any()


def test_gap_vocabulary_and_pronoun_classes():
    recs = [{"spans": [{"label": "DUP", "overwritten": "said"}] * 3 + [{"label": "DUP", "overwritten": ""},
                                                                      {"label": "DUP", "overwritten": "rare"}]}]
    assert gap_vocabulary(recs) == [NOTHING, OTHER, "said"]
    assert pronoun_class(" He") == PRONOUN_CLASSES.index("he") and pronoun_class("the firm") is None


def test_fill_scores_and_threshold_choice():
    text, original = "he Mr. Smith the prize .", "he won the prize ."
    rec = _record(text, original, [{"start": 3, "end": 12, "label": "DUP", "overwritten": "won", "replacement": ""}])
    assert fill_scores([rec], [[{"start": 3, "end": 12, "fill": "won"}]])["precision"] == 1.0
    wrong = fill_scores([rec], [[{"start": 3, "end": 12, "fill": "lost it"}]])
    assert wrong == {"precision": 0.0, "recall": 0.0, "right_words": 0, "filled_words": 2, "destroyed_words": 1}
    annotated = [[{"start": 3, "end": 12, "label": "DUP", "gap": {"destroyed": 1.0, "words": "won", "score": 0.95}}]]
    threshold, table = choose_fill_threshold([rec] * 30, annotated * 30)
    assert threshold == 0.3 and table["0.3"]["precision"] == 1.0  # 30 right words, the lowest threshold
    threshold, _ = choose_fill_threshold([rec] * 5, annotated * 5)
    assert threshold == 1.01  # too few filled words to judge: never fill


def test_wer_parts_and_restoration_scores():
    parts = wer_parts(["a b c d"], ["a c d e"])
    assert parts["deletions"] == 25.0 and parts["insertions"] == 25.0 and parts["substitutions"] == 0.0
    assert parts["wer"] == 0.5
    text, original = "he Mr. Smith the prize .", "he won the prize ."
    rec = _record(text, original, [{"start": 3, "end": 12, "label": "DUP", "overwritten": "won", "replacement": ""}])
    span = {"start": 3, "end": 12, "label": "DUP", "gap": {"destroyed": 1.0, "words": "won", "score": 0.9}}
    assert restoration_scores([rec], [[span]], "fill", 0.5)["wer"] == 0.0
    dropped = restoration_scores([rec], [[span]], "drop")
    assert dropped["wer_parts"]["deletions"] == 20.0 and "fill" not in dropped
    marked = restoration_scores([rec], [[span]], "mark")
    assert marked["wer_parts"]["substitutions"] == 20.0  # the mark stands where the word was


def test_the_restorer_owns_the_gap_mode_and_the_fill_threshold(model_dir):
    from corefix.model.options import InferenceOptions, RestoreOptions

    r = Restorer.from_pretrained(model_dir, gaps="fill", fill_threshold=0.0, threshold=0.5)
    assert r.options == RestoreOptions("fill", 0.0) and r.fill_threshold == 0.0
    assert r.detector.policy.threshold == 0.5 and not hasattr(r.detector.options, "gaps")
    default = Restorer.from_pretrained(model_dir)
    assert default.gaps == "drop" and default.fill_threshold == default.heads.fill_threshold  # the card's
    with pytest.raises(TypeError):
        Restorer.from_pretrained(model_dir, InferenceOptions(), gaps="fill")
    with pytest.raises(ValueError, match="gap mode"):
        RestoreOptions(gaps="guess")
