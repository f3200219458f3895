#!/usr/bin/env python
"""Thin entry point: `python scripts/benchmark.py ...` is `corefix benchmark ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["benchmark", *sys.argv[1:]])
