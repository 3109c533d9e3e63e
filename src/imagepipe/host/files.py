"""Whole-file writes: a reader (or a run cancelled half-way) sees the old file or the new one, never half of
one; `mode` is set from the file's creation (an auth file is never readable by others, even briefly)."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)  # os.open's mode is filtered by the umask
    tmp.replace(path)
    return path
