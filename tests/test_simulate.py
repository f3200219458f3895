import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corefix.words import spans_to_tags, tags_to_spans, word_offsets
from corefix.data.settings import SimulatorSettings
from corefix.data.simulate import DATELINES, Simulator, undo

CORRUPTION_STYLE = (
    "ACCRA  —  President Kwame K. Okafor of Ghana and Maria J. Lopez agreed on Friday to review "
    "what they see as the poor state of trade. Mr. Okafor sent her a letter after she had won the "
    "vote, but the two leaders have not met. Mr. Haldane said Ghana has a friend in Lopez. "
) * 3


def check_record(d):
    """The invariants every damaged document must satisfy."""
    assert undo(d.text, d.spans) == d.original
    last = 0
    for s in sorted(d.spans, key=lambda s: s["start"]):
        assert s["start"] >= last and s["end"] > s["start"]
        assert s["label"] in ("SUB", "DUP")
        assert d.text[s["start"]:s["end"]].strip()
        last = s["end"]
    rec = d.to_record()
    assert len(rec["words"]) == len(rec["tags"])
    offsets = word_offsets(d.text)
    # every word inside a gold span is tagged, every other word is O
    for (ws, we), tag in zip(offsets, rec["tags"]):
        inside = any(s["start"] < we and ws < s["end"] for s in d.spans)
        assert (tag != "O") == inside
    # the tags give back one chunk per span (spans never share a word here)
    assert len(tags_to_spans(offsets, rec["tags"])) <= len(d.spans)
    return rec


def test_round_trip_on_hand_written_articles(simulator, articles):
    for art_id, text in articles:
        for k in range(5):
            check_record(simulator.damage(art_id, text, sample=k))


def test_deterministic_for_a_seed(articles):
    a = Simulator(SimulatorSettings(seed=3))
    b = Simulator(SimulatorSettings(seed=3), nlp=a.nlp)
    c = Simulator(SimulatorSettings(seed=4), nlp=a.nlp)
    art_id, text = articles[0]
    outs = [s.damage(art_id, text).text for s in (a, b)]
    assert outs[0] == outs[1]
    assert any(c.damage(art_id, text, sample=k).text != outs[0] for k in range(5))


def _forced(**profile):
    return SimulatorSettings.from_dict({"profiles": {"seed": profile}})


def test_drift_makes_misplaced_copies_that_overwrite_words(simulator):
    settings = _forced(drift={"punct": 1.0, "max": 2}, replace={"pronoun": 1.0, "name": 1.0},
                       tail={"prob": 0.0}, surface={"dateline": 0.0})
    sim = Simulator(settings, nlp=simulator.nlp)
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    dups = [s for s in d.spans if s["label"] == "DUP"]
    assert dups, "drift must produce misplaced copies"
    # a copy overwrites words, unless it overflowed past the end (then it and all after it form the tail)
    for k, s in enumerate(d.spans):
        if s["label"] == "DUP" and not s["overwritten"]:
            assert all(t["overwritten"] == "" for t in d.spans[k:])
    # overwritten text is never longer than the longest mention (1-3 words)
    assert max(len(s["overwritten"].split()) for s in dups) <= 4
    # without drift every rewrite lands in place
    sim = Simulator(_forced(drift={"enabled": False}, replace={"pronoun": 1.0, "name": 1.0},
                            tail={"prob": 0.0}, surface={"dateline": 0.0}), nlp=simulator.nlp)
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    assert d.spans and {s["label"] for s in d.spans} == {"SUB"}


def test_overflow_tail_is_appended_after_the_text(simulator):
    sim = Simulator(_forced(tail={"prob": 1.0, "min_words": 1, "min_mentions": 2, "max_mentions": 2},
                            surface={"dateline": 0.0}), nlp=simulator.nlp)
    d = sim.damage("x", CORRUPTION_STYLE)
    check_record(d)
    tail = d.spans[-2:]
    assert all(s["label"] == "DUP" and s["overwritten"] == "" for s in tail)
    assert d.text[tail[0]["start"]:].startswith("\n ") and tail[-1]["end"] == len(d.text)


def test_tokenized_style_splits_punctuation_and_leaves_space_runs(simulator):
    sim = Simulator(_forced(surface={"tokenized": 1.0, "drop_hyphenated": 1.0, "dateline": 0.0}), nlp=simulator.nlp)
    d = sim.damage("x", "The high-speed link opened. \"It works,\" he said.")
    assert "link opened ." in d.original
    assert '" It works , " he said .' in d.original
    assert re.search(r"The {3,}link", d.original), d.original


def test_raw_style_keeps_prose(simulator):
    sim = Simulator(_forced(surface={"tokenized": 0.0, "dateline": 0.0}), nlp=simulator.nlp)
    text = "The high-speed link opened. \"It works,\" he said."
    assert sim.damage("x", text).original == text


def test_us_style_titles_are_part_of_the_copies(simulator):
    text = "Mr Okafor met Dr Haldane in the US on Friday. Mr Okafor said he liked the US. Dr Haldane agreed with him."
    us = Simulator(_forced(surface={"tokenized": 0.0, "dateline": 0.0, "title_periods": 1.0},
                           replace={"pronoun": 1.0}), nlp=simulator.nlp)
    d = us.damage("x", text)
    check_record(d)
    assert d.original == text.replace("Mr ", "Mr. ").replace("Dr ", "Dr. ").replace("US", "U.S.")
    copies = [d.text[s["start"]:s["end"]] for s in d.spans]
    assert copies and all(c.startswith(("Mr. ", "Dr. ")) for c in copies if c.startswith(("Mr", "Dr"))), copies
    uk = Simulator(_forced(surface={"tokenized": 0.0, "dateline": 0.0, "title_periods": 0.0}), nlp=simulator.nlp)
    assert uk.damage("x", text).original == text


