"""The `vulnerabilities` check end to end: every Python distribution and Debian package of the image against
OSV advisories (the real PyPA records of tests/fixtures/osv/pypa, the suite's --vuln-db), with the real
build, registry and verify. A vulnerable pin fails verify and moves nothing; a stale database stops the
run before anything is built; with no source the check fails saying how to give one."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
VULN_DB = ROOT / "tests/fixtures/osv/pypa"
# cryptography 41.0.5 (PyJWT[crypto]'s only dependency, needing >= 3.4), affected by PYSEC-2023-254 (fixed
# in 41.0.6): the hashes of its Linux wheels and sdist on PyPI, for --require-hashes
CRYPTOGRAPHY_41 = "cryptography==41.0.5 \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in (
    "7d208c21e47940369accfc9e85f0de7693d9a5d843c2509b3846b2db170dfd20",  # manylinux_2_28_x86_64
    "e270c04f4d9b5671ebcc792b3ba5d4488bf7c42c3c241a3748e2599776f29696",  # manylinux_2_17_x86_64
    "ec3b055ff8f1dce8e6ef28f626e0972981475173d7973d63f271b29c8a2897da",  # manylinux_2_28_aarch64
    "d38e6031e113b7421db1de0c1b1f7739564a88f1684c6b89234fbf6c11b75147",  # manylinux_2_17_aarch64
    "392cb88b597247177172e02da6b7a63deeff1937fa6fec3bbf902ebd75d97ec7",  # the sdist
)) + "\n"


def failed(report: dict) -> list[str]:
    return [c["id"] for c in report["checks"] if not c["passed"]]


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["id"] == name)


def test_a_clean_image_passes_naming_its_sources_and_their_date(green):
    _, report, _ = green
    vulns = check(report, "vulnerabilities")
    assert vulns["passed"] is True, vulns
    assert re.match(rf"OSV: \d+ Python distributions and \d+ Debian packages against OSV database {VULN_DB} "
                    r"as of 2024-07-11, 10 records: 0 with a fix; bookworm-security index: 0 of \d+ Debian "
                    "packages with a pending fix", vulns["detail"]), vulns["detail"]
    dists = int(vulns["detail"].split()[1])
    assert dists >= 30  # fastapi, starlette, uvicorn, pydantic, psycopg, openai, mcp and their dependencies


def test_a_vulnerable_pin_fails_only_vulnerabilities_naming_the_finding_and_latest_stays(pipeline, green, tmp_path):
    before = pipeline.digest("latest")
    ctx = tmp_path / "backend"
    shutil.copytree(ROOT / "backend", ctx, ignore=shutil.ignore_patterns("__pycache__"))
    reqs = ctx / "requirements.txt"
    pinned, n = re.subn(r"^cryptography==[0-9.]+ \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", CRYPTOGRAPHY_41,
                        reqs.read_text(), flags=re.M)
    assert n == 1, "requirements.txt pins cryptography with its hashes"
    reqs.write_text(pinned)
    proc = pipeline.run("--no-provision", "--context", str(ctx), "--report", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert proc.returncode == 1, proc.stderr
    assert failed(report) == ["vulnerabilities"]
    vulns = check(report, "vulnerabilities")
    assert vulns["value"] == ["PYSEC-2023-254 cryptography 41.0.5 -> 41.0.6"]
    assert "1 with a fix (PYSEC-2023-254 cryptography 41.0.5 -> 41.0.6)" in vulns["detail"]
    assert pipeline.digest("latest") == before


def test_a_stale_database_stops_the_run_in_one_line_before_anything_is_built(pipeline, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "IMAGEPIPE_VULN_DB_MAX_AGE"}
    proc = pipeline.run("--no-provision", "--repo", "todo-backend-stale", "--vuln-db", str(VULN_DB), env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.fullmatch(rf"error: --vuln-db {VULN_DB} is \d+ days old \(its newest record was modified "
                        r"2024-07-11\), over the 7-day limit: download fresh exports \(.+\), or accept this one "
                        r"with --vuln-db-max-age \d+", lines[0]), lines[0]
    assert "==> build" not in proc.stdout and "==> provision" not in proc.stdout
    assert pipeline.digest("latest", repo="todo-backend-stale") is None


def test_with_no_source_the_check_fails_in_one_line_saying_how_to_give_one(pipeline, green, tmp_path):
    """Whether or not this machine reaches api.osv.dev: the API verify asks is a loopback port nothing
    listens on (IMAGEPIPE_OSV_API), so it cannot be reached, and no database is given."""
    _, report, _ = green
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        api = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEPIPE_VULN_DB")} | {"IMAGEPIPE_OSV_API": api}
    proc = pipeline.run("verify", report["image"], "--report", str(tmp_path / "r.json"), env=env)
    verified = json.loads((tmp_path / "r.json").read_text())
    assert proc.returncode == 1, proc.stderr
    assert failed(verified) == ["vulnerabilities"]
    vulns = check(verified, "vulnerabilities")
    why = vulns["value"][-1]
    assert why.startswith(f"no advisory source: the OSV API ({api}) cannot be reached (ConnectionError)")
    assert why.endswith("and no --vuln-db was given: pass --vuln-db DIR|ZIP with OSV's PyPI and Debian exports "
                        "(https://osv-vulnerabilities.storage.googleapis.com/{PyPI,Debian}/all.zip), or set "
                        "IMAGEPIPE_VULN_DB")
    assert vulns["detail"].startswith(why)
