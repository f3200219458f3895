#!/usr/bin/env python
"""Thin entry point: `python scripts/average.py ...` is `corefix average ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["average", *sys.argv[1:]])
