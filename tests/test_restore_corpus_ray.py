"""The ray engine of restore-corpus: per record exactly the local engine's output; bad records reported, never fatal.

The tests that run Ray are skipped when it is not installed (CI installs the ``ray`` extra); the reading
stage and the install hint are tested without it.
"""
import json
import pickle
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from corefix.cli import main
from corefix.model.options import InferenceOptions
from corefix.model.restore_corpus import CorpusJob, iter_shards, restore_corpus
from corefix.data.corpus import list_input
from corefix.model.restore_corpus_ray import RayOptions, parse_file

needs_ray = pytest.mark.skipif(find_spec("ray") is None,
                               reason='Ray is not installed (pip install -e ".[ray]" runs these tests)')

TEXT = ('phoning her a Ms. Lopez about an hour after she had Ms. Lopez the vote , but the two leaders have not met . '
        '" Ghana has a Ghana in Lopez , " he said .\n Mr. Haldane President Lopez Ghana')
OTHER = ("Ana Lopez sold her car to Ben Smith. Ana Lopez said Ben Smith paid well.\u2028Ben Smith later said "
         "that Ana Lopez was a fair trader and that Ben Smith would buy from Ana Lopez again.")


def _lines(bad: bool = True) -> list[bytes]:
    """12 records (one id-less, one empty) with, when ``bad``, 2 unreadable ones in the middle."""
    out = []
    for i in range(12):
        rec = {"id": f"n{i}", "text": [TEXT, OTHER, ""][i % 3] if i != 7 else OTHER[:40], "source": "wire",
               "year": 2000 + i}
        if i == 4:
            del rec["id"]
        out.append(json.dumps(rec, ensure_ascii=False).encode("utf-8"))
        if bad and i == 5:
            out += [b"{broken json", json.dumps({"id": "nt", "text": 42, "source": "wire", "year": 1}).encode()]
    return out


@pytest.fixture()
def corpus(tmp_path):
    f = tmp_path / "corpus.jsonl"
    f.write_bytes(b"\n".join(_lines()) + b"\r\n")
    return f


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module, started as the engine starts one; stopped at the end."""
    from corefix.model.restore_corpus_ray import start_ray

    ray = pytest.importorskip("ray")
    started = start_ray(RayOptions(num_actors=2, cpus_per_actor=0.5))
    yield ray
    if started:
        ray.shutdown()


def _rows(out, fmt):
    if fmt == "jsonl":
        rows = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text("utf-8").split("\n") if line]
    else:
        import pyarrow.parquet as pq

        rows = [r for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return {r["id"]: r for r in rows}


def _records(files, job):
    rows = [parse_file({"path": path, "bytes": Path(path).read_bytes()}, job, files) for path in files.paths]
    return [pickle.loads(r["record"]) for file_rows in rows for r in file_rows]


def test_the_reading_stage_gives_the_local_engines_records(corpus, tmp_path):
    """Without Ray: records, ids of id-less records and failure messages as the local engine reads them."""
    folder = tmp_path / "txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(TEXT, encoding="utf-8")
    (folder / "sub" / "b.txt").write_bytes(b"\xff\xfe not utf-8")
    (folder / "c.txt").write_bytes(b"bin\x00ary")
    table = tmp_path / "corpus.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": TEXT, "n": 1}, {"text": None, "n": 2}, {"text": OTHER, "n": 3}]),
                   table)
    for source in (corpus, folder, table):
        job = CorpusJob("unused", str(source), str(tmp_path / "out"), shard_size=5)
        expected = [r for _, shard in iter_shards(job) for r in shard]
        assert _records(list_input(str(source)), job) == expected, source
    assert list_input(str(folder)).kind == "txt" and list_input(str(table)).kind == "parquet"


def test_without_ray_the_engine_says_how_to_install_it(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where it is not installed
    with pytest.raises(SystemExit) as exit:
        main(["restore-corpus", "--model", str(tmp_path / "model"), "--input", str(corpus),
              "--output", str(tmp_path / "out"), "--engine", "ray"])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[ray]"' in err


@needs_ray
def test_ray_gives_per_record_exactly_the_local_engines_output(local_ray, tiny_model, corpus, tmp_path):
    from corefix.model.restore_corpus_ray import restore_corpus_ray

    job = {"model": str(tiny_model[0]), "input": str(corpus), "shard_size": 3,
           "options": InferenceOptions(threshold=0.1)}  # low enough for the tiny model to find spans
    local = restore_corpus(CorpusJob(output=str(tmp_path / "local"), **job), progress=False)
    ray = restore_corpus_ray(CorpusJob(output=str(tmp_path / "ray"), **job),
                             RayOptions(num_actors=2, cpus_per_actor=0.5), progress=False)
    expected, got = _rows(tmp_path / "local", "jsonl"), _rows(tmp_path / "ray", "jsonl")
    assert len(got) == 12 and "doc-000004" in got
    assert got == expected  # every column of every record, the restored text and spans included
    assert any(r["spans"] for r in got.values())  # the comparison covers real spans
    for k in ("articles", "words", "removed", "replaced", "undamaged", "removed_per_100_words",
              "replaced_per_100_words"):
        assert ray[k] == local[k], k
    assert sorted(map(str, ray["failures"])) == sorted(map(str, local["failures"])) and len(ray["failures"]) == 2
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["articles"] == 12


@needs_ray
def test_bad_records_mid_run_are_reported_and_the_good_ones_written(local_ray, tiny_model, tmp_path, capsys):
    lines = _lines()
    lines.insert(9, b'{"id": "bad-utf8", "text": "caf\xe9"}')  # Latin-1 in a UTF-8 file: only this line is lost
    corpus = tmp_path / "bad.jsonl"
    corpus.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out),
          "--engine", "ray", "--num-actors", "2", "--cpus-per-actor", "0.5", "--shard-size", "3",
          "--format", "parquet"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["articles"] == 12
    rows = _rows(out, "parquet")
    assert sorted(rows) == sorted([f"n{i}" for i in range(12) if i != 4] + ["doc-000004"])
    assert all(set(r) == {"id", "text", "source", "year", "restored", "spans", "gaps"} for r in rows.values())
    failed = [line for line in captured.err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 3
    assert any(":7: invalid JSON" in f for f in failed) and any("no string field 'text'" in f for f in failed)
    assert any(":10: not valid UTF-8" in f for f in failed)
    with pytest.raises(SystemExit):  # a second run into the same folder would mix two runs' files
        main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out),
              "--engine", "ray"])
    assert "not empty" in capsys.readouterr().err
