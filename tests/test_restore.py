from hypothesis import given, settings
from hypothesis import strategies as st

from corefix.words import word_offsets
from corefix.model.restore import apply_spans, choose_pronoun, restore_text


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


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="abc ,.\n\t\"", min_size=0, max_size=60), st.data())
def test_property_only_spans_and_their_seams_change(text, data):
    offsets = word_offsets(text)
    chosen = sorted(set(data.draw(st.lists(st.integers(0, max(len(offsets) - 1, 0)), max_size=5)))) if offsets else []
    spans = [{"start": offsets[i][0], "end": offsets[i][1], "label": data.draw(st.sampled_from(["DUP", "SUB"]))}
             for i in chosen]
    out, with_repl = restore_text(text, spans)
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
