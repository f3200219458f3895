import contextlib
import json
import os

import pytest

from corefix.model.restore_corpus import CorpusJob, restore_corpus
from corefix.model.shards import shard_name

TEXT = ('phoning her a Ms. Lopez about an hour after she had Ms. Lopez the vote , but the two leaders have not met . '
        '" Ghana has a Ghana in Lopez , " he said .\n Mr. Haldane President Lopez Ghana')


@pytest.fixture()
def corpus(tmp_path):
    f = tmp_path / "corpus.jsonl"
    lines = []
    for i in range(11):
        lines.append(json.dumps({"id": f"n{i}", "text": TEXT if i % 3 else "", "source": "wire", "year": 2000 + i}))
        if i == 4:
            lines.append("{broken json")
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f


def shard_path(out, k, fmt):
    return out / shard_name(k, fmt)


def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.name.startswith("shard-")}


def test_shards_keep_columns_and_summarise(tiny_model, corpus, tmp_path):
    out = tmp_path / "out"
    summary = restore_corpus(CorpusJob(str(tiny_model[0]), str(corpus), str(out), shard_size=4), progress=False)
    rows = [json.loads(line) for k in range(3) for line in shard_path(out, k, "jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"n{i}" for i in range(11)]
    assert all(r["source"] == "wire" and r["year"] == 2000 + int(r["id"][1:]) for r in rows)
    assert all(set(r) == {"id", "text", "source", "year", "restored", "spans", "gaps"} for r in rows)
    assert [r["restored"] for r in rows if not r["text"]] == [""] * 4
    assert summary["articles"] == 11 and len(summary["failures"]) == 1
    assert "invalid JSON" in summary["failures"][0]["record"]
    assert json.loads((out / "summary.json").read_text())["articles"] == 11


def test_resume_after_a_kill_gives_identical_output(tiny_model, corpus, tmp_path):
    job = dict(model=str(tiny_model[0]), input=str(corpus), shard_size=3)
    full = tmp_path / "full"
    restore_corpus(CorpusJob(output=str(full), **job), progress=False)
    killed = tmp_path / "killed"
    restore_corpus(CorpusJob(output=str(killed), **job), progress=False)
    # what a kill leaves: later shards missing, one shard written without its stats, a half-written temp file
    for k in (2, 3):
        shard_path(killed, k, "jsonl").unlink()
        shard_path(killed, k, "jsonl").with_suffix(".stats.json").unlink()
    shard_path(killed, 1, "jsonl").with_suffix(".stats.json").unlink()
    (killed / "shard-00002.jsonl.tmp").write_text('{"id": "half', encoding="utf-8")
    summary = restore_corpus(CorpusJob(output=str(killed), **job), progress=False)
    assert _files(killed) == _files(full)
    assert summary["articles"] == 11


def test_parquet_output_and_two_workers_match_one(tiny_model, corpus, tmp_path):
    import pyarrow.parquet as pq

    one, two = tmp_path / "one", tmp_path / "two"
    restore_corpus(CorpusJob(str(tiny_model[0]), str(corpus), str(one), shard_size=4, format="parquet"), progress=False)
    restore_corpus(CorpusJob(str(tiny_model[0]), str(corpus), str(two), shard_size=4, format="parquet", num_workers=2),
                   progress=False)
    t1 = [pq.read_table(shard_path(one, k, "parquet")).to_pylist() for k in range(3)]
    t2 = [pq.read_table(shard_path(two, k, "parquet")).to_pylist() for k in range(3)]
    assert t1 == t2 and t1[0][0]["source"] == "wire"


def test_bad_jobs(tiny_model, corpus, tmp_path):
    with pytest.raises(ValueError):
        restore_corpus(CorpusJob(str(tiny_model[0]), str(corpus), str(tmp_path / "o"), format="xml"))
    with pytest.raises(ValueError, match="not found"):
        restore_corpus(CorpusJob(str(tmp_path / "nomodel"), str(corpus), str(tmp_path / "o")))


def _without_nulls(value):
    """``value`` with every None dropped (Parquet gives null for a key a record does not carry)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def test_parquet_and_jsonl_outputs_carry_the_same_records(tiny_model, corpus, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from corefix.model.inference import WordPredictions
    from corefix.model.options import RestoreOptions

    def spans(self, policy):  # both labels, so the heads add pronouns and gaps (the tiny model flags too little)
        found = []
        for frag, label in (("Ms. Lopez", "DUP"), ("Ghana", "SUB"), ("Mr. Haldane", "DUP")):
            start = TEXT.index(frag)
            found.append({"start": start, "end": start + len(frag), "label": label, "score": 0.9})
        return found

    monkeypatch.setattr(WordPredictions, "spans", spans)
    out = {}
    for fmt in ("jsonl", "parquet"):
        restore_corpus(CorpusJob(str(tiny_model[0]), str(corpus), str(tmp_path / fmt), shard_size=4, format=fmt,
                                 restoration=RestoreOptions(gaps="mark")), progress=False)
    out["jsonl"] = [json.loads(line) for k in range(3)
                    for line in shard_path(tmp_path / "jsonl", k, "jsonl").read_text().splitlines()]
    out["parquet"] = [r for k in range(3) for r in pq.read_table(shard_path(tmp_path / "parquet", k, "parquet")).to_pylist()]
    assert len(out["jsonl"]) == len(out["parquet"]) == 11
    spans_written = [s for r in out["jsonl"] for s in r["spans"]]
    assert any("pronoun" in s for s in spans_written) and any("gap" in s for s in spans_written)
    for a, b in zip(out["jsonl"], out["parquet"]):
        assert _without_nulls(a) == _without_nulls(b), a["id"]


def test_bad_lines_of_every_kind_are_named_by_line_and_the_good_ones_restored_once(tiny_model, tmp_path, capsys):
    from corefix.cli import main

    good = [{"id": "g1", "text": TEXT}, {"id": "g2", "text": "Mr. Blair said he would go."},
            {"id": "g1", "text": "A second record with the same id."}, {"id": "big", "text": TEXT * 300}]
    lines = [json.dumps(good[0]).encode(), b'{"id": "t", "text": "truncated', json.dumps(good[1]).encode(),
             b"[1, 2, 3]", b'{"id": "nt"}', b"", b'{"id": "ns", "text": 42}', json.dumps(good[2]).encode(),
             b'{"id": "u", "text": "caf\xe9"}', json.dumps(good[3]).encode()]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(src), "--output", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    rows = [json.loads(line) for p in sorted(out.glob("shard-*.jsonl")) for line in p.read_text().splitlines()]
    assert [(r["id"], r["text"]) for r in rows] == [(g["id"], g["text"]) for g in good]  # each once, in order
    summary = json.loads((out / "summary.json").read_text())
    assert summary["articles"] == 4
    failures = [f["record"] for f in summary["failures"]]
    expected = [(2, "invalid JSON"), (4, "not a JSON object"), (5, "no string field"), (7, "no string field"),
                (9, "not valid UTF-8")]
    assert len(failures) == len(expected)
    for got, (line, why) in zip(failures, expected):  # in input order, each with its line number
        assert got.startswith(f"{src}:{line}: ") and why in got, got


def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_output(tiny_model, tmp_path):
    """The CLI as a user runs it, killed with SIGKILL at random moments and rerun until done: every record once,
    the shards byte for byte those of one uninterrupted run (a few cycles here; the soak runs many)."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"r{i}", "text": TEXT if i % 4 else "Mr. Blair said he would go."}) for i in range(60)]
    lines[17] = '{"id": "bad", "text": '  # one bad line among them
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}

    def command(out):
        return [sys.executable, "-m", "corefix.cli", "restore-corpus", "--model", str(tiny_model[0]), "--input",
                str(src), "--output", str(out), "--shard-size", "4"]

    full = tmp_path / "full"
    subprocess.run(command(full), env=env, check=True, capture_output=True)
    killed, rng, kills = tmp_path / "killed", random.Random(7), 0
    for _ in range(12):
        proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 6.0))  # start-up (imports, model) takes a few seconds; shards follow fast
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        break
    else:
        subprocess.run(command(killed), env=env, check=True, capture_output=True)
    assert kills >= 1
    assert _files(killed) == _files(full)
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["articles"] == 59 and [f["record"] for f in summary["failures"]] == [f"{src}:18: invalid JSON "
                                                                                         "(Expecting value)"]


