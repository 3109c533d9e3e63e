"""The one tree walker: verify's static pass and parity read the same paths."""

from __future__ import annotations

import hashlib
import os

from imagepipe import imagetree
from imagepipe.checks import imagefs


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
    assert [p for p, _ in imagetree.walk(tmp_path)] == [
        "/bin", "/dev", "/proc", "/sys", "/usr", "/dev/inside", "/proc/inside", "/sys/inside", "/usr/bin",
        "/usr/bin/tool"]
    assert [p for p, _ in imagefs.walk(tmp_path)] == ["/bin", "/usr", "/usr/bin", "/usr/bin/tool"]


def test_tree_entries(tmp_path):
    make(tmp_path)
    tree = imagetree.tree(tmp_path)
    assert tree["/usr/bin/tool"] == imagetree.Entry("file", "4755", os.getuid(), os.getgid(), 3,
                                                    hashlib.sha256(b"xxx").hexdigest())
    assert tree["/bin"].type == "link" and tree["/bin"].link == "usr/bin"
    assert tree["/usr"].type == "dir" and "/" not in tree
