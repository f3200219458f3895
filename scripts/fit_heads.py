#!/usr/bin/env python
"""Thin entry point: `python scripts/fit_heads.py ...` is `corefix fit-heads ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["fit-heads", *sys.argv[1:]])
