#!/usr/bin/env python
"""Thin entry point: `python scripts/calibrate.py ...` is `corefix calibrate ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["calibrate", *sys.argv[1:]])
