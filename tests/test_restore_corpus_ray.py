"""The ray engine of restore-corpus: per record exactly the local engine's output; bad records reported, never fatal.

The tests that run Ray are skipped when it is not installed (CI installs the ``ray`` extra); the reading
stage and the install hint are tested without it.
"""
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from corefix.cli import main
from corefix.model.options import InferenceOptions
from corefix.model.restore_corpus import CorpusJob, iter_shards, restore_corpus
from corefix.data.corpus import list_input
from corefix.model.restore_corpus_ray import RayOptions, iter_input_records

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


def _files(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name.startswith("shard-")}


def _records(files, job):
    return list(iter_input_records(job, files))


def test_the_reading_stage_gives_the_local_engines_records(corpus, tmp_path):
    """Without Ray: records, ids of id-less records and failure messages as the local engine reads them."""
    folder = tmp_path / "txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(TEXT, encoding="utf-8")
    (folder / "sub" / "b.txt").write_bytes(b"\xff\xfe not utf-8")
    (folder / "c.txt").write_bytes(b"bin\x00ary")
    (folder / "d-link.txt").symlink_to(tmp_path / "gone.txt")  # a broken link, a FIFO, a link to a folder
    os.mkfifo(folder / "e.txt")
    (folder / "f.txt").symlink_to(folder / "sub")
    (folder / "a-b").mkdir()  # names that sort differently as paths and as strings ("a-b/" < "a.txt" < "a/")
    (folder / "a-b" / "g.txt").write_text(OTHER, encoding="utf-8")
    table = tmp_path / "corpus.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": TEXT, "n": 1}, {"text": None, "n": 2}, {"text": OTHER, "n": 3}]),
                   table)
    long = tmp_path / "long.jsonl"
    long.write_text("\n".join(json.dumps({"id": f"l{n}", "text": "word " * n}) for n in (10, 30, 10)), encoding="utf-8")
    for source in (corpus, folder, table, long):
        job = CorpusJob("unused", str(source), str(tmp_path / "out"), shard_size=5, max_chars=100)
        expected = [r for _, shard in iter_shards(job) for r in shard]
        assert _records(list_input(str(source)), job) == expected, source
    job = CorpusJob("unused", str(folder), str(tmp_path / "out"), shard_size=5)
    problems = [r["__problem__"] for r in _records(list_input(str(folder)), job) if "__problem__" in r]
    assert [p.split(": ", 1)[1] for p in problems] == [  # c, d-link, e, f, sub/b: each named, in name order
        "binary file, not text", f"broken link (to {tmp_path / 'gone.txt'})", "not a regular file (a FIFO)",
        "not a regular file (a folder)", "not valid UTF-8 (invalid start byte at byte 0)"]
    job = CorpusJob("unused", str(long), str(tmp_path / "out"), shard_size=5, max_chars=100)
    assert [r.get("id") or r["__problem__"] for r in _records(list_input(str(long)), job)] == [
        "l10", f"{long}:2: text of 150 characters, over the limit of 100 (--max-chars): not restored", "l10"]
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
def test_ray_writes_the_local_engines_shards_byte_for_byte(local_ray, tiny_model, corpus, tmp_path):
    from corefix.model.restore_corpus_ray import restore_corpus_ray

    from corefix.model.inference import Detector

    # a threshold at the median of the tiny model's P(inserted): it flags about half the words (a lower one
    # flags every word of an article, and an article is never restored to nothing)
    scores = np.concatenate([1 - p.probs[:, 0] for p in Detector.load(tiny_model[0]).predict([TEXT, OTHER])])
    job = {"model": str(tiny_model[0]), "input": str(corpus), "shard_size": 3,
           "options": InferenceOptions(threshold=float(np.median(scores)))}
    local = restore_corpus(CorpusJob(output=str(tmp_path / "local"), **job), progress=False)
    ray = restore_corpus_ray(CorpusJob(output=str(tmp_path / "ray"), **job),
                             RayOptions(num_actors=2, cpus_per_actor=0.5), progress=False)
    expected, got = _rows(tmp_path / "local", "jsonl"), _rows(tmp_path / "ray", "jsonl")
    assert len(got) == 12 and "doc-000004" in got
    assert got == expected  # every column of every record, the restored text and spans included
    assert any(r["spans"] for r in got.values())  # the comparison covers real spans
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")  # the same shards, the same bytes
    for k in ("shards", "articles", "words", "removed", "replaced", "undamaged", "removed_per_100_words",
              "replaced_per_100_words", "failures"):
        assert ray[k] == local[k], k
    assert len(ray["failures"]) == 2 and ":7: invalid JSON" in ray["failures"][0]["record"]  # in input order
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
    with pytest.raises(SystemExit):  # other shards into the same folder would mix two jobs' files
        main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out),
              "--engine", "ray"])
    assert "shard_size differ" in capsys.readouterr().err
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith("shard-")}
    main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out),
          "--engine", "ray", "--shard-size", "3", "--format", "parquet"])  # the same job: finished, nothing redone
    assert json.loads(capsys.readouterr().out)["articles"] == 12
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith("shard-")} == before


# ---------------------------------------------------------------- killed runs, through the CLI as a user runs it

RESUME_TEXTS = [TEXT, OTHER, "Mr. Blair said he would go."]


