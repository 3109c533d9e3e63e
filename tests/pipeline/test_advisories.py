"""Where verify's advisories come from (imagepipe.checks.advisories): a database by path and its age limit,
the OSV API's request and answer shapes, the scan of an inventory, and no source at all. Records are the
real PyPA ones of tests/fixtures/osv/pypa (CC-BY 4.0)."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from imagepipe.checks import advisories, osv
from imagepipe.errors import UsageError
from imagepipe.supplychain.inventory import DebPackage, Inventory, PyDist

RECORDS = Path(__file__).resolve().parents[1] / "fixtures/osv/pypa"
NEWEST = datetime(2024, 7, 11, 17, 21, 37, 216928, tzinfo=UTC)  # PYSEC-2024-60's `modified`


def inventory(*dists: tuple[str, str]) -> Inventory:
    return Inventory(debs=(DebPackage("libssl3", "3.0.15-1~deb12u1+b1", "amd64", "status", "openssl",
                                      "3.0.15-1~deb12u1"),), release="12",
                     dists=tuple(PyDist(n, v, f"/opt/venv/lib/python3.11/site-packages/{n}-{v}.dist-info")
                                 for n, v in dists))


@pytest.fixture(autouse=True)
def fresh_cache():
    advisories._opened.clear()
    yield
    advisories._opened.clear()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_a_database_within_its_age_limit_opens_and_names_its_date():
    source = advisories.open_database(RECORDS, max_age_days=8, now=datetime(2024, 7, 18, tzinfo=UTC))
    assert source.as_of == NEWEST and source.db is not None and source.db.count == 10
    assert source.describe() == f"OSV database {RECORDS} as of 2024-07-11, 10 records"


def test_a_stale_database_is_refused_in_one_line_naming_the_way_to_accept_it():
    with pytest.raises(UsageError) as e:
        advisories.open_database(RECORDS, max_age_days=7, now=datetime(2026, 12, 2, tzinfo=UTC))
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"--vuln-db {RECORDS} is 873 days old (its newest record was modified 2024-07-11), "
                              "over the 7-day limit: download fresh exports (")
    assert message.endswith("or accept this one with --vuln-db-max-age 874")


def test_a_path_without_records_is_a_usage_error_naming_it(tmp_path):
    with pytest.raises(UsageError) as e:
        advisories.open_database(tmp_path, max_age_days=7)
    assert str(e.value) == (f"--vuln-db: {tmp_path} holds no OSV record (expected an all.zip export, or "
                            ".json/.yaml records)")


def test_packages_are_pypi_names_and_debian_source_packages():
    pkgs, unscannable = advisories.packages(inventory(("idna", "3.6"), ("PyJWT", "2.15.1")))
    assert pkgs == [osv.Package("Debian:12", "openssl", "3.0.15-1~deb12u1"), osv.Package("PyPI", "PyJWT", "2.15.1"),
                    osv.Package("PyPI", "idna", "3.6")]
    assert unscannable == []


def test_a_distribution_without_a_version_cannot_be_scanned_and_fails():
    source = advisories.open_database(RECORDS, max_age_days=10**5)
    assert source.db is not None
    found = advisories.scan(inventory(("idna", "")), db_path=RECORDS, max_age_days=10**5, ignores=None)
    assert found.unscannable == ("/opt/venv/lib/python3.11/site-packages/idna-.dist-info: no name or version in "
                                 "its METADATA",)
    assert found.passed is False


def test_a_vulnerable_pin_fails_naming_id_package_installed_and_fixed():
    found = advisories.scan(inventory(("idna", "3.6"), ("starlette", "1.10.0")), db_path=RECORDS,
                            max_age_days=10**5, ignores=None)
    assert [str(f) for f in found.failing] == ["PYSEC-2024-60 idna 3.6 -> 3.7"]
    assert found.passed is False and found.scanned == 3
    assert list(advisories.values(found)) == ["PYSEC-2024-60 idna 3.6 -> 3.7"]
    assert advisories.summary(found, inventory(("idna", "3.6"), ("starlette", "1.10.0"))).startswith(
        f"OSV: 2 Python distributions and 1 Debian packages against OSV database {RECORDS} as of 2024-07-11, "
        "10 records: 1 with a fix (PYSEC-2024-60 idna 3.6 -> 3.7)")


def test_a_clean_inventory_passes_and_names_the_source():
    found = advisories.scan(inventory(("idna", "3.20")), db_path=RECORDS, max_age_days=10**5, ignores=None)
    assert found.passed is True and found.failing == ()
    assert f"against OSV database {RECORDS} as of 2024-07-11" in advisories.summary(found, inventory(("idna", "3.20")))


def test_a_reviewed_ignore_lets_a_finding_pass_until_its_expiry(tmp_path):
    listed = tmp_path / "osv-ignore.toml"
    listed.write_text('[[ignore]]\nid = "PYSEC-2024-60"\nreason = "idna.encode is never given untrusted input"\n'
                      "expires = 2027-01-31\n")
    kept = advisories.scan(inventory(("idna", "3.6")), db_path=RECORDS, max_age_days=10**5, ignores=listed,
                           today=date(2026, 12, 2))
    assert kept.passed is True
    assert kept.notes == ("PYSEC-2024-60 ignored until 2027-01-31: idna.encode is never given untrusted input",)
    expired = advisories.scan(inventory(("idna", "3.6")), db_path=RECORDS, max_age_days=10**5, ignores=listed,
                              today=date(2027, 2, 1))
    assert expired.passed is False and [f.id for f in expired.failing] == ["PYSEC-2024-60"]


def test_a_malformed_ignore_list_is_refused_before_anything_runs(tmp_path):
    listed = tmp_path / "osv-ignore.toml"
    listed.write_text('[[ignore]]\nid = "PYSEC-2024-60"\n')
    with pytest.raises(UsageError) as e:
        advisories.preflight(None, max_age_days=7, ignores=listed)
    assert str(e.value) == (f"the ignore list {listed}: entry 1 needs id, a reason and an expires date "
                            "(YYYY-MM-DD)")


def test_no_source_at_all_fails_the_scan_in_one_line_saying_how_to_give_one():
    found = advisories.scan(inventory(("idna", "3.20")), db_path=None, max_age_days=7, ignores=None,
                            api=closed_port())
    assert found.source is None and found.passed is False
    assert "\n" not in found.why
    assert found.why.startswith("no advisory source: the OSV API (")
    assert "cannot be reached (ConnectionError) and no --vuln-db was given: pass --vuln-db DIR|ZIP" in found.why
    assert found.why.endswith("or set IMAGEPIPE_VULN_DB")


def test_the_batch_query_names_each_package_once_with_its_ecosystem():
    pkgs, _ = advisories.packages(inventory(("idna", "3.6")))
    assert advisories.batch_query(pkgs) == {"queries": [
        {"package": {"ecosystem": "Debian:12", "name": "openssl"}, "version": "3.0.15-1~deb12u1"},
        {"package": {"ecosystem": "PyPI", "name": "idna"}, "version": "3.6"}]}


def test_a_batch_answer_yields_its_ids_once():
    answer = {"results": [{"vulns": [{"id": "PYSEC-2024-60", "modified": "2024-07-11T17:21:37Z"}]}, {},
                          {"vulns": [{"id": "PYSEC-2024-60"}, {"id": "PYSEC-2023-48"}]}]}
    assert advisories.ids_from_batch(answer) == ["PYSEC-2023-48", "PYSEC-2024-60"]


def test_records_without_a_modified_time_are_refused_naming_why(tmp_path):
    (tmp_path / "r.json").write_text('{"id": "PYSEC-2024-60", "affected": []}')
    with pytest.raises(UsageError) as e:
        advisories.open_database(tmp_path, max_age_days=7)
    assert str(e.value) == (f"--vuln-db {tmp_path}: no record carries a `modified` time, so its age is unknown: "
                            "use OSV's all.zip exports, whose records all do")


def test_an_ignore_list_that_is_not_toml_is_refused_naming_it(tmp_path):
    listed = tmp_path / "osv-ignore.toml"
    listed.write_text("[[ignore]\n")
    with pytest.raises(UsageError) as e:
        advisories.preflight(None, max_age_days=7, ignores=listed)
    assert str(e.value).startswith(f"the ignore list {listed} is not TOML (")


def test_a_vuln_db_that_does_not_exist_is_one_usage_line_naming_the_option(tmp_path, monkeypatch):
    from imagepipe.cli.arguments import parse_args
    from imagepipe.pipeline.options import from_namespace

    monkeypatch.delenv("IMAGEPIPE_VULN_DB", raising=False)
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["verify", "--vuln-db", str(tmp_path / "nope")]))
    assert str(e.value) == (f"--vuln-db {tmp_path / 'nope'}: no such file or directory (give OSV's all.zip "
                            "exports, or a directory of them)")
    monkeypatch.setenv("IMAGEPIPE_VULN_DB", str(tmp_path / "gone"))
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["verify"]))
    assert str(e.value).startswith(f"IMAGEPIPE_VULN_DB {tmp_path / 'gone'}: no such file or directory")


def test_an_age_limit_that_is_not_a_number_is_one_usage_line(monkeypatch):
    from imagepipe.cli.arguments import parse_args
    from imagepipe.pipeline.options import from_namespace

    monkeypatch.setenv("IMAGEPIPE_VULN_DB_MAX_AGE", "a week")
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["verify"]))
    assert str(e.value) == "IMAGEPIPE_VULN_DB_MAX_AGE='a week': give a number of days"
    monkeypatch.delenv("IMAGEPIPE_VULN_DB_MAX_AGE")
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["verify", "--vuln-db-max-age", "0"]))
    assert str(e.value) == "--vuln-db-max-age must be a positive number of days"
