"""Facts read from buildah's and skopeo's output: pure parsers, tested on recorded output
(tests/pipeline/recorded/), apart from the calls that run the tools."""

from __future__ import annotations

import json
from typing import Any


def skopeo_digest(stdout: str) -> str | None:
    """The manifest digest `skopeo inspect REF` reports."""
    digest = json.loads(stdout).get("Digest")
    return str(digest) if digest else None


def skopeo_config(stdout: str) -> dict[str, Any]:
    """The container config (Cmd, Env, User, …) of `skopeo inspect --config REF`."""
    return dict(json.loads(stdout).get("config") or {})


def buildah_version(stdout: str) -> str:
    """'1.28.2' from `buildah version 1.28.2 (image-spec 1.1.0-rc2, runtime-spec 1.0.2-dev)`."""
    words = stdout.split()
    return words[2] if len(words) > 2 and words[:2] == ["buildah", "version"] else "unknown"