# ---------------------------------------------------------------- an output folder that cannot be written

class _FailingOpen:
    """``open`` for corefix.model.shards that fails on the ``nth`` shard file it writes: mid-write as a full
    disk does (half the bytes, then ENOSPC), or at the open as a folder made read-only does (EACCES)."""

    def __init__(self, nth: int, how: str):
        self.nth, self.how, self.seen = nth, how, 0

    def __call__(self, path, mode="r", *args, **kwargs):
        import errno

        f = open(path, mode, *args, **kwargs)
        if "w" not in mode or not os.path.basename(path).startswith("shard-") or ".stats." in path:
            return f
        self.seen += 1
        if self.seen != self.nth:
            return f
        if self.how == "read-only":
            f.close()
            os.unlink(path)
            raise PermissionError(errno.EACCES, "Permission denied", path)
        write = f.write

        def half_then_full(data):
            write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        f.write = half_then_full
        return f


@pytest.mark.parametrize("how", ["disk full", "read-only"])
def test_an_unwritable_output_stops_with_one_line_and_a_rerun_completes(tiny_model, corpus, tmp_path, monkeypatch,
                                                                        capsys, how):
    from corefix.cli import main
    from corefix.model import shards

    full, out = tmp_path / "full", tmp_path / "out"
    restore_corpus(CorpusJob(str(tiny_model[0]), str(corpus), str(full), shard_size=3), progress=False)
    command = ["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out),
               "--shard-size", "3"]
    monkeypatch.setattr(shards, "open", _FailingOpen(3, how), raising=False)
    with pytest.raises(SystemExit) as exit:
        main(command)
    assert exit.value.code != 0
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and f"cannot write to {out}:" in errors[0] and "Traceback" not in err, err
    assert ("No space left" if how == "disk full" else "Permission denied") in errors[0]
    left = {p.name for p in out.iterdir()}
    assert left == {"job.json", "shard-00000.jsonl", "shard-00000.stats.json", "shard-00001.jsonl",
                    "shard-00001.stats.json"}  # no temporary file, no shard 2 that looks written
    assert _files(out) == {k: v for k, v in _files(full).items() if k in left}
    monkeypatch.undo()
    main(command)  # the folder fixed: the same command continues
    assert _files(out) == _files(full)
    assert json.loads((out / "summary.json").read_text())["articles"] == 11


