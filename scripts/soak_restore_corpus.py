#!/usr/bin/env python
"""Soak test of restore-corpus's resume: kill -9 it at random moments, rerun, check nothing is lost or doubled.

    python scripts/soak_restore_corpus.py                                   # 50 cycles, 5,000 records, local engine
    python scripts/soak_restore_corpus.py --engine ray --num-actors 2
    python scripts/soak_restore_corpus.py --cycles 3 --records 200 --model runs/cpu-small/best
    python scripts/soak_restore_corpus.py --tiny-model --huge-mb 50                 # what docs/benchmarks.md reports
    python scripts/soak_restore_corpus.py --tiny-model --engine ray --cycles 10 --actor-kills 5

Generates a corpus of ``--records`` JSONL lines with ``--bad`` of the lines of each kind of bad line
(truncated JSON, not an object, no text field, text not a string, invalid UTF-8) and as many good records that
repeat an earlier id (and, with ``--huge-mb``, one record of that many MB of text: over ``--max-chars`` it is a
failure the summary names), then restores it once uninterrupted (the reference). Each cycle then runs the same
``corefix restore-corpus`` command into a second folder and kills it with SIGKILL at a random moment between
its start and the reference's duration, or once a random number of shards more is written (half the cycles
each); a run that finishes before its kill completes a round, which is checked and the folder emptied for the
next. After the cycles one last run completes the round in progress. ``--actor-kills N`` (Ray engine) then makes N more
rounds, each one uninterrupted run in which one actor process (found by its title, ``ray::ShardRestorer``, among
the run's processes) is killed with SIGKILL while it restores a shard: Ray restarts it and retries its shards.
Every finished round is checked against the reference: 0 records lost, 0 duplicated, every shard file byte
for byte the reference's, ``summary.json``'s counts exact and its failures the bad lines, in input order, no
temporary file left. Prints the figures; exits 1 if any check fails (keeping its scratch folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ["Ms. Lopez", "Mr. Okafor", "Tony Blair", "Ana Smith", "the minister", "Allied Domecq", "Pernod Ricard"]
VERBS = ["said", "told reporters", "denied", "announced", "confirmed", "was asked whether"]
TAILS = ["the talks would cover trade", "shares rose 4% in London", "he would meet the Ghanaian leader",
         "the bid was not welcome", "she had won the vote", "the deal could struggle to find funding"]
BAD_KINDS = {  # what each kind of bad line looks like, and what the summary says of it
    "truncated JSON": lambda i: b'{"id": "t%d", "text": "cut sho' % i,
    "not an object": lambda i: b'["a list", %d]' % i,
    "no text field": lambda i: b'{"id": "nt%d", "body": "no text here"}' % i,
    "text not a string": lambda i: b'{"id": "ns%d", "text": %d}' % (i, i),
    "invalid UTF-8": lambda i: b'{"id": "u%d", "text": "caf\xe9 au lait"}' % i,
}


def article(rng: random.Random) -> str:
    """A short news-like text, now and then with a copied name (the damage the model looks for)."""
    sentences = []
    for _ in range(rng.randint(2, 6)):
        name = rng.choice(NAMES)
        copy = f" {name}" if rng.random() < 0.3 else ""
        sentences.append(f"{name}{copy} {rng.choice(VERBS)} that {rng.choice(TAILS)}.")
    return " ".join(sentences)


def huge_text(rng: random.Random, mb: float) -> str:
    """About ``mb`` MB of articles as one text."""
    parts, size = [], 0
    while size < mb * 1e6:
        parts.append(article(rng))
        size += len(parts[-1]) + 1
    return "\n".join(parts)


def make_corpus(path: Path, records: int, bad: float, seed: int, huge_mb: float = 0.0,
                max_chars: int | None = None) -> dict:
    """Write the corpus; return the line numbers of its good and bad lines and the counts of each kind."""
    rng = random.Random(seed)
    per_kind = max(1, round(records * bad))
    kinds = [k for k in BAD_KINDS for _ in range(per_kind)] + ["duplicate id"] * per_kind + ["huge"] * (huge_mb > 0)
    kinds += ["good"] * (records - len(kinds))
    rng.shuffle(kinds)
    lines, good, failed, ids = [], [], [], []
    for n, kind in enumerate(kinds, start=1):
        if kind in BAD_KINDS:
            lines.append(BAD_KINDS[kind](n))
            failed.append(n)
            continue
        art_id = rng.choice(ids) if kind == "duplicate id" and ids else f"a{n}"
        ids.append(art_id)
        text = huge_text(rng, huge_mb) if kind == "huge" else article(rng)
        lines.append(json.dumps({"id": art_id, "text": text, "line": n}).encode())
        too_long = max_chars is not None and len(text) > max_chars
        (failed if too_long else good).append(n)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {"good": good, "failed": failed,
            "kinds": {k: kinds.count(k) for k in (*BAD_KINDS, "duplicate id", "huge")}}


def tiny_model(out: Path) -> str:
    """A randomly initialised 2-layer corefix model (hidden size 32, the default tokenizer), saved in ``out``.

    The soak is about losing nothing, not about accuracy: this model restores about 30 short articles a second
    on one slow core, and flags a copy in about half of them (its classifier's weights are random, the bias
    of ``O`` set so), so the output still holds removals to compare. It never flags a substitution (the
    pronoun choice, a spaCy parse per span, would cost most of the time)."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    from corefix.model.card import ModelCard
    from corefix.model.network import load_tokenizer, quiet_loading, save_trained
    from corefix.words import ID2TAG, TAG2ID, TAGS

    tokenizer = load_tokenizer(None)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(TAGS),
                        id2label=dict(ID2TAG), label2id=dict(TAG2ID))
    torch.manual_seed(0)
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():
        weight, bias = model.classifier.weight, model.classifier.bias
        weight[TAG2ID["B-SUB"]] = weight[TAG2ID["I-SUB"]] = 0
        weight[TAG2ID["B-DUP"]], weight[TAG2ID["I-DUP"]] = torch.randn(2, weight.shape[1])
        bias.copy_(torch.tensor([{"O": 9.0, "B-SUB": -20.0, "I-SUB": -20.0}.get(t, 0.0) for t in TAGS]))
    with quiet_loading():
        save_trained(model, tokenizer, ModelCard(max_length=128, stride=32, base_model="random (soak)"), out)
    return str(out)


