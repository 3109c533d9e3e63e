"""The one "is this venv up to date" rule, for the pipeline's own dependencies (build/pipeline.py, before
the venv exists, so this module needs nothing but the standard library) and the test extras: a stamp file
holding the sha256 of what was installed."""

from __future__ import annotations

import hashlib
from pathlib import Path


def wanted(*inputs: bytes) -> str:
    return hashlib.sha256(b"".join(inputs)).hexdigest()


def is_current(stamp: Path, want: str) -> bool:
    return stamp.exists() and stamp.read_text().strip() == want


def mark(stamp: Path, want: str) -> None:
    stamp.write_text(want + "\n")
