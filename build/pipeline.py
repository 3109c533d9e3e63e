#!/usr/bin/env python3
"""Entry point: `python build/pipeline.py [STAGE] [options]` (see --help and README.md).

On first use it creates .venv next to the repository root and installs the pipeline's own dependencies into
it from build/requirements.lock (pyproject.toml's [project].dependencies with every transitive dependency
pinned and hashed by pip-compile; installed with --require-hashes), then the pipeline itself (src/imagepipe,
editable, which also gives .venv/bin/imagepipe), then re-executes itself there; later runs reuse it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The pipeline's image (ci/pipeline.Containerfile) brings a venv of its own, made from the same lock.
IMAGE_VENV = os.environ.get("IMAGEPIPE_VENV")
VENV = Path(IMAGE_VENV) if IMAGE_VENV else ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
LOCK = ROOT / "build" / "requirements.lock"
# Regenerate after changing pyproject's dependencies (the lock test fails until then):
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
#     -c backend/requirements.txt -o build/requirements.lock pyproject.toml


def image_venv() -> None:
    """The image's venv is used as it is: it must have been made from this checkout's lock."""
    made_from = VENV.parent / "requirements.lock"
    if not PYTHON.exists() or not made_from.exists() or made_from.read_bytes() != LOCK.read_bytes():
        sys.exit(f"error: the venv in IMAGEPIPE_VENV ({VENV}) was not made from this checkout's "
                 "build/requirements.lock: rebuild the pipeline image (python3 build/pipeline.py pipeline-image) "
                 "or unset IMAGEPIPE_VENV")


def bootstrap() -> None:
    """Create/refresh .venv when the lock changed (the image's venv is used as it is), then re-exec inside it."""
    sys.path.insert(0, str(ROOT / "src"))
    if not IMAGE_VENV:
        make_venv()
    env = dict(os.environ, PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    os.execve(str(PYTHON), [str(PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]], env)  # noqa: S606


def make_venv() -> None:
    from imagepipe import venvstamp  # standard library only: usable before the venv exists

    stamp = VENV / ".pipeline-deps"
    want = venvstamp.wanted(LOCK.read_bytes())
    if not PYTHON.exists():
        print(f"==> bootstrap: creating {VENV}", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        except subprocess.CalledProcessError:
            sys.exit("error: cannot create a virtual environment: install python3-venv "
                     "(apt-get install python3-venv) and run again")
    if not venvstamp.is_current(stamp, want):
        print("==> bootstrap: installing the pipeline's dependencies", flush=True)
        pip = [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        result = subprocess.run([*pip, "--require-hashes", "-r", str(LOCK)])
        if not result.returncode:
            # this project itself (src/imagepipe, the `imagepipe` command), built by the locked setuptools
            result = subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)])
        if result.returncode:
            sys.exit("error: installing the pipeline's dependencies failed (see pip's output above); "
                     "check network access to PyPI")
        venvstamp.mark(stamp, want)


if __name__ == "__main__":
    if IMAGE_VENV:
        image_venv()
    if Path(sys.prefix).resolve() != VENV.resolve():
        bootstrap()
    sys.path.insert(0, str(ROOT / "src"))
    from imagepipe.cli.main import main

    sys.exit(main())
