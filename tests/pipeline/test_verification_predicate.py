"""The verification attestation's predicate (supplychain.verification) and how `attest verify` reads
cosign's answer (supplychain.cosigning.statement): pure, no binaries."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from imagepipe.checks.types import Check, VerifyResult
from imagepipe.supplychain import cosigning, verification

CONTRACT = Path(__file__).resolve().parents[3] / "shared/spec/backend-dockerfile.contract.md"


def test_the_predicate_records_each_check_where_it_ran_the_contract_the_advisories_and_the_duration():
    result = VerifyResult("r/x@sha256:ab", checks=[
        Check("size", True, 101.5, 150.0),
        Check("vulnerabilities", True, [], [], "ok", facts={"advisory_source": "OSV database /db",
                                                            "advisories_as_of": "2026-12-01"}),
        Check("user", True, "appuser", "appuser"),
    ], seconds=61.26, architecture="amd64")
    assert verification.predicate(result, digest="sha256:ab", where="pod", verifier_version="0.1.0") == {
        "image": {"digest": "sha256:ab", "architecture": "amd64", "emulated": False},
        "verifier": {"name": "imagepipe", "version": "0.1.0"},
        "contract": {"name": "backend-dockerfile.contract.md", "version": "1.0.0", "date": "2026-01-18"},
        "passed": True,
        "checks": [
            {"id": "size", "result": "pass", "value": 101.5, "limit": 150.0, "where": "pod"},
            {"id": "vulnerabilities", "result": "pass", "value": [], "limit": [], "where": "pod"},
            {"id": "user", "result": "pass", "value": "appuser", "limit": "appuser", "where": "pod"},
        ],
        "advisories": {"source": "OSV database /db", "asOf": "2026-12-01"},
        "durationSeconds": 61.3,
    }


def test_a_failed_check_is_recorded_as_failed_and_the_whole_as_not_passed():
    result = VerifyResult("r/x@sha256:ab", checks=[Check("size", False, 160.2, 150.0), Check("user", True)])
    got = verification.predicate(result, digest="sha256:ab", where="host", verifier_version="0.1.0")
    assert got["passed"] is False
    assert [(c["id"], c["result"]) for c in got["checks"]] == [("size", "fail"), ("user", "pass")]
    assert got["advisories"] == {"source": "", "asOf": ""}


def test_a_value_json_cannot_hold_is_kept_as_its_text():
    result = VerifyResult("r/x@sha256:ab", checks=[Check("odd", True, Path("/x"), None)])
    got = verification.predicate(result, digest="sha256:ab", where="host", verifier_version="0.1.0")
    assert got["checks"][0]["value"] == "/x" and got["checks"][0]["limit"] is None


def test_the_recorded_contract_version_is_the_contracts_newest():
    history = CONTRACT.read_text().split("## Version History", 1)[1]
    newest = re.findall(r"^- v(\d+\.\d+\.\d+) \((\d{4}-\d\d-\d\d)\)", history, re.M)[-1]
    assert newest == (verification.CONTRACT["version"], verification.CONTRACT["date"])


def test_an_envelope_line_of_verify_attestation_is_read_as_its_in_toto_statement():
    statement = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": cosigning.VERIFICATION_TYPE,
                 "subject": [{"name": "r/x", "digest": {"sha256": "ab"}}], "predicate": {"passed": True}}
    line = json.dumps({"payloadType": "application/vnd.in-toto+json",
                       "payload": base64.b64encode(json.dumps(statement).encode()).decode(), "signatures": []})
    assert cosigning.statement(line) == statement
