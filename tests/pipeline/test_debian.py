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


def _index_server(fail_first: int, *, compressed: bool = True):
    """A local mirror whose first `fail_first` connections are dropped before any answer, as a lookup or a
    connection that fails once looks to the client; then it serves a one-package index (xz, as the archive
    serves it, or plain, as a recorded copy)."""
    import http.server
    import lzma
    import threading

    plain = b"Package: libssl3\nVersion: 3.0.17-1~deb12u2\n"
    body = lzma.compress(plain) if compressed else plain
    seen = {"n": 0}

    class Mirror(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen["n"] += 1
            if seen["n"] <= fail_first:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.mark.parametrize(("compressed", "fail_first"), [(True, 1), (False, 0)],
                         ids=["xz-after-a-dropped-fetch", "plain"])
def test_the_index_is_read_xz_or_plain_and_fetched_again_when_dropped(tmp_path, monkeypatch, compressed, fail_first):
    """Packages.xz as the archive serves it, fetched again when a connection is dropped; or a recorded copy's
    plain Packages (what the cluster tests serve their pods)."""
    server, seen = _index_server(fail_first=fail_first, compressed=compressed)
    monkeypatch.setattr(debsec, "FETCH_ATTEMPTS", 3)
    monkeypatch.setenv("IMAGEPIPE_DEBIAN_SECURITY_INDEX", f"http://127.0.0.1:{server.server_port}/{{arch}}")
    try:
        assert debsec.security_index(tmp_path) == {"libssl3": "3.0.17-1~deb12u2"}
    finally:
        server.shutdown()
        server.server_close()
    assert seen["n"] == fail_first + 1


def test_an_index_that_cannot_be_fetched_fails_vulnerabilities_alone_naming_it(tmp_path, monkeypatch):
    """The tree's other checks do not depend on it: only the check whose source it is fails, with its line."""
    from pathlib import Path

    from imagepipe.checks import staticchecks
    from imagepipe.checks.types import VerifyOptions

    server, _ = _index_server(fail_first=99)
    monkeypatch.setenv("IMAGEPIPE_DEBIAN_SECURITY_INDEX", f"http://127.0.0.1:{server.server_port}/{{arch}}")
    monkeypatch.setattr(debsec.time, "sleep", lambda _s: None)  # the retries' waits
    contents = inventory.Inventory(debs=(inventory.DebPackage("libssl3", "3.0.15-1~deb12u1", "amd64", "status",
                                                              "openssl", "3.0.15-1~deb12u1"),), dists=(),
                                  release="12")
    records = Path(__file__).resolve().parents[1] / "fixtures/osv/pypa"
    opt = VerifyOptions(state_dir=tmp_path, vuln_db=records, vuln_db_max_age_days=3650)
    try:
        check = staticchecks.vulnerabilities(contents, "r/x@sha256:1", opt)
    finally:
        server.shutdown()
        server.server_close()
    assert check.id == "vulnerabilities" and check.passed is False
    assert check.detail.startswith("cannot fetch the Debian security index (")
    assert check.detail.endswith("check network access to the Debian mirror or set IMAGEPIPE_DEBIAN_SECURITY_INDEX")
