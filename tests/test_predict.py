import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from corefix.cli import main
from corefix.model.predict import Restoration, Restorer
from corefix.model.render import to_html

DAMAGED = ('phoning her a Ms. Lopez about an hour after she had Ms. Lopez the vote , but the two leaders have not met . '
           '" Ghana has a Ghana in Lopez , " he said .\n Mr. Haldane President Lopez Ghana')


def run_cli(argv, capsys, stdin: bytes | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return str(tiny_model[0])


def test_library_api_round_trip(model_dir):
    r = Restorer.from_pretrained(model_dir)
    res = r.restore(DAMAGED)
    assert isinstance(res, Restoration) and res.text == DAMAGED
    for s in res.spans:
        assert set(s) >= {"start", "end", "label", "score", "replacement"}
        assert 0 <= s["score"] <= 1
    assert r.restore("").restored == "" and r.restore("  \n ").restored == "  \n "


def test_threshold_one_changes_nothing_byte_for_byte(model_dir):
    text = "  Odd   spacing\r\n and “curly” quotes\t" + DAMAGED
    r = Restorer.from_pretrained(model_dir, threshold=0.999999)
    res = r.restore(text)
    assert res.spans == [] and res.restored == text


def test_every_input_and_output_format(model_dir, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text(DAMAGED, encoding="utf-8")
    (folder / "b.txt").write_text("Mr. Okafor said he agreed .", encoding="utf-8")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"id": "j1", "text": DAMAGED}) + "\n" + json.dumps({"text": ""}) + "\n")
    code, out, err = run_cli(["predict", "--model", model_dir, "--input", str(folder / "a.txt")], capsys)
    assert code == 0 and out.strip() and "restored 1 articles" in err
    code, out, _ = run_cli(["predict", "--model", model_dir, "--input", str(folder), "--format", "jsonl"], capsys)
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["id"] for x in lines] == ["a", "b"]
    assert all(set(x) == {"id", "text", "spans", "restored", "gaps"} for x in lines)
    code, out, _ = run_cli(["predict", "--model", model_dir, "--input", str(jsonl), "--format", "jsonl"], capsys)
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and lines[0]["id"] == "j1" and lines[1]["restored"] == ""
    code, out, _ = run_cli(["predict", "--model", model_dir, "--input", "-"], capsys, DAMAGED.encode(), monkeypatch)
    assert code == 0 and out.strip()
    page = tmp_path / "out.html"
    code, _, _ = run_cli(["predict", "--model", model_dir, "--input", str(folder), "--format", "html",
                          "--output", str(page)], capsys)
    html = page.read_text(encoding="utf-8")
    assert code == 0 and html.startswith("<!doctype html>") and "Haldane" in html and "</html>" in html
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    code, _, _ = run_cli(["predict", "--model", model_dir, "--input", str(folder), "--output", str(outdir)], capsys)
    assert code == 0 and sorted(p.name for p in outdir.iterdir()) == ["a.txt", "b.txt"]


def test_long_article_across_window_seams(model_dir, tmp_path, capsys):
    long = " ".join([DAMAGED] * 60)
    f = tmp_path / "long.txt"
    f.write_text(long, encoding="utf-8")
    code, out, _ = run_cli(["predict", "--model", model_dir, "--input", str(f), "--format", "jsonl"], capsys)
    rec = json.loads(out)
    assert code == 0 and rec["text"] == long
    last = 0
    for s in rec["spans"]:
        assert s["start"] >= last
        last = s["end"]


