from hypothesis import given, settings
from hypothesis import strategies as st

from corefix.words import word_offsets
from corefix.model.pronouns import choose_pronoun
from corefix.model.restore import GAP_MARK, apply_spans, gap_text, left_gap, restore_text


def _span(text, frag, label, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(frag, start + 1)
    return {"start": start, "end": start + len(frag), "label": label}


def test_dup_deleted_with_tidy_seams():
    t = "phoning her a Ms. Lopez about an hour"
    assert restore_text(t, [_span(t, "Ms. Lopez", "DUP")])[0] == "phoning her a about an hour"
    t = "he said .\n Mr. Haldane President Lopez"
    spans = [_span(t, "Mr. Haldane", "DUP"), _span(t, "President Lopez", "DUP")]
    assert restore_text(t, spans)[0] == "he said ."
    t = "Pernod said Paris was, the firm said."
    assert restore_text(t, [_span(t, "Paris", "DUP")])[0] == "Pernod said was, the firm said."
    t = "the old planthe old plan worked"
    assert restore_text(t, [{"start": 12, "end": 24, "label": "DUP"}])[0] == "the old plan worked"


def test_sub_gets_the_pronoun_that_fits():
    cases = [
        ("agreeing to review what ACCRA — President Kwame K. Okafor of Ghana and Maria J. Lopez see as the poor state",
         "ACCRA — President Kwame K. Okafor of Ghana and Maria J. Lopez", "they"),
        ("Mr. Blair said that Mr. Blair would go.", "Mr. Blair", "he"),
        ("The talks , Mr. Blair said , went well for Mr. Blair .", "Mr. Blair", "him"),
        ("Ana Lopez sold Ana Lopez's car. She was glad.", "Ana Lopez's", "her"),
        ("Nestle is to raise Nestle dividend by 11 %.", "Nestle", "its"),
        ("Shares rose. Microsoft said it was fine.", "Microsoft", "It"),
    ]
    for text, frag, want in cases:
        nth = 1 if text.count(frag) > 1 else 0
        s = _span(text, frag, "SUB", nth)
        got = choose_pronoun(text, s["start"], s["end"])
        assert got == want, (text, got)


def test_no_span_means_byte_for_byte():
    t = "  Odd   spacing\r\n and “curly” quotes\t"
    assert restore_text(t, []) == (t, [])


def test_gap_modes():
    gap = {"label": "DUP", "gap": {"destroyed": 0.9, "words": "said", "score": 0.85}}
    nothing = {"label": "DUP", "gap": {"destroyed": 0.2, "words": "the", "score": 0.1}}
    assert gap_text(gap, "drop") == gap_text(nothing, "drop") == ""
    assert gap_text(gap, "mark") == GAP_MARK and gap_text(nothing, "mark") == ""
    assert gap_text(gap, "fill", 0.8) == "said" and gap_text(gap, "fill", 0.9) == ""
    assert gap_text({"label": "DUP"}, "fill", 0.0) == ""  # no gap head: dropped
    t = "he Mr. Smith the prize on Friday ."
    span = {**_span(t, "Mr. Smith", "DUP"), "gap": gap["gap"]}
    assert restore_text(t, [span], "fill", 0.8)[0] == "he said the prize on Friday ."
    assert restore_text(t, [span], "mark")[0] == "he […] the prize on Friday ."
    assert restore_text(t, [span], "drop")[0] == "he the prize on Friday ."


def test_one_function_says_whether_a_span_left_a_gap():
    gap = {"destroyed": 0.5, "words": "said", "score": 0.85}
    assert left_gap({"label": "DUP", "gap": gap})
    assert not left_gap({"label": "DUP", "gap": {**gap, "destroyed": 0.49}})
    assert not left_gap({"label": "DUP"}) and not left_gap({"label": "SUB", "pronoun": "he"})


def test_learned_pronoun_or_rules():
    t = "Shares rose. Mr. Blair said Mr. Blair would go."
    s = _span(t, "Mr. Blair", "SUB", 1)
    assert restore_text(t, [{**s, "pronoun": "he"}])[0] == "Shares rose. Mr. Blair said he would go."
    assert restore_text(t, [{**s, "pronoun": "they"}])[0] == "Shares rose. Mr. Blair said they would go."
    first = _span(t, "Mr. Blair", "SUB")
    assert restore_text(t, [{**first, "pronoun": "he"}])[0].startswith("Shares rose. He said")  # sentence start
    assert restore_text(t, [s])[0] == "Shares rose. Mr. Blair said he would go."  # no head: the rules


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="abc ,.\n\t\"", min_size=0, max_size=60), st.data())
def test_property_only_spans_and_their_seams_change(text, data):
    offsets = word_offsets(text)
    chosen = sorted(set(data.draw(st.lists(st.integers(0, max(len(offsets) - 1, 0)), max_size=5)))) if offsets else []
    gaps = data.draw(st.sampled_from(["drop", "mark", "fill"]))
    spans = []
    for i in chosen:
        label = data.draw(st.sampled_from(["DUP", "SUB"]))
        span = {"start": offsets[i][0], "end": offsets[i][1], "label": label}
        if label == "DUP" and data.draw(st.booleans()):
            span["gap"] = {"destroyed": data.draw(st.floats(0, 1)), "words": data.draw(st.sampled_from(["", "b", ", a", "."])),
                           "score": data.draw(st.floats(0, 1))}
        elif label == "SUB" and data.draw(st.booleans()):
            span["pronoun"] = data.draw(st.sampled_from(["he", "its"]))
        spans.append(span)
    out, with_repl = restore_text(text, spans, gaps, 0.5)
    for s in with_repl:  # each replacement stands where the span says
        assert out[s["at"]:s["at"] + len(s["replacement"])] == s["replacement"], (s, out)
    # rebuild the expected text: outside the spans everything is kept, whitespace
    # touching a deleted span may go, replacements stand in place of SUB spans
    pieces, prev = [], 0
    for s in with_repl:
        pieces.append(("keep", text[prev:s["start"]]))
        pieces.append(("span", s["replacement"]))
        prev = s["end"]
    pieces.append(("keep", text[prev:]))
    non_ws = "".join(p for kind, p in pieces if kind == "keep" or p).replace(" ", "").replace("\n", "").replace("\t", "")
    assert out.replace(" ", "").replace("\n", "").replace("\t", "") == non_ws
    # each kept stretch, but for whitespace at its ends, appears whole and in order
    pos = 0
    for kind, p in pieces:
        core = p.strip(" \n\t") if kind == "keep" else p
        if core:
            found = out.find(core, pos)
            assert found >= 0, (core, out)
            pos = found + len(core)
    if not spans:
        assert out == text
    assert apply_spans(text, with_repl) == out


def test_prefetched_slots_are_the_parses_of_one_slot_at_a_time():
    import re

    from corefix.model import pronouns

    text = ("Ana Lopez sold her car to Ben Smith. Ana Lopez said Ben Smith paid well. The Smiths were pleased, "
            "and Ben Smith told reporters that Ana Lopez is a fair trader.")
    slots = [(text, m.start(), m.end()) for m in re.finditer("Ana Lopez|Ben Smith|The Smiths", text)]
    pronouns._SLOTS.clear()
    one_at_a_time = [pronouns.parse_slot(*s) for s in slots]
    assert len(pronouns._SLOTS) == len(slots) and any(c is not None for c, _, _ in one_at_a_time)
    pronouns._SLOTS.clear()
    pronouns.prefetch_slots(slots + slots[:2], batch_size=3)  # repeats are parsed once
    assert len(pronouns._SLOTS) == len(slots)
    assert [pronouns._SLOTS[s] for s in slots] == one_at_a_time == [pronouns.parse_slot(*s) for s in slots]
