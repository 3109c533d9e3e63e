"""The Debian readers (python-debian): dpkg's status and status.d, the security index, version order."""

from __future__ import annotations

import os
import time

import pytest

from imagepipe.checks import debsec
from imagepipe.supplychain import inventory

STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Version: 3.0.15-1~deb12u1
Description: TLS
 continued line: with a colon

Package: gone
Status: deinstall ok config-files
Version: 1.0

Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.2.13.dfsg-1
"""


@pytest.mark.parametrize(("a", "b", "lt"), [
    ("1.0", "1.1", True), ("1.1", "1.0", False), ("1.0~rc1", "1.0", True), ("1:0.1", "2.0", False),
    ("3.0.15-1~deb12u1", "3.0.15-1~deb12u2", True), ("2.36-9+deb12u9", "2.36-9+deb12u10", True),
    ("1.0", "1.0", False),
])
def test_debian_version_order(a, b, lt):
    assert debsec.version_lt(a, b) is lt


def test_status_and_status_d(tmp_path):
    dpkg = tmp_path / "var/lib/dpkg"
    (dpkg / "status.d").mkdir(parents=True)
    (dpkg / "status").write_text(STATUS)
    (dpkg / "status.d/python").write_text("Package: python3.11\nVersion: 3.11.2-6+deb12u6\nArchitecture: amd64\n")
    found = {(p.name, p.version, p.source) for p in inventory.debian_packages(tmp_path)}
    assert found == {("libssl3", "3.0.15-1~deb12u1", "status"), ("zlib1g", "1:1.2.13.dfsg-1", "status"),
                     ("python3.11", "3.11.2-6+deb12u6", "status.d/python")}


def test_security_index_keeps_the_newest_and_finds_pending_fixes(tmp_path):
    cache = tmp_path / "bookworm-security-Packages-amd64"
    cache.write_text("Package: libssl3\nVersion: 3.0.15-1~deb12u1\n\nPackage: libssl3\nVersion: 3.0.17-1~deb12u2\n\n"
                     "Package: zlib1g\nVersion: 1:1.2.13.dfsg-1\n")
    os.utime(cache, (time.time(), time.time()))  # fresh: no download
    index = debsec.security_index(tmp_path)
    assert index == {"libssl3": "3.0.17-1~deb12u2", "zlib1g": "1:1.2.13.dfsg-1"}
    installed = {"libssl3": "3.0.15-1~deb12u1", "zlib1g": "1:1.2.13.dfsg-1", "bash": "5.2.15-2+b7"}
    assert debsec.pending_fixes(installed, index) == ["libssl3 3.0.15-1~deb12u1 -> 3.0.17-1~deb12u2"]


def test_the_security_index_is_the_architecture_s_own(monkeypatch):
    monkeypatch.delenv("IMAGEPIPE_DEBIAN_SECURITY_INDEX", raising=False)
    assert debsec.index_url("arm64").endswith("/main/binary-arm64/Packages.xz")
    assert debsec.index_url().endswith("/main/binary-amd64/Packages.xz")
    monkeypatch.setenv("IMAGEPIPE_DEBIAN_SECURITY_INDEX", "http://mirror.example/{arch}/Packages.xz")
    assert debsec.index_url("arm64") == "http://mirror.example/arm64/Packages.xz"