def command(args, src: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "corefix.cli", "restore-corpus", "--input", str(src), "--output", str(out),
           "--shard-size", str(args.shard_size), "--format", args.format, "--engine", args.engine]
    if args.model:
        cmd += ["--model", args.model]
    if args.max_chars is not None:
        cmd += ["--max-chars", str(args.max_chars)]
    if args.engine == "ray":
        cmd += ["--num-actors", str(args.num_actors), "--cpus-per-actor", str(args.cpus_per_actor)]
    return cmd


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """The command in its own session, so what a killed run leaves (Ray's helpers, workers) can be reaped;
    its standard error (progress lines) goes to ``log``."""
    with open(log, "wb") as err:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def failed(cmd: list[str], log: Path) -> None:
    sys.exit(f"soak: the command failed:\n{' '.join(cmd)}\n{log.read_bytes().decode(errors='replace')[-2000:]}")


def reap(proc: subprocess.Popen) -> None:
    """SIGKILL whatever of the run's session outlived it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_to_end(cmd: list[str], log: Path) -> float:
    """Run the command uninterrupted; its wall time (exits on failure)."""
    began = time.monotonic()
    proc = start(cmd, log)
    proc.wait()
    reap(proc)
    if proc.returncode != 0:
        failed(cmd, log)
    return time.monotonic() - began


def finished_shards(out: Path) -> int:
    return len(list(out.glob("shard-*.stats.json"))) if out.exists() else 0


def run_and_kill(cmd: list[str], out: Path, moment: tuple[str, float, float], log: Path) -> bool:
    """Run the command and SIGKILL it at ``moment``: ``("seconds", t, _)`` after its start, or
    ``("shards", n, jitter)`` ``jitter`` seconds after n more shards are finished (while the next one may be
    being written). True if it was killed, False if it finished first."""
    kind, value, jitter = moment
    began, before = time.monotonic(), finished_shards(out)
    proc = start(cmd, log)
    try:
        while proc.poll() is None:
            if kind == "seconds" and time.monotonic() - began >= value:
                break
            if kind == "shards" and finished_shards(out) - before >= value:
                time.sleep(jitter)
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(0.5)  # what the driver started notices it is gone, then goes (or is reaped)
            return True
    finally:
        reap(proc)
    if proc.returncode != 0:
        failed(cmd, log)
    return False


def session_processes(sid: int) -> dict[int, str]:
    """pid -> command line (as the process titles itself) of every process of session ``sid``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[3]) == sid:  # the fields after the name: state ppid pgrp session
            found[int(entry)] = cmdline.strip()
    return found


