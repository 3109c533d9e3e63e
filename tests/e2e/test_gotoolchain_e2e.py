"""Set-up gets a Go that builds our modules where the machine has none (or one too old): the toolchain the Go
module proxy serves as golang.org/toolchain, checked against ci/go-toolchain.sum, unpacked and runnable."""

from __future__ import annotations

import subprocess
import zipfile

import pytest

from imagepipe.cluster import gotoolchain
from imagepipe.errors import PipelineError

pytestmark = pytest.mark.e2e


@pytest.fixture
def no_go_here(monkeypatch):
    """This machine's Go hidden from the set-up; the proxy it would use kept (as $GOPROXY)."""
    proxies = gotoolchain.proxies()
    assert proxies, "this machine names a Go module proxy"
    monkeypatch.setenv("GOPROXY", ",".join(proxies))
    monkeypatch.setattr(gotoolchain, "candidates", lambda: [])
    return proxies


def test_without_go_the_pinned_toolchain_is_fetched_checked_and_runs(no_go_here, tmp_path):
    go = gotoolchain.ensure(tmp_path)
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                             env={"GOTOOLCHAIN": "local", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert version.returncode == 0, version.stderr
    assert gotoolchain.parse_version(version.stdout) >= gotoolchain.required()
    assert version.stdout.strip() == "go" + gotoolchain.pinned()[gotoolchain.goarch()][0].split("-go")[1].rsplit(
        ".", 1)[0]
    assert gotoolchain.ensure(tmp_path) == go, "cached: a second call fetches nothing"


def test_a_toolchain_whose_hash_differs_from_the_pin_is_refused(no_go_here, tmp_path, monkeypatch):
    def tampered(proxy: str, version: str, dest):  # what a proxy answering other bytes would give
        with zipfile.ZipFile(dest, "w") as z:
            z.writestr(f"golang.org/toolchain@{version}/bin/go", b"#!/bin/sh\necho not go\n")

    monkeypatch.setattr(gotoolchain, "download", tampered)
    with pytest.raises(PipelineError, match=r"hashes to h1:.*not h1:.* as ci/go-toolchain.sum pins: refusing it"):
        gotoolchain.ensure(tmp_path)
    assert not (tmp_path / "go").exists() or not any((tmp_path / "go").iterdir()), "nothing unpacked"


def test_no_go_and_no_proxy_is_one_line(no_go_here, tmp_path, monkeypatch):
    monkeypatch.setenv("GOPROXY", "off")
    with pytest.raises(PipelineError, match=r"no Go 1\.26\.8 or newer here and no Go module proxy to fetch one "
                                            r"from: set GOPROXY"):
        gotoolchain.ensure(tmp_path)
