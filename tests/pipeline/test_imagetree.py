"""The one tree walker: verify's static pass and parity read the same paths."""

from __future__ import annotations

import hashlib
import os

from imagepipe.checks import imagefs
from imagepipe.image import filetree


def make(root):
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"x" * 3)
    os.chmod(root / "usr/bin/tool", 0o4755)  # noqa: S103 - a setuid file is what the walker must report
    (root / "bin").symlink_to("usr/bin")
    for skipped in ("proc", "sys", "dev"):
        (root / skipped).mkdir()
        (root / skipped / "inside").write_text("kernel")


def test_walk_is_sorted_and_skips_only_what_it_is_told(tmp_path):
    make(tmp_path)
    # top-down, each directory's entries sorted; a symlink to a directory is listed, not followed
    assert [p for p, _ in filetree.walk(tmp_path)] == [
        "/bin", "/dev", "/proc", "/sys", "/usr", "/dev/inside", "/proc/inside", "/sys/inside", "/usr/bin",
        "/usr/bin/tool"]
    assert [p for p, _ in imagefs.walk(tmp_path)] == ["/bin", "/usr", "/usr/bin", "/usr/bin/tool"]


def test_tree_entries(tmp_path):
    make(tmp_path)
    tree = filetree.tree(tmp_path)
    assert tree["/usr/bin/tool"] == filetree.Entry("file", "4755", os.getuid(), os.getgid(), 3,
                                                    hashlib.sha256(b"xxx").hexdigest())
    assert tree["/bin"].type == "link" and tree["/bin"].link == "usr/bin"
    assert tree["/usr"].type == "dir" and "/" not in tree


def _phantom(monkeypatch, root, phantom):
    """An entry readdir lists and lstat fails on (what kaniko's stray whiteout markers look like in storage)."""
    real = os.lstat

    def lstat(path, *a, **kw):
        if str(path) == str(root / phantom.lstrip("/")):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path, *a, **kw)
    monkeypatch.setattr(os, "lstat", lstat)


def test_an_unreadable_entry_is_named_not_raised(tmp_path, monkeypatch):
    make(tmp_path)
    (tmp_path / "usr/games").mkdir()
    _phantom(monkeypatch, tmp_path, "/usr/games")
    tree = filetree.tree(tmp_path)
    assert tree["/usr/games"].type == "unreadable (ENOENT)"
    scan = imagefs.scan(tmp_path, [])
    assert scan.unreadable == [("/usr/games", "ENOENT")]
    from imagepipe.checks.staticchecks import readable
    check = readable(scan)
    assert not check.passed and "/usr/games (ENOENT)" in check.detail


def test_parity_names_an_unreadable_entry(tmp_path, monkeypatch):
    from imagepipe.builders import parity

    make(tmp_path)
    good = filetree.tree(tmp_path)
    (tmp_path / "usr/games").mkdir()
    _phantom(monkeypatch, tmp_path, "/usr/games")
    bad = filetree.tree(tmp_path)
    diffs = parity.explain(parity.compare_trees(good, bad))
    assert [(d.where, d.rule) for d in diffs] == [("/usr/games", None)]
    assert diffs[0].kaniko["type"] == "unreadable (ENOENT)"
