"""The Hugging Face ``evaluate`` metric of corefix: ``evaluate.load(str(METRIC_PATH))``."""

from pathlib import Path

METRIC_PATH = Path(__file__).resolve().parent / "corefix_spans.py"
