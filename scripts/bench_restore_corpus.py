#!/usr/bin/env python
"""Time restore-corpus: the local engine with 1 and 2 workers, the ray engine with 1 and 2 actors.

    python scripts/bench_restore_corpus.py --model runs/cpu-small/best --input damaged.jsonl --out-dir /tmp/bench

Prints one Markdown table: wall time (start-up included), the run's own time, articles per wall second and
the peak memory of each command's whole process tree. Needs the ray extra (pip install -e ".[ray]").
"""
import argparse

from corefix.model.timing import compare_engines, markdown_table

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="trained model directory")
    p.add_argument("--input", required=True, help="the corpus to restore")
    p.add_argument("--out-dir", required=True, help="a folder for the runs' outputs (one subfolder each, replaced)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local worker counts (default: 1 2)")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="Ray actor counts (default: 1 2)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0)
    p.add_argument("--shard-size", type=int, default=100)
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32", help="inference precision of every run")
    args = p.parse_args()
    results = compare_engines(args.model, args.input, args.out_dir, args.workers, args.actors, args.cpus_per_actor,
                              args.shard_size, extra_args=("--precision", args.precision))
    print(markdown_table(results))
