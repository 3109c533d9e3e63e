"""backend/imagebuild/prune_rootfs.py's dpkg bookkeeping on a small fake root: a package whose files are all
gone leaves the status file (its copyright stays on disk), one that lost some files keeps a list of what
remains, an untouched one is left as it was."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "backend/imagebuild/prune_rootfs.py"
spec = importlib.util.spec_from_file_location("prune_rootfs", SCRIPT)
assert spec and spec.loader
prune_rootfs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prune_rootfs)


def stanza(name: str) -> str:
    return f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n"


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    files = {
        "tar": ["/usr/bin/tar", "/usr/share/doc/tar/copyright"],
        "coreutils": ["/usr/bin/id", "/usr/bin/whoami", "/usr/bin/shred", "/usr/share/doc/coreutils/copyright"],
        "dash": ["/usr/bin/dash"],
    }
    for pkg, paths in files.items():
        (info / f"{pkg}.list").write_text("/.\n/usr\n/usr/bin\n" + "".join(p + "\n" for p in paths))
        (info / f"{pkg}.md5sums").write_text("".join(f"0123  {p.lstrip('/')}\n" for p in paths))
        for p in paths:
            (root / p.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (root / p.lstrip("/")).write_text(pkg)
    (root / "var/lib/dpkg/status").write_text("\n".join(stanza(p) for p in files))
    return root


def test_records_follow_what_remains(tmp_path):
    root = make_root(tmp_path)
    (root / "usr/bin/tar").unlink()  # tar: only its copyright is left
    (root / "usr/bin/shred").unlink()  # coreutils: partly pruned
    gone, shortened = prune_rootfs.dpkg_records(root)
    assert gone == ["tar"] and shortened == ["coreutils"]
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: tar" not in status and "Package: coreutils" in status and "Package: dash" in status
    info = root / "var/lib/dpkg/info"
    assert not (info / "tar.list").exists() and not (info / "tar.md5sums").exists()
    assert (root / "usr/share/doc/tar/copyright").exists(), "copyright files stay"
    listed = (info / "coreutils.list").read_text().splitlines()
    assert "/usr/bin/shred" not in listed and "/usr/bin/id" in listed
    assert "usr/bin/shred" not in (info / "coreutils.md5sums").read_text()
    assert (info / "dash.list").read_text().count("\n") == 4, "untouched"


def test_ldd_lines_are_parsed():
    sample = ("\tlinux-vdso.so.1 (0x00007ffd)\n\tlibpq.so.5 => /lib/x86_64-linux-gnu/libpq.so.5 (0x00007f1)\n"
              "\t/lib64/ld-linux-x86-64.so.2 (0x00007f2)\n\tlibmissing.so.1 => not found\n")
    assert {m.group(1) for m in prune_rootfs.LDD_LINE.finditer(sample)} == {
        "/lib/x86_64-linux-gnu/libpq.so.5", "/lib64/ld-linux-x86-64.so.2"}
