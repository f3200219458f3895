"""Time and memory of whole processes: what corefix measures by running commands.

- :func:`bench_memory`: the peak resident memory of predicting one article of
  each size, each in a fresh process (the ``memory`` figures of
  :mod:`corefix.model.benchmark`);
- :func:`time_command`: a command's wall time and the peak memory of its whole
  process tree; :func:`compare_engines` runs ``corefix restore-corpus`` with
  the local engine and the Ray engine (:mod:`corefix.model.restore_corpus_ray`)
  through it (``scripts/bench_restore_corpus.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

MEMORY_CHILD = r"""
import json, sys, threading, time
from corefix.model.inference import Detector
from corefix.model.options import InferenceOptions

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

d = Detector.load(sys.argv[1], InferenceOptions(batch_size=int(sys.argv[3]) if sys.argv[3] != "auto" else None,
                                                runtime=sys.argv[4], precision=sys.argv[5]))
words = ("Mr. Okafor said he met the two men in Accra , and they agreed . " * 100000).split()[: int(sys.argv[2])]
text = " ".join(words)
d.predict([text[:2000]])  # warm up: first-call allocations are not the article's
loaded = rss_kib()
peak = [loaded]
done = threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_kib())
        time.sleep(0.005)

t = threading.Thread(target=sample)
t.start()
d.predict([text])
done.set()
t.join()
peak[0] = max(peak[0], rss_kib())
print(json.dumps({"model_loaded_kib": loaded, "peak_kib": peak[0]}))
"""


def bench_memory(model_dir: str, sizes: list[int], batch_size: int | None = None, runtime: str = "torch",
                 precision: str = "fp32") -> dict:
    """Peak RSS predicting one article of each size, each in a fresh process, on ``runtime`` in ``precision``."""
    out = {}
    for n in sizes:
        res = subprocess.run([sys.executable, "-c", MEMORY_CHILD, model_dir, str(n), str(batch_size or "auto"),
                              runtime, precision],
                             capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        out[str(n)] = json.loads(res.stdout.strip().splitlines()[-1])
    first = out[str(sizes[0])]
    for n in sizes:
        rec = out[str(n)]
        rec["peak_mib"] = rec["peak_kib"] / 1024
        rec["loaded_mib"] = rec["model_loaded_kib"] / 1024
        rec["ratio_to_smallest"] = rec["peak_kib"] / first["peak_kib"]
        rec["growth_over_loaded_mib"] = (rec["peak_kib"] - rec["model_loaded_kib"]) / 1024
    return out


# ---------------------------------------------------------------- restore-corpus: the local and the Ray engine

def _tree_rss(pid: int) -> int:
    """Bytes resident in process ``pid`` and all its descendants (shared pages count in each process)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total
    children: dict[int, list[int]] = {}  # without psutil: /proc (Linux)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            pass
    return total


def time_command(argv: list[str]) -> dict:
    """Run a command; its wall time and the peak memory of its process tree, sampled every 0.2 s."""
    import subprocess

    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = 0, threading.Event()

    def sample():
        nonlocal peak
        while not stop.wait(0.2):
            peak = max(peak, _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    return {"seconds": time.monotonic() - start, "peak_bytes": peak, "returncode": proc.returncode,
            "stdout": out, "stderr": err}


def compare_engines(model: str, source: str, out_dir: str, workers=(1, 2), actors=(1, 2), cpus_per_actor: float = 1.0,
                    shard_size: int = 100, extra_args: tuple[str, ...] = ()) -> list[dict]:
    """Run ``corefix restore-corpus`` with each local worker count and each Ray actor count; one result each.

    A result holds the engine, the worker/actor count, wall seconds (start-up included: Python, the model,
    Ray), the run's own seconds (from its summary), articles, articles per wall second and the peak memory
    of the whole process tree. Each run writes into its own fresh folder under ``out_dir``.
    """
    import shutil
    import sys

    runs = [("local", n, ["--num-workers", str(n)]) for n in workers]
    runs += [("ray", n, ["--engine", "ray", "--num-actors", str(n), "--cpus-per-actor", str(cpus_per_actor)])
             for n in actors]
    results = []
    for engine, n, flags in runs:
        out = Path(out_dir) / f"{engine}-{n}"
        if out.exists():
            shutil.rmtree(out)
        argv = [sys.executable, "-m", "corefix.cli", "restore-corpus", "--model", model, "--input", source,
                "--output", str(out), "--shard-size", str(shard_size), *flags, *extra_args]
        run = time_command(argv)
        if run["returncode"] != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{run['stderr'][-2000:]}")
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        results.append({"engine": engine, "n": n, "wall_seconds": run["seconds"], "run_seconds": summary["seconds"],
                        "articles": summary["articles"], "articles_per_s": summary["articles"] / run["seconds"],
                        "peak_mib": run["peak_bytes"] / 2**20, "failures": len(summary["failures"])})
    return results


def markdown_table(results: list[dict]) -> str:
    """The results of :func:`compare_engines` as one Markdown table."""
    lines = ["| engine | workers / actors | wall s | run s | articles | articles/s (wall) | peak RSS MiB (tree) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['engine']} | {r['n']} | {r['wall_seconds']:.1f} | {r['run_seconds']:.1f} | "
                     f"{r['articles']} | {r['articles_per_s']:.2f} | {r['peak_mib']:.0f} |")
    return "\n".join(lines)
