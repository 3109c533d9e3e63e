"""Any number of checkouts on one machine: two clones run the main job one after the other and at the same
time, each against its own embedded registry and signature server (ports claimed per state directory), and
each promoted digest passes `attest verify` from its own checkout. `registry stop` in one never breaks the
other's next run."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pipeline_support import ROOT

pytestmark = pytest.mark.e2e


class Checkout:
    """A fresh clone of this commit, run as a user would run it (`python build/pipeline.py`, default state
    directory and ports). It shares this tree's venv (a symlink) so that it does not install it again."""

    def __init__(self, where: Path) -> None:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True)
        (where / ".venv").symlink_to(Path(sys.prefix))
        self.root = where

    def run(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.root / ".venv/bin/python"), str(self.root / "build/pipeline.py"), *args],
                              cwd=self.root, capture_output=True, text=True, timeout=timeout)
        print(self.root.name, proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return proc

    def promote_and_attest(self, tmp: Path) -> str:
        report = tmp / f"{self.root.name}-{len(list(tmp.glob('*.json')))}.json"
        proc = self.run("--no-provision", "--report", str(report))
        assert proc.returncode == 0, f"{self.root.name}: {proc.stderr}"
        image = json.loads(report.read_text())["image"]
        proc = self.run("attest", "verify", image)
        assert proc.returncode == 0, f"{self.root.name}: {proc.stderr}"
        return image

    def status(self) -> str:
        return self.run("registry", "status").stdout


@pytest.fixture
def checkouts(tmp_path):
    a, b = Checkout(tmp_path / "A"), Checkout(tmp_path / "B")
    yield a, b
    for c in (a, b):
        c.run("registry", "stop")


def test_two_checkouts_one_after_the_other_at_once_and_after_a_stop(checkouts, tmp_path, green):
    a, b = checkouts
    reports = tmp_path / "reports"
    reports.mkdir()
    image_a = a.promote_and_attest(reports)
    image_b = b.promote_and_attest(reports)
    registry_a, registry_b = image_a.split("/")[0], image_b.split("/")[0]
    assert registry_a != registry_b, "each checkout pushes to its own registry"
    for c in (a, b):
        status = c.status()
        assert "serving this state directory" in status and str(c.root / ".state") in status, status

    with ThreadPoolExecutor(2) as pool:  # both at the same moment
        images = list(pool.map(lambda c: c.promote_and_attest(reports), (a, b)))
    assert [i.split("/")[0] for i in images] == [registry_a, registry_b], "the same address on every run"

    assert a.run("registry", "stop").returncode == 0
    assert b.promote_and_attest(reports).split("/")[0] == registry_b, "A's stop changes nothing for B"
    assert "not running" in a.status()
    assert a.promote_and_attest(reports).split("/")[0] == registry_a, "A gets its own port back"


def test_a_named_port_that_is_taken_is_one_sentence(checkouts, tmp_path, green):
    a, b = checkouts
    assert a.run("registry", "start").returncode == 0
    port = int((a.root / ".state/registry/port").read_text())
    proc = b.run("push", "--no-provision", "--embedded-port", str(port))
    assert proc.returncode == 17, proc.stderr
    line = proc.stderr.strip().splitlines()[0]
    pid = int((a.root / ".state/registry/registry.pid").read_text())  # what A started, as A recorded it
    assert line == (f"error: [registry] port {port} is taken by docker-registry (pid {pid}, serving "
                    f"{a.root / '.state'}): pass another --embedded-port, or omit --embedded-port to let this "
                    "checkout choose a free one"), line