def test_a_rerun_with_other_shards_is_refused(tiny_model, corpus, tmp_path, capsys):
    from corefix.cli import main

    out = tmp_path / "out"
    command = ["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out)]
    main([*command, "--shard-size", "3"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*command, "--shard-size", "4"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shard_size differ" in err and str(out) in err


def test_the_output_folder_counts_each_finished_shard_once_and_removes_what_killed_writers_left(tmp_path):
    """No model: the folder both engines write through (corefix.model.shards)."""
    from corefix.model.shards import ShardFolder

    out = tmp_path / "out"
    folder = ShardFolder(str(out), "jsonl")
    folder.prepare({"shard_size": 2})

    def stats(k):
        return {"articles": 2, "words": 10, "removed": k, "replaced": 0, "undamaged": 1,
                "failures": [{"record": f"in.jsonl:{k}: invalid JSON"}]}

    for k in (0, 1, 0):  # shard 0 written twice (a retried batch, a rerun): counted once
        folder.write_shard(k, b'{"id": "x"}\n', stats(k))
    folder.write_shard(2, b'{"id": "y"}\n', stats(2))
    (out / "shard-00002.jsonl").unlink()  # stats without their shard: not finished
    left = ["shard-00000.jsonl.0123456789ab.tmp", "shard-00001.stats.json.tmp", "shard-00002.jsonl.aaaaaaaaaaaa.tmp",
            "summary.json.bbbbbbbbbbbb.tmp"]
    for name in left:
        (out / name).write_bytes(b"half")
    assert folder.finished() == {0, 1}
    summary = folder.summary()
    assert (summary["shards"], summary["articles"], summary["removed"]) == (2, 4, 1)
    assert [f["record"] for f in summary["failures"]] == ["in.jsonl:0: invalid JSON", "in.jsonl:1: invalid JSON"]
    folder.remove_stale_temps()  # another process may still write shard 2 or the summary: theirs are kept
    assert sorted(p.name for p in out.glob("*.tmp")) == left[2:]
    folder.remove_stale_temps(sole_writer=True)
    assert [p.name for p in out.glob("*.tmp")] == ["shard-00002.jsonl.aaaaaaaaaaaa.tmp"]
    with pytest.raises(ValueError, match="shard_size differ"):
        ShardFolder(str(out), "jsonl").prepare({"shard_size": 3})


# ---------------------------------------------------------------- the battery (#23): through the CLI

HUGE_MB = float(os.environ.get("COREFIX_TEST_HUGE_MB", "50"))  # the size; smaller for a quick local run


def test_a_50_mb_record_is_named_by_its_line_and_every_other_record_restored_once(tiny_model, tmp_path, capsys):
    """A good record of 50 MB of text is over the default --max-chars: named as failed, in one line with its
    line number, never restored (it would take memory in proportion); the records around it are restored."""
    from corefix.cli import main

    huge = {"id": "huge", "text": ("Mr. Blair said he would go. " * (int(HUGE_MB * 1e6) // 28 + 1))}
    records = [{"id": "before", "text": TEXT}, huge, {"id": "after", "text": "Ms. Lopez won the vote."}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    del huge, records
    out = tmp_path / "out"
    main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(src), "--output", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    rows = [json.loads(line) for p in sorted(out.glob("shard-*.jsonl")) for line in p.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["before", "after"]
    failed = [line for line in captured.err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {src}:2: text of ") and "--max-chars" in failed[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["articles"] == 2 and [f["record"] for f in summary["failures"]] == [failed[0][len("failed: "):]]


def test_max_chars_restores_a_long_record_under_it_and_names_one_over_it(tiny_model, tmp_path, capsys):
    from corefix.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"r{n}", "text": "Mr. Blair said so. " * n}) for n in (10, 40)) + "\n",
                   encoding="utf-8")
    out = tmp_path / "out"
    main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(src), "--output", str(out),
          "--max-chars", "400"])
    err = capsys.readouterr().err
    assert f"failed: {src}:2: text of 760 characters, over the limit of 400 (--max-chars): not restored" in err
    assert [json.loads(line)["id"] for line in (out / shard_path(out, 0, "jsonl").name).read_text().splitlines()] == ["r10"]


def test_a_rerun_over_a_changed_input_is_refused_in_one_line(tiny_model, corpus, tmp_path, capsys):
    from corefix.cli import main

    out = tmp_path / "out"
    command = ["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out)]
    main(command)
    main(command)  # the same input: finished, nothing to do
    capsys.readouterr()
    with open(corpus, "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "late", "text": TEXT}) + "\n")
    with pytest.raises(SystemExit) as exit:
        main(command)
    err = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and len(err.splitlines()) == 1
    assert "another version of the input" in err and str(corpus) in err and str(out) in err


def test_an_output_path_under_a_file_is_a_one_line_error(tiny_model, corpus, tmp_path, capsys):
    from corefix.cli import main

    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit) as exit:
        main(["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus),
              "--output", str(tmp_path / "afile" / "out")])
    err = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"cannot write to {tmp_path / 'afile' / 'out'}" in err


def _mount(*args) -> bool:
    import subprocess

    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture()
def small_disk(tmp_path):
    """A real 24 KiB tmpfs (root only: skipped elsewhere), unmounted after the test."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=24k", "tmpfs", str(disk)):
        pytest.skip("mounting a small tmpfs needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_a_real_full_or_read_only_disk_stops_with_one_line_and_a_rerun_after_the_fix_completes(
        tiny_model, corpus, tmp_path, small_disk, capsys, how):
    """No simulation: the output on a tmpfs of a few pages (it fills at the third shard) or mounted read-only.
    One line naming the folder, exit status 2, no shard that looks finished but is not; made larger (or
    writable), the same command completes with the uninterrupted run's files."""
    from corefix.cli import main

    full = tmp_path / "full"
    restore_corpus(CorpusJob(str(tiny_model[0]), str(corpus), str(full), shard_size=3), progress=False)
    out = small_disk / "out"
    if how == "read-only":
        out.mkdir()
        assert _mount("-o", "remount,ro", str(small_disk))
    command = ["restore-corpus", "--model", str(tiny_model[0]), "--input", str(corpus), "--output", str(out),
               "--shard-size", "3"]
    with pytest.raises(SystemExit) as exit:
        main(command)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert exit.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert f"cannot write to {out}: " in errors[0]
    assert ("No space left on device" if how == "full" else "Read-only file system") in errors[0]
    left = {p.name for p in out.iterdir()}
    assert not [n for n in left if n.endswith(".tmp")]
    finished = {n for n in left if n.endswith(".jsonl") and n.replace(".jsonl", ".stats.json") in left}
    assert {n for n in left if n.endswith(".jsonl")} == finished  # no shard without its stats
    assert all((out / n).read_bytes() == (full / n).read_bytes() for n in finished)
    if how == "full":
        assert finished and len(finished) < 4  # it did fill mid-run
    assert _mount("-o", "remount,rw,size=16m", str(small_disk))
    main(command)
    assert _files(out) == _files(full)
    assert json.loads((out / "summary.json").read_text())["articles"] == 11


@pytest.mark.slow
def test_one_local_worker_of_two_killed_is_started_again_and_nothing_is_lost(tiny_model, tmp_path):
    """kill -9 of one of the two worker processes once a shard is written: the run starts it again (one warning
    line), finishes by itself, and its files are those of one uninterrupted one-worker run."""
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"r{i}", "text": TEXT if i % 4 else "Mr. Blair said he would go."})
                             for i in range(400)) + "\n", encoding="utf-8")
    reference, out = tmp_path / "reference", tmp_path / "out"
    restore_corpus(CorpusJob(str(tiny_model[0]), str(src), str(reference), shard_size=4), progress=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "corefix.cli", "restore-corpus", "--model", str(tiny_model[0]),
                             "--input", str(src), "--output", str(out), "--shard-size", "4", "--num-workers", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline, victim = time.monotonic() + 300, None
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            if list(out.glob("shard-*.stats.json")):
                ps = subprocess.run(["ps", "-ww", "-s", str(proc.pid), "-o", "pid=,args="], capture_output=True, text=True)
                workers = [int(line.split()[0]) for line in ps.stdout.splitlines() if "spawn_main" in line]
                victim = workers[-1] if workers else None
            time.sleep(0.02)
        assert victim is not None, f"no worker to kill before the run ended ({proc.poll()})"
        assert len(list(out.glob("shard-*.stats.json"))) < 100  # killed mid-run
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    died = [line for line in err.splitlines() if "died" in line]
    assert len(died) == 1 and "killed by SIGKILL" in died[0] and "started again" in died[0], err
    assert _files(out) == _files(reference)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["articles"] == 400 and summary["shards"] == 100
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