def test_resolver_variants(simulator, articles):
    settings = SimulatorSettings.from_dict({
        "mixture": {"resolvers": 1.0},
        "profiles": {"resolvers": {"variants": {"possessive_s": 1.0, "glued_double": 1.0},
                                   "replace": {"pronoun": 1.0},
                                   "representative": {"pronoun": 0.0, "split_antecedent": 0.0}}},
    })
    sim = Simulator(settings, nlp=simulator.nlp)
    found_possessive = found_glued = False
    for art_id, text in articles:
        for k in range(3):
            d = sim.damage(art_id, text, sample=k)
            check_record(d)
            for s in d.spans:
                span = d.text[s["start"]:s["end"]]
                if s["label"] == "SUB" and s["overwritten"].lower() in ("his", "her", "its", "their"):
                    found_possessive |= span.endswith(("'s", "'"))
                if s["label"] == "DUP" and s["overwritten"] == "" and s["start"] > 0 and not d.text[s["start"] - 1].isspace():
                    found_glued = True
    assert found_possessive and found_glued


@pytest.mark.parametrize("text", [
    "", "   ", "Hello", "Nothing to see here, no names at all.",
    "Zoë Müller-Lüdenscheidt said she liked Ürümqi. She said it twice — «vraiment».",
    "中文新闻 没有 实体 。 Mr. Wang said he agreed.",
])
def test_bad_or_odd_input_never_crashes_or_loses_text(simulator, text):
    for k in range(3):
        d = simulator.damage("odd", text, sample=k)
        assert undo(d.text, d.spans) == d.original
        # the clean text keeps the input's characters in order (a dateline may lead; the
        # tokenized style drops hyphenated words and adds spaces), and nothing else
        kept = iter("".join(text.split()))
        body = "".join(d.original.split())
        for prefix in ["", *["".join(c.split()) + "—" for c in DATELINES]]:
            if body.startswith(prefix):
                rest = body[len(prefix):]
        assert all(ch in kept for ch in rest), (text, d.original)


def test_very_long_article(simulator, articles):
    text = " ".join(t for _, t in articles) * 40  # about 5,000 words
    d = simulator.damage("long", text)
    check_record(d)
    assert len(d.spans) > 50


WORDS = ["Mr.", "Okafor", "Ana", "Lopez", "he", "she", "his", "her", "they", "it", "its", "the", "firm",
         "said", "Accra", "Ghana", ",", ".", "and", "two", "men", "high-speed", "\n\n", "\"", "met"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(WORDS), min_size=0, max_size=60), st.integers(0, 3))
def test_property_round_trip_and_tag_consistency(simulator, words, sample):
    text = " ".join(words)
    d = simulator.damage("prop", text, sample=sample)
    check_record(d)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab .,\n'", min_size=0, max_size=40), st.data())
def test_property_tags_and_spans_agree(text, data):
    offsets = word_offsets(text)
    # random non-overlapping spans on word boundaries
    picks = sorted(set(data.draw(st.lists(st.integers(0, max(len(offsets) - 1, 0)), max_size=6)))) if offsets else []
    spans, last = [], -1
    for i in picks:
        if i <= last:
            continue
        j = min(i + data.draw(st.integers(0, 2)), len(offsets) - 1)
        spans.append({"start": offsets[i][0], "end": offsets[j][1], "label": data.draw(st.sampled_from(["SUB", "DUP"]))})
        last = j + 1  # leave a gap so adjacent spans stay distinct chunks
    tags = spans_to_tags(offsets, spans)
    assert [(s["start"], s["end"], s["label"]) for s in tags_to_spans(offsets, tags)] == \
        [(s["start"], s["end"], s["label"]) for s in spans]


def test_representatives_longest_shortest_or_first(articles):
    """Resolvers pick the longest name, the shortest (a bare surname) or the first mention."""
    def copies(longest, shortest):
        sim = Simulator(SimulatorSettings.from_dict(
            {"profiles": {"seed": {"representative": {"longest": longest, "shortest": shortest, "overlong": 0.0},
                                   "surface": {"dateline": 0.0}}}}))
        out = set()
        for k in range(8):
            d = sim.damage("a1", articles[0][1], sample=k)
            out |= {d.text[s["start"]:s["end"]].strip() for s in d.spans}
        return out

    assert "Tony Blair" not in copies(0.0, 1.0) and "Blair" in copies(0.0, 1.0)
    assert "Prime Minister Tony Blair" in copies(1.0, 0.0) and "Blair" not in copies(1.0, 0.0)


def test_an_articles_own_dateline_opens_it(articles):
    sim = Simulator(SimulatorSettings.from_dict({"profiles": {"seed": {"surface": {"dateline": 1.0}}}}))
    d = sim.damage("a1", articles[0][1], dateline="WASHINGTON (Reuters) -")
    assert d.original.startswith("WASHINGTON ( Reuters ) - Prime") or d.original.startswith("WASHINGTON (Reuters) - Prime")
    assert undo(d.text, d.spans) == d.original
    made_up = sim.damage("a1", articles[0][1])
    assert made_up.original.split()[0] in DATELINES or made_up.original.startswith("NEW YORK")
