import json

import pytest

from corefix.data.corpus import CorpusError, LoadReport, _looks_like_hub_id, iter_corpus, load_corpus


def test_jsonl_skips_empty_and_malformed(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": "a", "text": "One article."}),
        "{not json",
        json.dumps({"id": "b", "text": "   "}),
        json.dumps(["a list"]),
        json.dumps({"id": "c", "body": "no text field"}),
        json.dumps({"text": "No id here."}),
    ]), encoding="utf-8")
    arts, report = load_corpus(f)
    assert [a.id for a in arts] == ["a", "doc-000005"]
    assert report.loaded == 2 and report.skipped_empty == 1 and report.skipped_malformed == 3
    assert "loaded 2 articles" in report.summary()


def test_txt_folder_keeps_text_exactly_and_reports_bad_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "one.txt").write_bytes(b"Line one\r\nLine two  \n")
    (tmp_path / "sub" / "two.txt").write_text("Second.", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe bad bytes")
    (tmp_path / "bin.txt").write_bytes(b"abc\x00def")
    seen = []
    report = LoadReport(listener=seen.append)
    arts = list(iter_corpus(tmp_path, report=report))
    assert {a.id: a.text for a in arts} == {"one": "Line one\r\nLine two  \n", "sub/two": "Second."}
    assert report.skipped_malformed == 2 and len(seen) == 2
    assert any("bin.txt" in s and "binary" in s for s in seen)


def test_csv_via_datasets(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("id,text\n1,First text.\n2,\n3,Third text.\n", encoding="utf-8")
    arts, report = load_corpus(f)
    assert [a.text for a in arts] == ["First text.", "Third text."]
    assert report.skipped_empty == 1


def test_errors_and_hub_ids(tmp_path):
    with pytest.raises(CorpusError):
        load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError):
        load_corpus(tmp_path)  # folder with no .txt
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(CorpusError):
        load_corpus(tmp_path / "x.docx")
    assert _looks_like_hub_id("cnn_dailymail") and _looks_like_hub_id("user/news")
    assert not _looks_like_hub_id("a/b/c") and not _looks_like_hub_id("news.jsonl")
