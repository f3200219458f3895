import pytest

from corefix.model.baseline import rule_tags
from corefix.model.evaluate import evaluate, format_table, score_system, write_report
from corefix.words import spans_to_tags, word_offsets
from corefix.model.inference import WordPredictions
from corefix.data.simulate import undo


def _records(simulator, articles):
    return [simulator.damage(a, t, sample=k).to_record() for a, t in articles for k in range(3)]


def test_perfect_prediction_scores_one_and_oracle_wer(simulator, articles):
    recs = _records(simulator, articles)
    perfect = score_system(recs, [r["tags"] for r in recs])
    oracle = score_system(recs, [r["tags"] for r in recs], [r["spans"] for r in recs])
    assert perfect["spans"]["micro"]["f1"] == 1.0 and perfect["words"]["f1"] == 1.0
    assert perfect["wer"] == pytest.approx(oracle["wer"], abs=1e-9)


def test_empty_prediction_has_zero_recall_and_input_wer(simulator, articles):
    recs = _records(simulator, articles)
    none = score_system(recs, [["O"] * len(r["tags"]) for r in recs])
    assert none["spans"]["micro"]["recall"] == 0.0
    assert none["wer"] > 0


def test_oracle_restoration_beats_the_input(simulator, articles):
    recs = _records(simulator, articles)
    res = evaluate(recs)
    assert res["oracle"]["wer"] < res["input"]["wer"]
    assert "rule baseline" in format_table(res)


def test_model_figures_report_and_plots(simulator, articles, tmp_path):
    import numpy as np

    recs = _records(simulator, articles)
    preds = []
    for r in recs:
        offs = word_offsets(r["text"])
        probs = np.zeros((len(offs), 5), dtype=np.float32)
        for i, t in enumerate(r["tags"]):
            probs[i, ["O", "B-SUB", "I-SUB", "B-DUP", "I-DUP"].index(t)] = 0.9
            probs[i, 0] += 0.1 if t != "O" else 0.0
        preds.append(WordPredictions(offs, probs))
    res = evaluate(recs, preds)
    assert res["model"]["spans"]["micro"]["f1"] == 1.0
    assert res["model"]["threshold_curve"][0]["recall"] == 1.0
    report = write_report(res, tmp_path)
    assert (tmp_path / "plots.png").stat().st_size > 1000 and "| model |" in report.read_text()


def test_rule_baseline_on_corruption_examples():
    text = ('phoning her a Ms. Lopez about an hour after she had Ms. Lopez the vote , but Mr. Okafor Mr. Okafor '
            'congratulations . " Ghana has a Ghana in Lopez , " he said .\n Mr. Haldane President Lopez Ghana')
    offsets, tags = rule_tags(text)
    flagged = {text[s:e] for (s, e), t in zip(offsets, tags) if t != "O"}
    assert {"Haldane", "Okafor"} <= flagged
    assert tags[[text[s:e] for s, e in offsets].index("hour")] == "O"


def test_gold_spans_round_trip(simulator, articles):
    for r in _records(simulator, articles):
        assert undo(r["text"], r["spans"]) == r["original"]
        assert spans_to_tags(word_offsets(r["text"]), r["spans"]) == r["tags"]


def test_first_mentions_are_names_new_to_the_article():
    from corefix.model.metrics import first_mentions
    from corefix.words import split_words

    text = "MOSCOW — President Vladimir V. Putin met Mr. Trump. Then Mr. Putin said Trump was nice.\nRussia agreed."
    _, words = split_words(text)
    assert [words[i] for i in first_mentions(text)] == ["Vladimir", "V", "Putin", "Mr", "Trump"]
    gold = ["O"] * len(words)
    gold[words.index("Vladimir")] = "B-DUP"  # an inserted word is no first mention, nor evidence of one
    assert "Vladimir" not in [words[i] for i in first_mentions(text, gold)]


def test_first_mention_flag_rate_counts_flags_on_them(simulator, articles):
    recs = _records(simulator, articles)
    flag_all = [["B-DUP"] * len(r["tags"]) for r in recs]
    res = score_system(recs, flag_all)
    assert res["first_mentions"] > 5 and res["first_mention_flag_rate"] == 1.0
    assert score_system(recs, [r["tags"] for r in recs])["first_mention_flag_rate"] == 0.0
    assert "first mentions flagged" in format_table(evaluate(recs))


def test_blockquotes_and_probe():
    import numpy as np

    from corefix.model.decode import DecodePolicy
    from corefix.model.evaluate import blockquotes, probe
    from corefix.model.inference import WordPredictions
    from corefix.words import split_words

    page = "# Title\n\n> first quote\n> goes on\n\ntext\n\n> Then Ana met Ben . Ben Ana left\n"
    quotes = blockquotes(page)
    assert quotes == ["first quote\ngoes on", "Then Ana met Ben . Ben Ana left"]
    offsets, words = split_words(quotes[1])
    probs = np.zeros((len(words), 5), dtype=np.float32)
    probs[:, 0] = 1.0
    probs[1] = [0, 0, 0, 1, 0]  # flags the first mention "Ana" ...
    probs[6] = [0, 0, 0, 1, 0]  # ... and the copy "Ana"
    result = probe(quotes[1:], [WordPredictions(offsets, probs, words)], DecodePolicy())
    assert [s["text"] for s in result["items"][0]["flagged"]] == ["Ana", "Ana"]
    # first mentions: "Ana" and "Ben" ("Then" opens the text, the second "Ben" a sentence)
    assert result["first_mentions"] == 2 and result["first_mention_flag_rate"] == 0.5


