#!/usr/bin/env python3
"""Entry point: `python build/pipeline.py [STAGE] [options]` (see --help and README.md).

On first use it creates .venv next to the repository root and installs the pipeline's own dependencies
(pyproject.toml [project].dependencies) into it, then re-executes itself there; later runs reuse it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"


def _dependencies() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def bootstrap() -> None:
    """Create/refresh .venv when pyproject's dependencies changed, then re-exec inside it."""
    deps = _dependencies()
    stamp = VENV / ".pipeline-deps"
    want = hashlib.sha256("\n".join(deps).encode()).hexdigest()
    if not PYTHON.exists():
        print(f"==> bootstrap: creating {VENV}", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        except subprocess.CalledProcessError:
            sys.exit("error: cannot create a virtual environment: install python3-venv "
                     "(apt-get install python3-venv) and run again")
    if not stamp.exists() or stamp.read_text().strip() != want:
        print("==> bootstrap: installing the pipeline's dependencies", flush=True)
        result = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", *deps])
        if result.returncode:
            sys.exit("error: installing the pipeline's dependencies failed (see pip's output above); "
                     "check network access to PyPI")
        stamp.write_text(want + "\n")
    env = dict(os.environ, PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    os.execve(str(PYTHON), [str(PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]], env)  # noqa: S606


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != VENV.resolve():
        bootstrap()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from imagepipe.cli import main

    sys.exit(main())
