"""The gates: ruff (style, bug patterns, 120-column lines) and mypy --strict (the pipeline package, then the
backend on its own path); the suite fails when either finds anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_ruff_is_clean():
    proc = run("ruff", "check", str(ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Each mypy run keeps an incremental cache of its own: the backend's `mcp` folder and the SDK of that name
# would otherwise overwrite each other's cache entries, and the next run of the other gate reads the wrong
# module (seen: 'Module "mcp" has no attribute "Client"' after the backend's run; with two lanes the runs
# may also overlap).
PIPELINE_CACHE, BACKEND_CACHE = ".mypy_cache/pipeline", ".mypy_cache/backend"


def test_mypy_strict_on_the_pipeline():
    proc = run("mypy", "--cache-dir", PIPELINE_CACHE)  # pyproject's [tool.mypy]: src/imagepipe, strict
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_the_backend():
    # The backend's `mcp` folder would shadow the SDK the pipeline imports: a run of its own, on its own path.
    proc = run("mypy", "--cache-dir", BACKEND_CACHE, "backend/app", "backend/agents", "backend/mcp",
               "backend/imagebuild", env={"MYPYPATH": "backend"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
