"""Report rendering: JSON shape, JUnit XML, terminal table."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from imagepipe.checks.verifier import Check, VerifyResult
from imagepipe.pipeline import report


def sample() -> VerifyResult:
    return VerifyResult(image="127.0.0.1:5000/r@sha256:ab", seconds=1.5, checks=[
        Check("size", True, 137.0, 150.0, "137.0 MB"),
        Check("user", False, "root 0", "appuser 1001", "whoami: root"),
    ])


def test_json_shape(tmp_path):
    data = report.as_dict(sample(), builder="buildah")
    path = tmp_path / "r.json"
    report.write_json(path, data)
    loaded = json.loads(path.read_text())
    assert loaded["passed"] is False and loaded["builder"] == "buildah"
    assert loaded["image"] == "127.0.0.1:5000/r@sha256:ab"
    assert [c["id"] for c in loaded["checks"]] == ["size", "user"]
    assert set(loaded["checks"][0]) == {"id", "passed", "value", "limit", "detail", "seconds"}


def test_junit_has_one_case_per_check_and_failures(tmp_path):
    root = ET.fromstring(report.junit(sample(), builder="buildah"))
    assert root.tag == "testsuite" and root.get("tests") == "2" and root.get("failures") == "1"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["user"].find("failure") is not None and cases["size"].find("failure") is None


def test_table_lists_failures_and_verdict():
    text = report.table(sample())
    assert "user   FAIL" in text and "FAILED (1 of 2 checks)" in text
    assert "  user: whoami: root" in text
