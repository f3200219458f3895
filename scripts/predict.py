#!/usr/bin/env python
"""Thin entry point: `python scripts/predict.py ...` is `corefix predict ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["predict", *sys.argv[1:]])
