"""Where the project lives (one definition; every module imports it from here)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