@pytest.fixture(scope="module")
def resume_corpus(tmp_path_factory):
    """120 lines, 3 bad ones (truncated JSON, no text field, invalid UTF-8) and a duplicate id: 117 articles."""
    lines = [json.dumps({"id": f"r{i}", "text": RESUME_TEXTS[i % 3], "n": i}).encode() for i in range(120)]
    lines[5], lines[22], lines[31] = b'{"id": "cut", "text": "trunc', b'{"id": "nt"}', b'{"id": "u", "text": "caf\xe9"}'
    lines[12] = json.dumps({"id": "r3", "text": OTHER, "n": 12}).encode()  # an id twice: two records, both kept
    src = tmp_path_factory.mktemp("resume") / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    return src


@pytest.fixture(scope="module")
def reference(tiny_model, resume_corpus):
    """The shards of one uninterrupted run (the local engine's: equal to the Ray engine's, tested above)."""
    out = resume_corpus.parent / "reference"
    restore_corpus(CorpusJob(str(tiny_model[0]), str(resume_corpus), str(out), shard_size=3), progress=False)
    return out


def _cli(model, src, out, actors):
    return [sys.executable, "-m", "corefix.cli", "restore-corpus", "--model", str(model), "--input", str(src),
            "--output", str(out), "--shard-size", "3", "--engine", "ray", "--num-actors", str(actors)]


def _env(**extra):
    import corefix

    src = str(Path(corefix.__file__).resolve().parents[1])  # this checkout, for the driver and Ray's workers
    return {**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


def _reap(proc):
    """SIGKILL what is left of a run started in its own session (Ray's helpers outlive a killed driver a while)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _check_resumed(out, reference, src):
    """The shards of ``out`` are those of the uninterrupted ``reference``; every record once; exact counts."""
    assert _files(out) == _files(reference)
    rows = [json.loads(line) for name, data in _files(out).items() if name.endswith(".jsonl")
            for line in data.decode().split("\n") if line]
    assert sorted(r["n"] for r in rows) == [i for i in range(120) if i not in (5, 22, 31)]  # none lost, none twice
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["articles"], summary["shards"]) == (117, 40)
    assert [f["record"].split(": ")[0] for f in summary["failures"]] == [f"{src}:{n}" for n in (6, 23, 32)]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@needs_ray
@pytest.mark.slow
def test_kill_9_of_the_ray_driver_then_rerun_gives_the_uninterrupted_output(tiny_model, resume_corpus, reference,
                                                                            tmp_path):
    """kill -9 of the driver once a random number of shards is written (plus a random instant), then the same
    command again: the shards of one uninterrupted run."""
    seed = random.randrange(1 << 30)
    print(f"random seed {seed}")  # shown if the test fails
    out, rng = tmp_path / "out", random.Random(seed)
    proc = subprocess.Popen(_cli(tiny_model[0], resume_corpus, out, 1), env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wanted, deadline = rng.randint(1, 25), time.monotonic() + 120
        while (len(list(out.glob("shard-*.stats.json"))) < wanted and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        assert proc.poll() is None, "the run ended before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        _reap(proc)
    # the driver was alive when killed (asserted above); with every shard already written it was writing the
    # summary or shutting Ray down, also a kill point the rerun must survive
    done = subprocess.run(_cli(tiny_model[0], resume_corpus, out, 1), env=_env(), start_new_session=True,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _check_resumed(out, reference, resume_corpus)


@needs_ray
@pytest.mark.slow
def test_an_actor_killed_mid_shard_is_retried_and_counted_once(tiny_model, resume_corpus, reference, tmp_path):
    """The test hook makes the first actor to restore a shard die before sending it back (os._exit), once: Ray
    restarts it and retries the shard it held and the one waiting for it; every record is written once, counted
    once, failures in input order. (One actor: the cheapest start-up on 2 cores.)"""
    marker, out = tmp_path / "actor-died", tmp_path / "out"
    env = _env(COREFIX_TEST_ACTOR_EXIT_ONCE=str(marker))
    done = subprocess.run(_cli(tiny_model[0], resume_corpus, out, 1), env=env, start_new_session=True,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert marker.exists()  # an actor did die
    _check_resumed(out, reference, resume_corpus)


@needs_ray
def test_a_full_disk_stops_the_ray_engine_with_one_line_and_a_rerun_completes(local_ray, tiny_model, corpus, tmp_path,
                                                                              monkeypatch, capsys):
    from corefix.model import shards
    from tests.test_restore_corpus import _FailingOpen

    out = tmp_path / "out"
    command = ["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out),
               "--shard-size", "3", "--engine", "ray", "--num-actors", "1", "--cpus-per-actor", "0.5"]
    monkeypatch.setattr(shards, "open", _FailingOpen(2, "disk full"), raising=False)
    with pytest.raises(SystemExit):
        main(command)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and f"cannot write to {out}: No space left on device" in errors[0], err
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert all(p.with_suffix(".stats.json").exists() for p in out.glob("shard-*.jsonl"))  # none only looks done
    monkeypatch.undo()
    main(command)
    assert json.loads(capsys.readouterr().out)["articles"] == 12
    assert sorted(_rows(out, "jsonl")) == sorted([f"n{i}" for i in range(12) if i != 4] + ["doc-000004"])
