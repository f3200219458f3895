#!/usr/bin/env python
"""Thin entry point: `python scripts/evaluate.py ...` is `corefix evaluate ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
