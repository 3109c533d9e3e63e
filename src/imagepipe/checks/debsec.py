"""Pending Debian security fixes: installed package versions vs the bookworm-security index."""

from __future__ import annotations

import lzma
import os
import re
import time
from pathlib import Path

import requests

from imagepipe import runner
from imagepipe.errors import PipelineError

INDEX_URL = os.environ.get(
    "IMAGEPIPE_DEBIAN_SECURITY_INDEX",
    "http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-amd64/Packages.xz",
)
CACHE_SECONDS = 3600


def security_index(cache_dir: Path) -> dict[str, str]:
    """Package -> newest version in bookworm-security (cached for an hour)."""
    cache = cache_dir / "bookworm-security-Packages"
    if not cache.exists() or time.time() - cache.stat().st_mtime > CACHE_SECONDS:
        try:
            response = requests.get(INDEX_URL, timeout=60)
            response.raise_for_status()
        except requests.RequestException as e:
            raise PipelineError(f"cannot fetch the Debian security index ({e}); check network access to "
                                "the Debian mirror or set IMAGEPIPE_DEBIAN_SECURITY_INDEX", stage="verify") from e
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(lzma.decompress(response.content))
    newest: dict[str, str] = {}
    for stanza in cache.read_text(errors="replace").split("\n\n"):
        pkg = re.search(r"^Package: (\S+)$", stanza, re.M)
        ver = re.search(r"^Version: (\S+)$", stanza, re.M)
        if pkg and ver:
            name, version = pkg.group(1), ver.group(1)
            if name not in newest or version_lt(newest[name], version):
                newest[name] = version
    return newest


def version_lt(a: str, b: str) -> bool:
    return runner.run(["dpkg", "--compare-versions", a, "lt", b], ok_codes=(0, 1)).code == 0


def pending_fixes(installed: dict[str, str], index: dict[str, str]) -> list[str]:
    """'pkg installed -> fixed' for every installed package with a newer security version."""
    return [f"{pkg} {ver} -> {index[pkg]}" for pkg, ver in sorted(installed.items())
            if pkg in index and version_lt(ver, index[pkg])]
