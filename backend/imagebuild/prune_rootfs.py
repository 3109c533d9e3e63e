"""Prune the runtime root the builder stage assembles (/rootfs) to what runs, and keep dpkg's records true.

Run by build/Containerfile's builder stage (`python3 prune_rootfs.py /rootfs`); never shipped (the runner
copies only app/, agents/, mcp/ from the context). Stdlib only: it runs on the base's interpreter.

What stays is found, not listed by hand: the programs below, then the shared-library closure (ldd) of
every ELF file that stays - those programs, the interpreter, every extension module of the stdlib and the
venv - plus the libraries code loads with dlopen. Everything else that is ELF in the library and program
directories goes. Packages whose files are all gone leave dpkg's status; the others keep a file list of
what remains. Copyright files always stay.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# Programs an operator and the checks need. Everything else in bin/sbin goes (tar, gpgv, apt, e2fsck, ...).
KEEP_PROGRAMS = {
    "python3.11", "python3", "python",  # the service and its HEALTHCHECK
    "psql", "pg_isready",  # FR-008: database connectivity from inside the container
    "sh", "dash", "bash",  # a shell (verify runs `sh -c`, operators exec bash)
    "whoami", "id",  # FR-004 is checked with these
    "uname",  # which machine this is: verify's architecture check, operators of a multi-arch image
    "true", "false", "env", "cat", "ls", "echo", "sleep", "uvicorn",  # the basics an operator reaches for
    "nologin",  # appuser's login shell
}
# Loaded with dlopen, so no ELF file names them: libgcc_s (thread cancellation, C++ unwinding in glibc),
# NSS modules (user and host lookups).
KEEP_LIBS = re.compile(r"^(libgcc_s\.so\.1|libnss_(files|dns|compat)[.-].*|ld-linux[-\w]*\.so\.\d)$")
BIN_DIRS = ("usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")
# The multiarch triplet of the interpreter running this (the image's: x86_64-linux-gnu, aarch64-linux-gnu).
MULTIARCH = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
LIB_DIRS = (f"usr/lib/{MULTIARCH}", "usr/local/lib")
DROP_TREES = ("usr/include", "usr/share/gcc", "usr/share/gdb", f"usr/lib/{MULTIARCH}/perl",
              f"usr/lib/{MULTIARCH}/ossl-modules", f"usr/lib/{MULTIARCH}/engines-3",
              f"usr/lib/{MULTIARCH}/sasl2", "usr/libexec", "usr/games")
LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def ldd(paths: list[Path]) -> set[str]:
    """Absolute paths of every shared library the given ELF files load (recursively: ldd resolves the
    whole tree). The builder stage's libraries are the base's, so paths outside /rootfs name the same
    files inside it."""
    found: set[str] = set()
    for i in range(0, len(paths), 200):
        out = subprocess.run(["ldd", *map(str, paths[i:i + 200])], capture_output=True, text=True).stdout
        found.update(m.group(1) for m in LDD_LINE.finditer(out))
    return found


def inside(root: Path, path: str) -> Path:
    return Path(path) if path.startswith(str(root) + "/") else root / path.lstrip("/")


def keep_set(root: Path, stdlib: Path) -> set[Path]:
    roots = [p for d in BIN_DIRS for p in (root / d).glob("*") if p.name in KEEP_PROGRAMS]
    for tree in (root / "opt/venv", stdlib, root / "usr/local/lib"):
        if tree.is_dir():
            roots += [p for p in tree.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    roots += [p for d in LIB_DIRS for p in (root / d).glob("*") if KEEP_LIBS.match(p.name)]
    elfs = [p.resolve() for p in roots if is_elf(p.resolve())]
    keep = {p for p in elfs}
    for lib in ldd(elfs):
        target = inside(root, lib)
        keep.add(target)
        keep.add(target.resolve() if target.exists() else target)
    # the libraries kept for dlopen and their own needs
    return keep | {inside(root, lib).resolve() for lib in ldd([p for p in keep if p.exists()])}


def prune(root: Path, stdlib: Path) -> list[str]:
    keep = keep_set(root, stdlib)
    removed: list[str] = []
    for tree in DROP_TREES:
        if (root / tree).exists():
            shutil.rmtree(root / tree)
            removed.append("/" + tree + "/")
    for d in BIN_DIRS:
        for p in sorted((root / d).glob("*")):
            if p.name not in KEEP_PROGRAMS and (p.is_symlink() or p.is_file()):
                p.unlink()
                removed.append("/" + str(p.relative_to(root)))
    for d in LIB_DIRS:
        for p in sorted((root / d).rglob("*")):
            if ".so" not in p.name or not (p.is_symlink() or p.is_file()):
                continue
            target = p.resolve()
            if target in keep or (not p.is_symlink() and not is_elf(p)):
                continue
            p.unlink()
            removed.append("/" + str(p.relative_to(root)))
    return removed


def dpkg_records(root: Path) -> tuple[list[str], list[str]]:
    """Packages with no file left (copyright aside) leave the status file; the others keep a .list of what
    remains. Returns (removed packages, packages with a shortened list)."""
    info = root / "var/lib/dpkg/info"
    status_path = root / "var/lib/dpkg/status"
    stanzas = [s for s in status_path.read_text().split("\n\n") if s.strip()]
    kept, gone, shortened = [], [], []
    for stanza in stanzas:
        name = re.search(r"^Package: (\S+)", stanza, re.M)
        arch = re.search(r"^Architecture: (\S+)", stanza, re.M)
        if name is None:
            kept.append(stanza)
            continue
        pkg = name.group(1)
        lists = [info / f"{pkg}.list", *([info / f"{pkg}:{arch.group(1)}.list"] if arch else [])]
        listing = next((p for p in lists if p.exists()), None)
        if listing is None:
            kept.append(stanza)
            continue
        paths = [ln for ln in listing.read_text().splitlines() if ln.strip()]
        remaining = [p for p in paths if os.path.lexists(root / p.lstrip("/"))]
        files = [p for p in remaining if not (root / p.lstrip("/")).is_dir() or (root / p.lstrip("/")).is_symlink()]
        if not [p for p in files if not p.startswith("/usr/share/doc/")]:
            gone.append(pkg)
            for p in info.glob(f"{listing.stem}.*"):
                p.unlink()
            continue
        if len(remaining) != len(paths):
            listing.write_text("".join(p + "\n" for p in remaining))
            md5 = listing.with_suffix(".md5sums")
            if md5.exists():
                left = {p.lstrip("/") for p in remaining}
                md5.write_text("".join(ln + "\n" for ln in md5.read_text().splitlines()
                                       if ln.split("  ", 1)[-1] in left))
            shortened.append(pkg)
        kept.append(stanza)
    status_path.write_text("\n\n".join(s.strip("\n") for s in kept) + "\n")
    return gone, shortened


def main() -> int:
    root = Path(sys.argv[1])
    stdlib = root / sys.argv[2].lstrip("/")
    removed = prune(root, stdlib)
    gone, shortened = dpkg_records(root)
    print(f"pruned {len(removed)} paths; dpkg: {len(gone)} packages gone ({' '.join(gone)}), "
          f"{len(shortened)} with files removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
