#!/usr/bin/env python
"""Thin entry point: `python scripts/package_model.py ...` is `corefix package-model ...` (see --help)."""
import sys

from corefix.cli import main

if __name__ == "__main__":
    main(["package-model", *sys.argv[1:]])
