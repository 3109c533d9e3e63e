"""Pending Debian security fixes: installed package versions vs the bookworm-security index."""

from __future__ import annotations

import lzma
import os
import time
from pathlib import Path

import requests
from debian import deb822, debian_support

from imagepipe.errors import PipelineError
from imagepipe.exec.retry import retry

DEFAULT_INDEX = "http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-{arch}/Packages.xz"
CACHE_SECONDS = 3600
XZ_MAGIC = b"\xfd7zXZ\x00"
FETCH_ATTEMPTS = 3


def index_url(arch: str = "amd64") -> str:
    """The security index's URL for a Debian architecture, read when it is fetched (not at import);
    IMAGEPIPE_DEBIAN_SECURITY_INDEX (a mirror's Packages.xz, or an uncompressed Packages) may hold `{arch}`."""
    return os.environ.get("IMAGEPIPE_DEBIAN_SECURITY_INDEX", DEFAULT_INDEX).replace("{arch}", arch)


def security_index(cache_dir: Path, arch: str = "amd64") -> dict[str, str]:
    """Package -> newest version in bookworm-security for `arch` (cached for an hour)."""
    cache = cache_dir / f"bookworm-security-Packages-{arch}"
    if not cache.exists() or time.time() - cache.stat().st_mtime > CACHE_SECONDS:
        def fetch() -> requests.Response:
            response = requests.get(index_url(arch), timeout=60)
            response.raise_for_status()
            return response

        try:
            # a name lookup or a connection that fails once (seen in a pod of the local cluster) is tried again
            response = retry(fetch, attempts=FETCH_ATTEMPTS, on=(requests.ConnectionError, requests.Timeout),
                             backoff=2.0, what="fetching the Debian security index")
        except requests.RequestException as e:
            raise PipelineError(f"cannot fetch the Debian security index ({e}); check network access to "
                                "the Debian mirror or set IMAGEPIPE_DEBIAN_SECURITY_INDEX", stage="verify") from e
        cache.parent.mkdir(parents=True, exist_ok=True)
        # Packages.xz as the archive serves it, or an index kept uncompressed (a mirror's, a recorded copy)
        body = response.content
        cache.write_bytes(lzma.decompress(body) if body.startswith(XZ_MAGIC) else body)
    newest: dict[str, str] = {}
    with cache.open(encoding="utf-8", errors="replace") as f:
        for stanza in deb822.Packages.iter_paragraphs(f, use_apt_pkg=False):
            name, version = stanza.get("Package"), stanza.get("Version")
            if name and version and (name not in newest or version_lt(newest[name], version)):
                newest[name] = version
    return newest


def version_lt(a: str, b: str) -> bool:
    """Debian's version order (epochs, ~ before anything), compared in-process by python-debian."""
    return debian_support.version_compare(a, b) < 0


def pending_fixes(installed: dict[str, str], index: dict[str, str]) -> list[str]:
    """'pkg installed -> fixed' for every installed package with a newer security version."""
    return [f"{pkg} {ver} -> {index[pkg]}" for pkg, ver in sorted(installed.items())
            if pkg in index and version_lt(ver, index[pkg])]
