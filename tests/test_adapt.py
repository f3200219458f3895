"""corefix adapt: pseudo-labels (ignored words, dropped articles, gold fields unread) and whole rounds."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from corefix import cli
from corefix.data.records import read_jsonl
from corefix.model import adapt as adapt_module
from corefix.model.adapt import better, corpus_articles, pseudo_label, pseudo_tags
from corefix.model.card import ModelCard
from corefix.model.decode import DecodePolicy
from corefix.model.features import IGNORE, encode_words
from corefix.model.inference import Detector, WordPredictions
from corefix.model.network import load_tokenizer, load_trained, save_compact
from corefix.words import TAG2ID, TAGS, split_words


def _prediction(text: str, uncertain: set[int]) -> WordPredictions:
    """Word predictions of ``text``: every word surely O, except the words in ``uncertain`` (P(O) 0.6)."""
    offsets, words = split_words(text)
    probs = np.zeros((len(words), len(TAGS)), dtype=np.float32)
    probs[:, TAG2ID["O"]] = 0.99
    probs[:, TAG2ID["B-DUP"]] = 0.01
    for i in uncertain:
        probs[i, TAG2ID["O"]], probs[i, TAG2ID["B-DUP"]] = 0.6, 0.4
    return WordPredictions(offsets, probs, words=words)


class _Stub:
    """A detector that gives the predictions it was made with."""

    policy = DecodePolicy("independent", titles=False)

    def __init__(self, predictions: dict[str, WordPredictions]):
        self.predictions = predictions

    def predict(self, texts, progress=False, vectors=False):
        return [self.predictions[t] for t in texts]


def _article(i, text):
    from corefix.data.corpus import Article

    return Article(str(i), text)


def test_uncertain_words_are_ignored_and_the_loss_never_sees_them(tiny_encoder):
    text = "Ana Lopez sold her car to Ben Smith ."
    tags = pseudo_tags(_prediction(text, {1, 6}), _Stub.policy, min_confidence=0.9)
    assert tags == ["O", IGNORE, "O", "O", "O", "O", IGNORE, "O", "O"]
    assert IGNORE not in TAG2ID  # never a class of the model
    words = split_words(text)[1]
    window = encode_words(load_tokenizer(tiny_encoder), words, 64, 16, tags=tags)[0]
    first = {}
    for pos, wid in enumerate(window["word_ids"]):
        if wid is not None:
            first.setdefault(wid, pos)
    labels = [window["labels"][first[w]] for w in range(len(words))]
    assert labels == [-100 if t == IGNORE else TAG2ID[t] for t in tags]
    assert labels[1] == labels[6] == -100 and labels[0] == TAG2ID["O"]


def test_articles_with_too_many_uncertain_words_are_left_out():
    text = " ".join(f"w{i}" for i in range(20))  # 20 words
    one, two = text + " ", text + "  "  # three articles, the same 20 words
    stub = _Stub({text: _prediction(text, set()), one: _prediction(one, {3}), two: _prediction(two, {3, 4})})
    arts = [_article(i, t) for i, t in enumerate((text, one, two))]
    labels = pseudo_label(stub, arts, min_confidence=0.9, max_uncertain=0.05, progress=False)
    assert [r["id"] for r in labels.records] == ["0", "1"]  # 1 of 20 uncertain is 5 %: kept; 2 of 20 is not
    assert labels.dropped == 1 and labels.words == 40 and labels.ignored == 1
    assert labels.records[1]["tags"].count(IGNORE) == 1 and labels.records[1]["profile"] == "pseudo"
    assert set(labels.records[0]) == {"id", "text", "words", "tags", "profile"}
    looser = pseudo_label(stub, arts, min_confidence=0.9, max_uncertain=0.1, progress=False)
    assert len(looser.records) == 3 and looser.ignored == 3


def test_repeated_names_the_model_keeps_are_ignored_not_counted_as_uncertain():
    """A copy the teacher missed is a confident O on a name the article said before: those words go out of the
    loss (but not the first mention, lower-case repeats, or a repeat the model flags), and the article stays."""
    text = "Ana Lopez met Ben . Ben said the car was the best . Lopez left"
    words = split_words(text)[1]
    pred = _prediction(text, set())
    flagged = words.index("Lopez", 2)  # the second "Lopez": the model calls it a copy
    pred.probs[flagged, TAG2ID["O"]], pred.probs[flagged, TAG2ID["B-DUP"]] = 0.01, 0.99
    stub = _Stub({text: pred})
    labels = pseudo_label(stub, [_article(0, text)], 0.9, 0.0, progress=False, ignore_repeated_names=True)
    tags = labels.records[0]["tags"]
    assert [w for w, t in zip(words, tags) if t == IGNORE] == ["Ben"]  # the second Ben only
    assert tags[words.index("Ben")] == "O" and tags[flagged] == "B-DUP" and tags[words.index("the", 6) + 3] == "O"
    assert labels.repeats == 1 and labels.ignored == 1 and labels.summary()["ignored_repeated_names"] == 1
    plain = pseudo_label(stub, [_article(0, text)], 0.9, 0.0, progress=False, ignore_repeated_names=False)  # off
    assert IGNORE not in plain.records[0]["tags"] and plain.repeats == 0


def test_pseudo_labels_follow_the_models_confidence(tiny_model, tiny_data):
    best, _ = tiny_model
    detector = Detector.load(best)
    arts = [_article(i, r["text"]) for i, r in enumerate(read_jsonl(tiny_data / "train.jsonl")[:6])]
    preds = detector.predict([a.text for a in arts])
    threshold = float(np.median([p.probs.max(axis=1).min() for p in preds]))  # some words below, some above
    labels = pseudo_label(detector, arts, min_confidence=threshold, max_uncertain=1.0, progress=False,
                          ignore_repeated_names=False)  # confidence alone
    assert len(labels.records) == len(arts)
    for rec, p in zip(labels.records, preds):
        decoded = p.tags(detector.policy)
        chosen = p.probs[np.arange(len(decoded)), [TAG2ID[t] for t in decoded]]
        assert rec["tags"] == [t if c >= threshold else IGNORE for t, c in zip(decoded, chosen)]
    assert 0 < labels.ignored < labels.words


def test_gold_fields_of_the_corpus_are_not_read(tiny_model, tiny_data, tmp_path):
    best, _ = tiny_model
    records = read_jsonl(tiny_data / "train.jsonl")[:5]
    plain, gold = tmp_path / "plain.jsonl", tmp_path / "gold.jsonl"
    plain.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in records))
    # the gold fields as they come, and wrong on purpose: neither may change a pseudo-label
    wrong = [{**r, "tags": ["B-DUP"] * len(r["tags"]), "words": ["x"] * len(r["words"]), "spans": []} for r in records]
    gold.write_text("".join(json.dumps(r) + "\n" for r in wrong))
    detector = Detector.load(best)
    out = []
    for corpus in (plain, gold):
        arts, held = corpus_articles([str(corpus)], "text", "id", set(), None, print)
        assert held == 0 and len(arts) == 5
        out.append(pseudo_label(detector, arts, 0.5, 1.0, progress=False).records)
    assert out[0] == out[1]
    assert all(rec["words"] == split_words(r["text"])[1] for rec, r in zip(out[1], records))


def test_the_test_articles_are_held_out_of_the_corpus(tiny_data):
    records = read_jsonl(tiny_data / "train.jsonl")[:4]
    arts, held = corpus_articles([str(tiny_data / "train.jsonl")], "text", "id", {records[1]["text"]}, 2, print)
    assert held >= 1 and records[1]["text"] not in [a.text for a in arts] and len(arts) == 2


def test_training_starts_from_a_compact_model_as_it_is(tiny_model, tmp_path):
    """The shipped model is compact: training starts from its weights, with the base encoder its card names."""
    from corefix.model.network import initial_model

    best, _ = tiny_model
    save_compact(best, tmp_path / "compact")  # as the shipped model is stored
    model, _, base = initial_model(str(tmp_path / "compact"))
    assert base == ModelCard.load(best).base_model
    reference = load_trained(tmp_path / "compact")[0].state_dict()
    loaded = model.state_dict()
    assert set(loaded) == set(reference)
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def _adapt(tiny_model, tiny_data, out, *extra):
    best, _ = tiny_model
    cli.main(["adapt", "--model", str(best), "--corpus", str(tiny_data / "train.jsonl"), "--data", str(tiny_data),
              "--test", str(tiny_data / "test.jsonl"), "--out", str(out), "--steps", "2", "--limit", "8",
              "--min-confidence", "0.2", "--max-uncertain", "0.5", "--set", "eval_every=2", "heads_train_docs=6",
              "calibration_docs=4", *extra])
    return json.loads((out / "adapt.json").read_text())


def _same_weights(a: Path, b: Path) -> bool:
    return (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_an_adapt_round_through_the_cli_keeps_the_better_model(tiny_model, tiny_data, tmp_path, capsys):
    best, _ = tiny_model
    report = _adapt(tiny_model, tiny_data, tmp_path / "run")
    test = str(tiny_data / "test.jsonl")
    (r,) = report["rounds"]
    assert set(r["before"]) == set(r["after"]) == {test}
    assert r["before"] == report["start_scores"]
    assert 0.0 <= r["after"][test] <= 1.0 and r["mean_after"] == r["after"][test]
    pseudo = read_jsonl(r["pseudo"]["path"])
    assert len(pseudo) == r["pseudo"]["kept"] > 0 and r["simulated_articles"] == len(pseudo)
    kept = r["mean_after"] > r["mean_before"]
    assert r["decision"] == ("kept" if kept else "rejected")
    chosen = tmp_path / "run" / "round-1" / "best" if kept else best
    assert Path(report["chosen"]) == chosen
    assert _same_weights(tmp_path / "run" / "best", chosen)
    out = capsys.readouterr().out
    printed = json.loads(out[out.rindex("\n{") + 1:])
    assert printed["decisions"] == [r["decision"]] and printed["chosen"] == report["chosen"]
    card = json.loads((tmp_path / "run" / "round-1" / "best" / "corefix.json").read_text())
    start_card = json.loads((best / "corefix.json").read_text())
    cfg = card["train_config"]
    assert cfg["max_steps"] == 2 and cfg["learning_rate"] == 5e-5 and cfg["model"] == str(best)
    assert cfg["data_dir"][1].endswith("pseudo") and cfg["eval_every"] == 2
    assert card["base_model"] == start_card["base_model"]  # the encoder, not the directory fine-tuned
    assert card["heads"] and card["calibration"]  # calibrated and given heads, as train_model does


def test_the_mean_over_the_test_files_must_rise():
    assert better({"a": 0.5, "b": 0.5}, {"a": 0.3, "b": 0.8})
    assert not better({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1})  # a tie keeps the old model
    assert not better({"a": 0.5}, {"a": 0.4})


def test_a_worse_model_is_not_kept_and_adaptation_stops(tiny_model, tiny_data, tmp_path, monkeypatch):
    """Scores forced: round 1 better on both test files, round 2 better on one and worse on average; round 3
    never runs."""
    best, _ = tiny_model
    a, b = str(tiny_data / "test.jsonl"), str(tiny_data / "validation.jsonl")
    forced = {str(best): {a: 0.5, b: 0.5}, "round-1": {a: 0.6, b: 0.6}, "round-2": {a: 0.7, b: 0.4}}
    calls = []

    def score(model_dir, test_files, out_dir):
        calls.append(Path(model_dir))
        assert [str(t) for t in test_files] == [a, b]
        return dict(forced.get(str(model_dir)) or forced[Path(model_dir).parent.name])

    monkeypatch.setattr(adapt_module, "score_model", score)
    report = _adapt(tiny_model, tiny_data, tmp_path / "run", "--rounds", "3", "--test", a, b,
                    "--set", "heads_train_docs=0")
    run = tmp_path / "run"
    assert [r["decision"] for r in report["rounds"]] == ["kept", "rejected"]
    assert calls == [best, run / "round-1" / "best", run / "round-2" / "best"]  # each model scored once
    first, second = report["rounds"]
    assert first["mean_before"] == 0.5 and first["mean_after"] == 0.6
    assert second["model_before"] == str(run / "round-1" / "best")  # round 2 starts from the kept model
    assert second["before"] == first["after"] and second["after"] == {a: 0.7, b: 0.4}
    assert second["mean_after"] == pytest.approx(0.55)
    assert report["chosen"] == str(run / "round-1" / "best") and report["chosen_scores"] == {a: 0.6, b: 0.6}
    assert _same_weights(run / "best", run / "round-1" / "best")
    assert not _same_weights(run / "best", run / "round-2" / "best")
    assert not (run / "round-3").exists()


def test_adapt_errors_are_one_line(tiny_model, tiny_data, tmp_path, capsys):
    best, _ = tiny_model
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "x", "text": "   "}) + "\n")
    base = ["adapt", "--model", str(best), "--data", str(tiny_data), "--out", str(tmp_path / "run")]
    cases = [
        (["--corpus", str(empty), "--test", str(tiny_data / "test.jsonl")], "the corpus holds no article"),
        (["--corpus", str(tiny_data / "test.jsonl"), "--test", str(tiny_data / "test.jsonl")],
         "the corpus holds no article outside the --test files"),
        (["--corpus", str(tiny_data / "train.jsonl"), "--test", str(tmp_path / "missing.jsonl")], "missing.jsonl: no such file"),
        (["--corpus", str(tiny_data / "train.jsonl"), "--test", str(tiny_data / "test.jsonl"), "--set", "max_steps=5"],
         "--set max_steps: adapt sets it itself (use --steps)"),
        (["--corpus", str(tiny_data / "train.jsonl"), "--test", str(tiny_data / "test.jsonl"), "--limit", "3",
          "--min-confidence", "1.0", "--max-uncertain", "0"], "nothing to learn from"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as e:
            cli.main(base + args)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("corefix adapt: error: ") and message in err[-1], err
        assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "run" / "adapt.json").exists()
