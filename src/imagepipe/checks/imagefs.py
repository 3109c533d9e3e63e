"""Static inspection of an image's file tree (buildah mount: works without running the image)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from imagepipe.image import filetree

BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "cpp", "make", "ld", "as", "clang", "x86_64-linux-gnu-gcc-12",
               "aarch64-linux-gnu-gcc-12")
SECRET_PATTERNS = {
    "OpenAI-style key": re.compile(rb"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}"),
    # A header alone is just a string constant (cryptography and gnutls contain them); a key has a body.
    "private key": re.compile(
        rb"-----BEGIN (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64,}"),
    "AWS access key": re.compile(rb"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
}
# A literal each pattern's match must contain: a fast C substring test decides whether the regex runs at all.
SECRET_HINTS = {"OpenAI-style key": (b"sk-",), "private key": (b"PRIVATE KEY-----",), "AWS access key": (b"AKIA",),
                "GitHub token": (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_")}
SKIP_TOP = frozenset({"proc", "sys", "dev"})
MAX_SCAN_BYTES = 8 * 1024 * 1024


def walk(root: Path, unreadable: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """The image's tree without the kernel's mount points (the one walker, imagepipe.image.filetree)."""
    return filetree.walk(root, skip_top=SKIP_TOP, unreadable=unreadable)


@dataclass
class Scan:
    """What one pass over an image's tree finds (verify's static checks read it)."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # listed, but lstat fails: (path, errno)
    not_owned: list[str] = field(default_factory=list)  # under /app, not owned by the service user
    writable: list[str] = field(default_factory=list)  # world-writable, not a sticky directory
    setuid: list[str] = field(default_factory=list)
    junk: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of regular files per directory two levels down


def scan(root: Path, secret_values: list[str], *, app_dir: str = "/app", uid: int = 1001) -> Scan:
    """One walk for ownership, permissions, setuid bits, context junk and secrets (files read once)."""
    needles = [v.encode() for v in secret_values if len(v) >= 8]
    out = Scan(junk=[m for m in BUILD_MOUNTS if os.path.lexists(root / m.lstrip("/"))])
    for path, st in walk(root, out.unreadable):
        mode = st.st_mode
        in_app = path == app_dir or path.startswith(app_dir + "/")
        name = path.rsplit("/", 1)[-1]
        if in_app and (name in JUNK_NAMES or name.startswith(".env") or name.endswith(".pyc")):
            out.junk.append(path)
        if stat.S_ISLNK(mode):
            continue
        if in_app and st.st_uid != uid:
            out.not_owned.append(path)
        if mode & stat.S_IWOTH and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
            out.writable.append(path)
        if not stat.S_ISREG(mode):
            continue
        top = top_dir(path)
        out.sizes[top] = out.sizes.get(top, 0) + st.st_size
        if mode & (stat.S_ISUID | stat.S_ISGID):
            out.setuid.append(path)
        hit = _secret_in(root, path, name, st.st_size, needles)
        if hit:
            out.secrets.append(hit)
    return out


def _secret_in(root: Path, path: str, name: str, size: int, needles: list[bytes]) -> str | None:
    if name == ".env" or name.startswith(".env."):
        return f"{path} (.env file)"
    if size > MAX_SCAN_BYTES or size == 0:
        return None
    try:
        data = (root / path.lstrip("/")).read_bytes()
    except OSError:
        return None
    if any(n in data for n in needles):
        return f"{path} (a run-time secret value)"
    if data[:4] == b"\x7fELF":
        return None  # compiled code embeds self-test keys (gnutls' FIPS tests); patterns target config and code
    for label, pattern in SECRET_PATTERNS.items():
        if any(hint in data for hint in SECRET_HINTS[label]) and pattern.search(data):
            return f"{path} ({label})"
    return None


def find_build_tools(root: Path) -> list[str]:
    found = []
    for d in ("usr/bin", "usr/local/bin", "bin", "opt/venv/bin"):
        for tool in BUILD_TOOLS:
            if (root / d / tool).exists() or (root / d / tool).is_symlink():
                found.append(f"/{d}/{tool}")
    if (root / "usr/lib/gcc").exists() and any((root / "usr/lib/gcc").rglob("cc1")):
        found.append("/usr/lib/gcc/**/cc1")
    return sorted(set(found))


JUNK_NAMES = {".git", "tests", "test", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv",
              "node_modules", ".coverage"}


# Where the build mounts the host's CA bundle, the wheelhouse and the Job's pip cache: a RUN step in the
# final stage would leave their mount points behind in its layer (buildah does), so their presence means a
# build-time trace.
BUILD_MOUNTS = ("/run/host-ca.crt", "/run/wheels", "/run/pip-cache")


def top_dir(path: str, depth: int = 2) -> str:
    """The directory `depth` levels down that a path's bytes are counted under (/usr/lib, /opt/venv)."""
    return "/" + "/".join(path.strip("/").split("/")[:depth])


def size_by_top(root: Path, depth: int = 2) -> dict[str, int]:
    """Bytes of regular files under each directory `depth` levels down (/usr/lib, /opt/venv, ...), largest
    first: where an image's size goes."""
    sizes: dict[str, int] = {}
    for path, st in walk(root, []):
        if stat.S_ISREG(st.st_mode):
            key = top_dir(path, depth)
            sizes[key] = sizes.get(key, 0) + st.st_size
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