def run_killing_an_actor(cmd: list[str], out: Path, after: int, log: Path) -> dict:
    """Run the command (Ray engine) and, once ``after`` shards are finished, SIGKILL one actor process while it
    restores a shard (its title ``ray::ShardRestorer.restore``); the run must then finish by itself."""
    proc = start(cmd, log)
    killed = None
    try:
        while proc.poll() is None and killed is None:
            if finished_shards(out) >= after:
                busy = [pid for pid, title in session_processes(proc.pid).items()
                        if title.startswith("ray::ShardRestorer.restore")]
                if busy:
                    killed = busy[0]
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.02)
        proc.wait()
    finally:
        reap(proc)
    if proc.returncode != 0:
        failed(cmd, log)
    return {"actor killed": killed is not None, "shards finished before": after, "pid": killed}


def kill_moment(rng: random.Random, ref_seconds: float, shards: int) -> tuple[str, float, float]:
    """Half the kills at a random instant of a run's length (start-up included), half once a random number of
    shards is written (so a slow start-up does not keep every kill before the first shard)."""
    if rng.random() < 0.5:
        return "seconds", rng.uniform(0, ref_seconds), 0.0
    return "shards", rng.randint(1, max(1, shards // 2)), rng.uniform(0, 0.2)


def shard_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name.startswith("shard-")}


def output_lines(out: Path, fmt: str) -> list[int]:
    """The input line of every output row, in output order."""
    if fmt == "jsonl":
        return [json.loads(line)["line"] for p in sorted(out.glob("shard-*.jsonl"))
                for line in p.read_text(encoding="utf-8").split("\n") if line]
    import pyarrow.parquet as pq

    return [n for p in sorted(out.glob("shard-*.parquet"))
            for n in pq.read_table(p, columns=["line"]).column("line").to_pylist()]


def check(out: Path, reference: dict[str, bytes], corpus: dict, src: Path, fmt: str, shard_size: int) -> dict:
    """The figures of one finished round (every one 0 when all is well)."""
    seen = output_lines(out, fmt)
    good = set(corpus["good"])
    files = shard_files(out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    failures = [f["record"].split(": ")[0] for f in summary["failures"]]
    shards = -(-(len(corpus["good"]) + len(corpus["failed"])) // shard_size)
    return {
        "records lost": len(good - set(seen)),
        "records duplicated": len(seen) - len(set(seen)),
        "records out of order": int(seen != sorted(seen)),
        "files differing from the reference": len(set(files) ^ set(reference))
        + sum(files[n] != reference[n] for n in set(files) & set(reference)),
        "summary counts wrong": int((summary["articles"], summary["shards"]) != (len(good), shards))
        + int(failures != [f"{src}:{n}" for n in corpus["failed"]]),
        "temporary files left": len([p for p in out.iterdir() if p.name.endswith(".tmp")]),
    }


def cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return f"{names[0] if names else platform.processor()} ({len(names)} cores seen, os.nice {os.nice(0)})"


def soak(args) -> int:
    from corefix.model.restore_corpus import MAX_CHARS

    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="corefix-soak-", dir=args.work))
    print(f"soak: working in {work}", flush=True)
    if args.tiny_model:
        args.model = tiny_model(work / "tiny-model")
    src, ref_dir, out, log = work / "corpus.jsonl", work / "reference", work / "resumed", work / "stderr.log"
    max_chars = MAX_CHARS if args.max_chars is None else args.max_chars or None
    corpus = make_corpus(src, args.records, args.bad, args.seed, args.huge_mb, max_chars)
    ref_seconds = run_to_end(command(args, src, ref_dir), log)
    print(f"soak: the uninterrupted run took {ref_seconds:.1f} s", flush=True)
    reference = shard_files(ref_dir)
    rng = random.Random(args.seed)
    kills = rounds = 0
    totals: dict[str, int] = {}

    def finish_round():
        nonlocal rounds
        for k, v in check(out, reference, corpus, src, args.format, args.shard_size).items():
            totals[k] = totals.get(k, 0) + v
        rounds += 1
        shutil.rmtree(out)

    for cycle in range(args.cycles):
        moment = kill_moment(rng, ref_seconds, len(reference) // 2)
        killed = run_and_kill(command(args, src, out), out, moment, log)
        kills += killed
        done = finished_shards(out)
        if not killed:
            finish_round()
        print(f"cycle {cycle + 1}/{args.cycles}: kill at {moment[1]:.3g} {moment[0]}: "
              f"{'killed' if killed else 'finished first, round checked'}; {done} shards finished", flush=True)
    run_to_end(command(args, src, out), log)
    finish_round()
    actor_kills = []
    for i in range(args.actor_kills):
        outcome = run_killing_an_actor(command(args, src, out), out, rng.randint(1, max(1, len(reference) // 4)), log)
        actor_kills.append(outcome["actor killed"])
        print(f"actor-kill run {i + 1}/{args.actor_kills}: {outcome}", flush=True)
        finish_round()
    figures = {"engine": args.engine, "model": args.model or "shipped", "cpu": cpu_model(),
               "records per round": args.records, "good records": len(corpus["good"]),
               "failed records (bad lines, over --max-chars)": len(corpus["failed"]),
               **{f"  {k}": v for k, v in corpus["kinds"].items()}, "input MB": round(src.stat().st_size / 1e6, 1),
               "uninterrupted run (s)": round(ref_seconds, 1), "cycles": args.cycles, "kills": kills,
               "runs with an actor killed": sum(actor_kills), "rounds checked": rounds, **totals,
               "actor-kill runs where no busy actor was found": actor_kills.count(False),
               "soak wall time (s)": round(time.monotonic() - began, 1)}
    print(json.dumps(figures, indent=2))
    if any(totals.values()) or not all(actor_kills):
        print(f"soak: FAILED (the folders are kept in {work})")
        return 1
    shutil.rmtree(work)
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=50, help="kill-and-rerun cycles (default 50)")
    p.add_argument("--records", type=int, default=5000, help="lines of the generated corpus (default 5000)")
    p.add_argument("--bad", type=float, default=0.01, help="fraction of lines of each bad kind (default 0.01)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    p.add_argument("--tiny-model", action="store_true",
                   help="build a tiny randomly initialised model and use it (about losing nothing, not accuracy)")
    p.add_argument("--huge-mb", type=float, default=0.0, help="add one record of this many MB of text (e.g. 50)")
    p.add_argument("--max-chars", type=int, default=None, help="restore-corpus --max-chars (default: its default)")
    p.add_argument("--actor-kills", type=int, default=0,
                   help="ray engine: after the cycles, this many runs each with one actor killed mid-shard")
    p.add_argument("--shard-size", type=int, default=50)
    p.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    p.add_argument("--num-actors", type=int, default=2, help="ray engine: actors (default 2)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="ray engine: CPUs per actor (default 1)")
    p.add_argument("--work", default=None, help="where to make the scratch folder (default: the system's temp)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.actor_kills and args.engine != "ray":
        p.error("--actor-kills is for --engine ray")
    sys.exit(soak(args))


if __name__ == "__main__":
    main()
