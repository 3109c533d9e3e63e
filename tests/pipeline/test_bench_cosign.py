"""What cosign's signature and attestations cost: promote's report (`cosign.seconds`, per digest), the timed
call both promote and the bench use (cosigning.sign_and_attest), and the bench's row beside verify's
seconds (benchmark.figures.cosign_metrics, benchmark.cosignbench): pure, no binaries, no registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imagepipe.benchmark import cosignbench
from imagepipe.benchmark.figures import cosign_metrics
from imagepipe.checks.types import Check, VerifyResult
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline
from imagepipe.host.profile import HostProfile
from imagepipe.pipeline.stages import promote
from imagepipe.services import sigstore
from imagepipe.supplychain import cosigning

DIGEST = "sha256:" + "a" * 64
KEY = cosigning.CosignKey("/state/cosign/cosign.key", Path("/state/cosign/cosign.pub"), own=True)


def test_the_bench_row_is_cosigns_seconds_against_verifys_of_the_same_run():
    (row,) = cosign_metrics({"verify_s": 7.14, "cosign": {"seconds": 1.234, "attestations": 3}})
    assert (row.name, row.unit, row.ours, row.baseline) == ("sign and attest (cosign)", "s", 1.23, 7.1)
    assert row.ratio == "0.17" and row.target == "<= 0.25x verify" and row.met is True
    assert "3 attest" in row.note and "baseline column: verify" in row.note
    (slow,) = cosign_metrics({"verify_s": 4.0, "cosign": {"seconds": 1.5, "attestations": 3}})
    assert slow.met is False and slow.ratio == "0.38"


def test_no_cosign_figure_is_no_row_and_a_failed_one_is_a_row_naming_its_cause():
    assert cosign_metrics({"verify_s": 7.0}) == []  # figures from before the row: none, not a zero
    (row,) = cosign_metrics({"verify_s": 7.0, "cosign": {"error": "cosign signing r@sha256:a failed (exit 1)"}})
    assert row.ours == "n/a" and row.baseline == 7.0 and row.ratio == "-" and row.met is False
    assert row.note == "not measured: cosign signing r@sha256:a failed (exit 1)"


def test_the_report_names_each_digest_signed_with_the_seconds_cosign_took_for_it():
    index, amd64 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    entry = promote.cosign_report(KEY, {index: 0.4049, amd64: 2.3151})
    assert entry["signed"] == [index, amd64]  # the index first, as before
    assert entry["seconds"] == {index: 0.4, amd64: 2.32}
    assert entry["key"] == "the pipeline's own (<state>/cosign/cosign.key)" and entry["tlog"] is False
    assert entry["public_key"] == "/state/cosign/cosign.pub"
    assert entry["attestations"] == list(cosigning.PREDICATE_TYPES)
    json.dumps(entry)  # the report is JSON


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    seen: list[tuple[str, ...]] = []
    monkeypatch.setattr(sigstore, "cosign", lambda: seen.append(("cosign binary",)) or Path("/bin/cosign"))
    monkeypatch.setattr(cosigning, "sign", lambda key, ref, reg: seen.append(("sign", ref)))

    def attest(key: cosigning.CosignKey, ref: str, predicate_type: str, predicate: dict[str, Any],
               reg: cmdline.CosignRegistry, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        seen.append(("attest", ref, predicate_type))
    monkeypatch.setattr(cosigning, "attest", attest)
    return seen


def test_sign_and_attest_times_cosigns_calls_only_and_leaves_no_predicate_files(tmp_path, calls):
    ticks = iter([10.0, 12.5])
    work = tmp_path / "work"
    seconds = cosigning.sign_and_attest(KEY, f"r/x@{DIGEST}", [("t1", {}), ("t2", {})], cmdline.CosignRegistry(),
                                        work, clock=lambda: next(ticks))
    assert seconds == 2.5
    # the binary resolved (built, on a machine's first use) before the clock starts
    assert calls == [("cosign binary",), ("sign", f"r/x@{DIGEST}"), ("attest", f"r/x@{DIGEST}", "t1"),
                     ("attest", f"r/x@{DIGEST}", "t2")]
    assert not work.exists()


def test_a_refused_attestation_still_removes_the_predicate_files(tmp_path, calls, monkeypatch):
    def refuse(*_a: object) -> None:
        (tmp_path / "work").mkdir()
        raise PipelineError("cosign attesting failed", stage="promote")
    monkeypatch.setattr(cosigning, "attest", refuse)
    with pytest.raises(PipelineError):
        cosigning.sign_and_attest(KEY, f"r/x@{DIGEST}", [("t1", {})], cmdline.CosignRegistry(), tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_promotes_three_predicates_are_the_sbom_the_provenance_and_verifys():
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicate": {"buildDefinition": {}}})
    result = VerifyResult(f"r/x@{DIGEST}", checks=[Check("size", True, 101.5, 150.0)], seconds=7.0)
    predicates = promote.cosign_predicates(('{"bomFormat": "CycloneDX"}', statement), result, digest=DIGEST,
                                           where="host")
    assert [t for t, _ in predicates] == list(cosigning.PREDICATE_TYPES)
    assert predicates[0][1] == {"bomFormat": "CycloneDX"} and predicates[1][1] == {"buildDefinition": {}}
    assert predicates[2][1]["image"]["digest"] == DIGEST and predicates[2][1]["passed"] is True


def test_the_bench_signs_its_verified_digest_in_its_registry_through_promotes_code(tmp_path, monkeypatch):
    got: dict[str, Any] = {}
    monkeypatch.setattr(cosigning, "pipeline_key", lambda state: KEY)
    monkeypatch.setattr(cosignbench, "documents", lambda *_a: ('{"bomFormat": "CycloneDX"}',
                                                               json.dumps({"predicate": {}})))

    def timed(key: cosigning.CosignKey, ref: str, predicates: list[tuple[str, dict[str, Any]]],
              reg: cmdline.CosignRegistry, work: Path) -> float:
        got.update(key=key, ref=ref, types=[t for t, _ in predicates], reg=reg)
        return 1.75
    monkeypatch.setattr(cosigning, "sign_and_attest", timed)
    verify = VerifyResult(f"127.0.0.1:5999/bench-ours@{DIGEST}", checks=[Check("size", True)], seconds=7.0)
    figure = cosignbench.measure(HostProfile(), tmp_path, tmp_path / "bench", image="127.0.0.1:5999/bench-ours",
                                 digest=DIGEST, verify=verify, built=(1.0, 2.0))
    assert figure == {"seconds": 1.75, "attestations": 3}
    assert got["key"] is KEY and got["ref"] == f"127.0.0.1:5999/bench-ours@{DIGEST}"
    assert got["types"] == list(cosigning.PREDICATE_TYPES)
    assert got["reg"].flags() == ["--allow-insecure-registry", "--allow-http-registry"]  # as promote's, there


def test_a_bench_whose_cosign_fails_keeps_the_cause_for_its_row(tmp_path, monkeypatch):
    def no_go(state: Path) -> cosigning.CosignKey:
        raise PipelineError("no Go toolchain to build cosign", stage="test")
    monkeypatch.setattr(cosigning, "pipeline_key", no_go)
    figure = cosignbench.measure(HostProfile(), tmp_path, tmp_path, image="r/bench-ours", digest=DIGEST,
                                 verify=VerifyResult("r"), built=(0.0, 0.0))
    assert figure == {"error": "no Go toolchain to build cosign"}


def test_the_bench_attests_an_sbom_of_verifys_inventory_and_a_provenance_of_its_cold_build(monkeypatch):
    from imagepipe.host import git, podman
    from imagepipe.supplychain.inventory import DebPackage, Inventory, PyDist

    monkeypatch.setattr(podman, "image", lambda *_a, **_kw: None)  # the base's digest unknown: left out
    monkeypatch.setattr(git, "provenance_source", lambda: ("git+file:///src", "c0ffee"))
    contents = Inventory((DebPackage("libpq5", "15.8-0+deb12u1", "amd64", "status"),),
                         (PyDist("fastapi", "0.115.0", "/opt/venv/fastapi-0.115.0.dist-info"),))
    verify = VerifyResult(f"r/bench-ours@{DIGEST}", checks=[Check("size", True)], inventory=contents)
    bom, statement = cosignbench.documents(HostProfile(), "127.0.0.1:5999/bench-ours", DIGEST, verify,
                                           (1_780_000_000.0, 1_780_000_028.5))
    names = {c["name"] for c in json.loads(bom)["components"]}
    assert {"libpq5", "fastapi"} <= names
    stmt = json.loads(statement)
    assert stmt["subject"][0]["digest"] == {"sha256": "a" * 64}
    run = stmt["predicate"]["runDetails"]["metadata"]
    assert run == {"invocationId": "bench", "startedOn": "2026-05-28T20:26:40Z",
                   "finishedOn": "2026-05-28T20:27:08Z"}
