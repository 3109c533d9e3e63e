"""A host-side wheelhouse for requirements.txt: built once (compiling psycopg's C extension once), keyed by
the file's hash, then mounted into builds so they need no network for Python packages."""

from __future__ import annotations

import hashlib
from pathlib import Path

from imagepipe import commands, runner


def wheelhouse(requirements: Path, state_dir: Path) -> Path:
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    target = state_dir / "wheelhouse" / key
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        # every download checked against the file's hashes (the image's offline install trusts this directory)
        hashed = "--hash=" in requirements.read_text()
        runner.run(commands.pip_wheel(requirements, target, require_hashes=hashed), stage="build", timeout=1800,
                   what="building the wheelhouse")
        (target / ".complete").touch()
    return target
