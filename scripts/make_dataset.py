#!/usr/bin/env python
"""Thin entry point: `python scripts/make_dataset.py ...` is `corefix make-dataset ...`.

    python scripts/make_dataset.py --corpus ../shared/data/bbc_news.jsonl --out data/bbc
    python scripts/make_dataset.py --stats data/bbc
"""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["make-dataset", *sys.argv[1:]])
