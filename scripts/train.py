#!/usr/bin/env python
"""Thin entry point: `python scripts/train.py ...` is `corefix train ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
