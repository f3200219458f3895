#!/usr/bin/env python
"""Thin entry point: `python scripts/restore_corpus.py ...` is `corefix restore-corpus ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["restore-corpus", *sys.argv[1:]])