def test_bad_inputs_give_one_line_errors(model_dir, tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text(DAMAGED, encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfa not utf-8")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02PNG")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    for inputs, fragment in [([str(bad)], "not valid UTF-8"), ([str(binary)], "binary"),
                             ([str(tmp_path / "missing.txt")], "no such file"),
                             ([str(empty_dir)], "no .txt files")]:
        code, _, err = run_cli(["predict", "--model", model_dir, "--input", *inputs], capsys)
        assert code != 0 and fragment in err and "Traceback" not in err, err
    # one bad file among good ones: reported, the rest processed, non-zero exit
    code, out, err = run_cli(["predict", "--model", model_dir, "--input", str(bad), str(good)], capsys)
    assert code == 1 and "bad.txt" in err and out.strip()


def test_a_folder_with_broken_links_and_bad_files_names_each_in_one_line(model_dir, tmp_path, capsys):
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "good.txt").write_text(DAMAGED, encoding="utf-8")
    (folder / "nested").mkdir()
    (folder / "nested" / "also-good.txt").write_text("Mr. Blair said he would go.", encoding="utf-8")
    (folder / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (folder / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02PNG")
    code, out, err = run_cli(["predict", "--model", model_dir, "--input", str(folder), "--format", "jsonl"], capsys)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    for name, fragment in (("dangling.txt", "broken link"), ("latin1.txt", "not valid UTF-8"), ("binary.txt", "binary")):
        named = [line for line in lines if name in line]
        assert len(named) == 1 and fragment in named[0], (name, err)
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ["good", "nested/also-good"]
    assert "restored 2 articles" in err and "3 inputs failed" in err


def test_a_folder_with_entries_that_cannot_be_read_names_each_in_one_line(model_dir, tmp_path, capsys, monkeypatch):
    """A file no one may read (chmod 000), a FIFO (reading it would wait forever) and a link to a folder, all
    named like articles: each named in one line, every readable article restored.

    We run as root, whom chmod 000 does not stop: the folder is then read with the effective uid of nobody
    (``os.seteuid``, for the reading only, back to root after), so the kernel itself refuses the file, as it
    does for any user; the model is loaded as root as before."""
    import os
    import tempfile

    from corefix.data import corpus

    folder = Path(tempfile.mkdtemp(prefix="corefix-unreadable-"))  # traversable by nobody (tmp_path is not)
    try:
        folder.chmod(0o755)
        (folder / "good.txt").write_text(DAMAGED, encoding="utf-8")
        (folder / "also-good.txt").write_text("Mr. Blair said he would go.", encoding="utf-8")
        secret = folder / "secret.txt"
        secret.write_text("no one may read this", encoding="utf-8")
        secret.chmod(0)
        os.mkfifo(folder / "pipe.txt")
        (folder / "sub").mkdir()
        (folder / "folder-link.txt").symlink_to(folder / "sub")
        if os.geteuid() == 0:
            read_inputs = corpus.read_inputs

            def read_as_nobody(*args, **kwargs):
                os.seteuid(65534)
                try:
                    return read_inputs(*args, **kwargs)
                finally:
                    os.seteuid(0)

            monkeypatch.setattr(corpus, "read_inputs", read_as_nobody)
        code, out, err = run_cli(["predict", "--model", model_dir, "--input", str(folder), "--format", "jsonl"],
                                 capsys)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    for name, fragment in (("secret.txt", "unreadable (Permission denied)"), ("pipe.txt", "not a regular file (a FIFO)"),
                           ("folder-link.txt", "not a regular file (a folder)")):
        named = [line for line in lines if name in line]
        assert len(named) == 1 and fragment in named[0], (name, err)
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ["also-good", "good"]
    assert "restored 2 articles" in err and "3 inputs failed" in err


def test_bad_inference_options_give_one_line_errors(model_dir, tiny_data, tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text(DAMAGED, encoding="utf-8")
    for command in ("predict", "evaluate"):
        for option, fragment in [(["--threshold", "1.5"], "--threshold"), (["--overlap", "-3"], "--overlap"),
                                 (["--overlap", "500"], "overlap must be between"), (["--batch-size", "0"], "--batch-size")]:
            where = ["--input", str(good)] if command == "predict" else ["--data", str(tiny_data / "train.jsonl")]
            code, _, err = run_cli([command, "--model", model_dir, *where, *option], capsys)
            assert code != 0 and fragment in err and "Traceback" not in err, (command, option, err)


def test_smaller_overlap_still_gives_every_word_one_decision(model_dir):
    from corefix.words import word_offsets
    from corefix.model.inference import Detector
    from corefix.model.options import InferenceOptions

    text = " ".join([DAMAGED] * 12)
    detector = Detector.load(model_dir)
    full = detector.predict([text])[0].tags(detector.policy)
    none = Detector.load(model_dir, InferenceOptions(overlap=0)).predict([text])[0]
    assert len(none.tags(detector.policy)) == len(full) == len(word_offsets(text))
    assert (none.probs.sum(-1) > 0.99).all()  # every word got probabilities from some window
    agree = sum(a == b for a, b in zip(none.tags(detector.policy), full)) / len(full)
    assert agree > 0.8


def test_bad_model_dirs(model_dir, tmp_path, capsys):
    art = tmp_path / "a.txt"
    art.write_text(DAMAGED, encoding="utf-8")
    code, _, err = run_cli(["predict", "--model", str(tmp_path / "nope"), "--input", str(art)], capsys)
    assert code == 2 and "not found" in err
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").unlink()
    code, _, err = run_cli(["predict", "--model", str(broken), "--input", str(art)], capsys)
    assert code == 2 and "model.safetensors" in err
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    code, _, err = run_cli(["predict", "--model", str(corrupt), "--input", str(art)], capsys)
    assert code == 2 and "cannot load" in err and "Traceback" not in err


def test_output_never_overwrites_an_input(model_dir, tmp_path, capsys):
    art = tmp_path / "a.txt"
    art.write_text(DAMAGED, encoding="utf-8")
    code, _, err = run_cli(["predict", "--model", model_dir, "--input", str(art), "--output", str(art)], capsys)
    assert code == 2 and "overwrite" in err
    assert art.read_text(encoding="utf-8") == DAMAGED
    code, _, err = run_cli(["predict", "--model", model_dir, "--input", str(tmp_path), "--output", str(tmp_path)], capsys)
    assert code == 2 and "overwrite" in err


def test_html_escapes_and_marks():
    rec = Restoration("x<1>", "a <b> Mr. X c", [{"start": 6, "end": 11, "label": "DUP", "score": 0.9, "replacement": ""}],
                      "a <b> c")
    page = to_html([rec])
    assert "&lt;b&gt;" in page and 'class="dup"' in page and "x&lt;1&gt;" in page


def test_a_span_never_starts_at_a_title_full_stop():
    from corefix.model.decode import keep_titles

    words = ["then", "Mr", ".", "Haldane", "state", "said", "Dr", ".", "Okafor", "."]
    tags = ["O", "O", "B-DUP", "I-DUP", "O", "O", "B-SUB", "I-SUB", "I-SUB", "O"]
    assert keep_titles(words, tags) == ["O", "B-DUP", "I-DUP", "I-DUP", "O", "O", "B-SUB", "I-SUB", "I-SUB", "O"]
    # a title split from its name joins it
    split = ["Mr", ".", "Haldane", "Lopez"]
    assert keep_titles(split, ["B-DUP", "I-DUP", "B-DUP", "B-DUP"]) == ["B-DUP", "I-DUP", "I-DUP", "B-DUP"]
    # a sentence-final stop after an ordinary word, and a flagged title itself, stay as they are
    plain = ["in", "Accra", ".", "Okafor", "left"]
    assert keep_titles(plain, ["O", "O", "B-DUP", "I-DUP", "O"]) == ["O", "O", "B-DUP", "I-DUP", "O"]


def test_viterbi_finds_the_best_valid_path():
    """Against brute force over every tag sequence of up to 4 words, with and without biases."""
    import itertools
    import math

    import numpy as np
    from corefix.model.decode import viterbi_tags
    from corefix.words import TAG2ID, TAGS, chunks

    allow_glued = [False]

    def glued(seq, i):  # a copy glued to the substitution before it: I-DUP right after a SUB tag
        return allow_glued[0] and seq[i] == "I-DUP" and i and seq[i - 1][2:] == "SUB"

    def valid(seq):
        return all(not t.startswith("I-") or (i and seq[i - 1][2:] == t[2:] and seq[i - 1] != "O") or glued(seq, i)
                   for i, t in enumerate(seq))

    def score(probs, seq, bias, split):
        return sum(math.log(max(float(probs[i][TAG2ID[t]]), 1e-12)) + (bias if t == "O" else 0.0)
                   - (split if (t.startswith("B-") and i and seq[i - 1] != "O") or glued(seq, i) else 0.0)
                   for i, t in enumerate(seq))

    rng = np.random.default_rng(0)
    glued_seen = 0
    for case in range(300):
        n = 1 + case % 4
        allow_glued[0] = case >= 150  # the second half with glued copies allowed
        probs = rng.dirichlet(np.full(len(TAGS), 0.5), size=n)
        bias = float(rng.choice([0.0, 0.8, -0.5]))
        split = float(rng.choice([0.0, 0.5, 2.0]))
        got = viterbi_tags(probs, bias, split, allow_glued[0])
        starts = sum(t.startswith("B-") for t in got) + sum(bool(glued(got, i)) for i in range(len(got)))
        assert valid(got) and len(chunks(got)) == starts
        glued_seen += any(glued(got, i) for i in range(len(got)))
        best = max(score(probs, s, bias, split) for s in itertools.product(TAGS, repeat=n) if valid(s))
        assert math.isclose(score(probs, got, bias, split), best, rel_tol=1e-9, abs_tol=1e-9)
    assert glued_seen  # the random cases reach the glued transition
    assert viterbi_tags(np.zeros((0, len(TAGS)))) == []
    # "President TrumpPresident Trump": the model's I-DUP on the last word opens a DUP chunk glued to the SUB
    probs = np.full((3, len(TAGS)), 0.01)
    for i, t in enumerate(("B-SUB", "I-SUB", "I-DUP")):
        probs[i, TAG2ID[t]] = 0.96
    assert viterbi_tags(probs, glued=True) == ["B-SUB", "I-SUB", "I-DUP"]
    assert viterbi_tags(probs) != ["B-SUB", "I-SUB", "I-DUP"]  # without, the copy cannot start there
    assert chunks(["B-SUB", "I-SUB", "I-DUP"]) == [("SUB", 0, 2), ("DUP", 2, 3)]


def test_evaluate_several_files_and_real_quotes(model_dir, tiny_data, tmp_path, capsys):
    quotes = tmp_path / "page.md"
    quotes.write_text("# Damage\n\n> " + DAMAGED + "\n\nprose\n\n> Then Ana Lopez met Ben Okafor . Ben Okafor said .\n")
    data = [str(tiny_data / "validation.jsonl"), str(tiny_data / "test.jsonl")]
    code, out, err = run_cli(["evaluate", "--model", model_dir, "--data", *data, "--quotes", str(quotes),
                              "--out", str(tmp_path / "eval")], capsys)
    assert code == 0, err
    assert "2 quotes, first mentions flagged" in out and "| data | articles |" in out
    sub = sorted(p.name for p in (tmp_path / "eval").iterdir())
    assert len([s for s in sub if (tmp_path / "eval" / s / "metrics.json").is_file()]) == 2
    assert (tmp_path / "eval" / "summary.md").read_text().count("\n") == 4
    code, out, err = run_cli(["evaluate", "--model", model_dir, "--data", data[1], "--article-gate", "0.9",
                              "--gate-density", "0.5", "--out", str(tmp_path / "gated")], capsys)
    assert code == 0, err  # the policy that made the figures is recorded beside them
    metrics = json.loads((tmp_path / "gated").read_text())["model"]  # one data file: --out is the metrics file
    assert (metrics["article_gate"], metrics["gate_density"]) == (0.9, 0.5)
    code, _, err = run_cli(["evaluate", "--model", model_dir], capsys)
    assert code == 2 and "--data" in err


def test_a_word_the_tokenizer_drops_is_kept_not_nan(model_dir):
    """A soft hyphen or zero-width space is a word to the word split but no piece to the tokenizer."""
    import numpy as np

    from corefix.model.inference import Detector

    p = Detector.load(model_dir).predict(["Mr. Blair \u00ad said \u200b he would go ."])[0]
    assert not np.isnan(p.probs).any()
    assert p.probs[p.words.index("\u00ad")].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
