"""An image's file tree, walked once per use by one walker: verify's static pass (imagepipe.checks.imagefs)
and the parity command (its entries) both read it.

An entry holds what a consumer can observe of a path: type, size, permission and special bits, owner, link
target, content; not times, which each builder sets by its own reproducibility rule.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "link", stat.S_IFCHR: "char",
         stat.S_IFBLK: "block", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


@dataclass(frozen=True)
class Entry:
    type: str
    mode: str  # octal permission and special bits (setuid, setgid, sticky), e.g. "2775"
    uid: int
    gid: int
    size: int | None = None  # regular files
    sha256: str | None = None  # regular files
    link: str | None = None  # symlinks

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def walk(root: Path, *, skip_top: frozenset[str] = frozenset(),
         unreadable: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """("/path" inside the image, lstat) for every entry below root (the mounted image), in sorted order;
    the root itself is left out (it is the mount point), and so are the top-level names in skip_top.

    An entry a directory lists but lstat cannot read (a whiteout marker a builder left in a layer shows so in
    the container storage) goes to `unreadable` as ("/path", errno name) when a list is given; else it raises.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        dirnames.sort()
        for name in (*dirnames, *sorted(filenames)):
            if dirpath == str(root) and name in skip_top:
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError as e:
                if unreadable is None:
                    raise
                unreadable.append(("/" + os.path.relpath(full, root), errno.errorcode.get(e.errno or 0, str(e))))
                continue
            yield "/" + os.path.relpath(full, root), st


def entry(path: Path, st: os.stat_result | None = None) -> Entry:
    st = st or os.lstat(path)
    kind = TYPES.get(stat.S_IFMT(st.st_mode), "other")
    size = digest = link = None
    if kind == "file":
        size = st.st_size
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
    elif kind == "link":
        link = os.readlink(path)
    return Entry(kind, format(stat.S_IMODE(st.st_mode), "04o"), st.st_uid, st.st_gid, size, digest, link)


def tree(root: Path) -> dict[str, Entry]:
    """Every path below root (the mounted image), as "/path" -> Entry; an entry that cannot be read is one of
    type "unreadable (ERRNO)", so a comparison names it."""
    unreadable: list[tuple[str, str]] = []
    found = {path: entry(root / path.lstrip("/"), st) for path, st in walk(root, unreadable=unreadable)}
    found.update({path: Entry(f"unreadable ({err})", "----", -1, -1) for path, err in unreadable})
    return dict(sorted(found.items()))