def test_clean_articles_flagged_share():
    from corefix.model.metrics import clean_flag_rate

    gold = [["O", "O"], ["O", "B-DUP"], ["O", "O", "O"], ["O"]]
    pred = [["O", "B-SUB"], ["O", "O"], ["O", "O", "O"], ["O"]]
    assert clean_flag_rate(gold, pred) == (1 / 3, 3)  # the damaged article does not count
    assert clean_flag_rate([["B-DUP"]], [["B-DUP"]]) == (0.0, 0)


def test_clean_articles_reported_in_the_tables(simulator, articles):
    from corefix.data.settings import SimulatorSettings
    from corefix.data.simulate import Simulator

    sim = Simulator(SimulatorSettings.from_dict({"mixture": {"clean": 1.0}}), nlp=simulator.nlp)
    recs = [sim.damage(i, t).to_record() for i, t in articles]
    res = score_system(recs, [["B-DUP"] + ["O"] * (len(r["tags"]) - 1) for r in recs])
    assert res["clean_articles"] == len(recs) and res["clean_flag_rate"] == 1.0
    result = evaluate(recs)
    assert f"0.0 % of {len(recs)}" in format_table(result)


def test_one_word_recall_is_reported_per_label():
    from corefix.model.evaluate import format_summary
    from corefix.model.metrics import by_span_length

    # gold: a one-word copy, a one-word substitution and a two-word copy; the model finds the copy only
    gold = [["O", "B-DUP", "O", "B-SUB", "O", "B-DUP", "I-DUP"]]
    pred = [["O", "B-DUP", "O", "O", "O", "O", "O"]]
    both, dup, sub = by_span_length(gold, pred), by_span_length(gold, pred, "DUP"), by_span_length(gold, pred, "SUB")
    assert both["1"]["recall"] == 0.5 and both["1"]["gold"] == 2
    assert dup["1"]["recall"] == 1.0 and dup["1"]["precision"] == 1.0 and dup["2"]["recall"] == 0.0
    assert sub["1"]["recall"] == 0.0 and "2" not in sub
    # over several articles every span counts, whichever label the article before ended on
    two = by_span_length([["B-SUB", "O", "B-DUP"], ["B-SUB", "O", "B-DUP"]], [["B-SUB", "O", "B-DUP"], ["O"] * 3])
    assert two["1"]["gold"] == 4 and two["1"]["predicted"] == 2 and two["1"]["recall"] == 0.5
    model = {"spans": {"micro": {"precision": 1.0, "recall": 0.33, "f1": 0.5, "f0.5": 0.7}}, "words": {"f1": 0.5},
             "first_mention_flag_rate": 0.0, "wer": 0.1, "by_span_length_label": {"DUP": dup, "SUB": sub}}
    row = format_summary({"set": {"articles": 1, "model": model, "rule_baseline": {"spans": {}},
                                  "input": {"wer": 0.2}, "oracle": {"wer": 0.0}}}).splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[7:9] == ["1.000", "0.000"]  # one-word copies R, one-word substitutions R


def _random_tags(rng, n, valid):
    """``n`` IOB2 tags of random SUB/DUP spans; with ``valid`` False, stray I- tags and label switches too."""
    tags, i = ["O"] * n, 0
    while i < n:
        if rng.random() < 0.2:
            label, width = rng.choice(["SUB", "DUP"]), rng.randint(1, 4)
            for k in range(i, min(n, i + width)):
                tags[k] = ("B-" if k == i else "I-") + label
            i += width
        i += 1
    if not valid:
        for _ in range(3):
            tags[rng.randrange(n)] = rng.choice(["I-SUB", "I-DUP"])
    return tags


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # seqeval's own macro average over no label, in the reference
def test_counted_micro_span_scores_are_seqevals_strict_figures():
    import random

    from corefix.model.metrics import _valid_iob2, micro_span_scores, span_scores

    rng = random.Random(0)
    counted = strict = 0
    for case in range(200):
        lengths = [rng.randint(0, 40) for _ in range(rng.randint(1, 6))]
        gold = [_random_tags(rng, n, valid=case % 5 != 0) if n else [] for n in lengths]
        pred = [_random_tags(rng, n, valid=case % 4 != 0) if n else [] for n in lengths]
        if case % 10 == 1:
            pred = [list(g) for g in gold]  # a perfect system
        if case % 10 == 2:
            pred = [["O"] * n for n in lengths]  # a silent one
        counted += sum(_valid_iob2(g) and _valid_iob2(p) for g, p in zip(gold, pred))
        strict += sum(not (_valid_iob2(g) and _valid_iob2(p)) for g, p in zip(gold, pred))
        assert micro_span_scores(gold, pred) == span_scores(gold, pred).get("micro", {}), case
    assert counted > 300 and strict > 50  # both ways of counting an article were taken, often
    assert micro_span_scores([["O", "I-SUB"]], [["O", "O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                                 "f0.5": 0.0, "support": 0}  # no strict span
    assert micro_span_scores([["O", "O"]], [["O", "O"]]) == {}
