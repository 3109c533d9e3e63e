"""The OSV matcher against real PyPA advisory records (tests/fixtures/osv/pypa, CC-BY 4.0): PyPI ranges by
packaging's version rules, both database layouts (a directory of records, an all.zip export), its age,
and the reviewed ignore list."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from imagepipe.checks import osv

RECORDS = Path(__file__).resolve().parents[1] / "fixtures/osv/pypa"


def pypi(name: str, version: str) -> osv.Package:
    return osv.Package(osv.PYPI, name, version)


@pytest.fixture(scope="module")
def db() -> osv.Database:
    return osv.load(RECORDS)


def test_starlettes_multipart_dos_is_found_below_its_fix(db):
    assert osv.findings(db, [pypi("starlette", "0.24.0")]) == [
        osv.Finding("PYSEC-2023-48", "starlette", "0.24.0", "0.25.0"),
        osv.Finding("PYSEC-2023-83", "starlette", "0.24.0", "0.27.0")]


def test_the_fixed_version_and_later_are_clean(db):
    assert osv.findings(db, [pypi("starlette", "0.27.0"), pypi("starlette", "1.10.0")]) == []


def test_names_compare_as_pep_503_normalises_them(db):
    assert [f.id for f in osv.findings(db, [pypi("PyJWT", "2.3.0")])] == ["PYSEC-2022-202"]
    assert [f.id for f in osv.findings(db, [pypi("IDNA", "3.6")])] == ["PYSEC-2024-60"]


def test_the_images_pins_match_none_of_these_records(db):
    pins = dict(line.split(" ", 1)[0].split("==") for line in
                (RECORDS.parents[2] / "../backend/requirements.txt").resolve().read_text().splitlines()
                if "==" in line and not line.startswith((" ", "#")))
    assert {"starlette", "fastapi", "idna", "pyjwt", "pydantic", "cryptography", "uvicorn"} <= set(pins)
    assert osv.findings(db, [pypi(name, version) for name, version in pins.items()]) == []


def test_an_all_zip_export_reads_like_the_directory(db, tmp_path):
    """OSV's per-ecosystem export holds one JSON file per record."""
    export = tmp_path / "PyPI" / "all.zip"
    export.parent.mkdir()
    with zipfile.ZipFile(export, "w") as archive:
        for record in sorted(RECORDS.glob("*.yaml")):
            archive.writestr(f"{record.stem}.json", json.dumps(yaml.safe_load(record.read_text()), default=str))
    for source in (export, tmp_path):
        zipped = osv.load(source)
        assert zipped.count == db.count == 10
        assert zipped.newest == db.newest
        assert osv.findings(zipped, [pypi("starlette", "0.24.0")]) == osv.findings(db, [pypi("starlette", "0.24.0")])


def test_the_database_is_as_old_as_its_newest_record(db):
    assert db.newest == datetime(2024, 7, 11, 17, 21, 37, 216928, tzinfo=UTC)  # PYSEC-2024-60 (idna)
    assert db.age_days(datetime(2024, 7, 18, 17, 21, 37, 216928, tzinfo=UTC)) == pytest.approx(7.0)


def test_a_path_without_records_is_one_line(tmp_path):
    with pytest.raises(osv.DatabaseError) as e:
        osv.load(tmp_path)
    assert str(e.value) == (f"{tmp_path} holds no OSV record (expected an all.zip export, or .json/.yaml "
                            "records)")
    with pytest.raises(osv.DatabaseError) as e:
        osv.load(tmp_path / "nope.zip")
    assert str(e.value) == f"{tmp_path / 'nope.zip'} does not exist"


def test_an_ignore_holds_until_its_expiry(db, tmp_path):
    listed = tmp_path / "ignore.toml"
    listed.write_text('[[ignore]]\nid = "PYSEC-2023-48"\nreason = "no multipart forms are parsed"\n'
                      "expires = 2026-12-31\n")
    found = osv.findings(db, [pypi("starlette", "0.24.0")])
    kept, notes = osv.apply_ignores(found, osv.load_ignores(listed), date(2026, 12, 2))
    assert [f.id for f in kept] == ["PYSEC-2023-83"]
    assert notes == ["PYSEC-2023-48 ignored until 2026-12-31: no multipart forms are parsed"]
    kept, notes = osv.apply_ignores(found, osv.load_ignores(listed), date(2027, 1, 1))
    assert [f.id for f in kept] == ["PYSEC-2023-48", "PYSEC-2023-83"]
    assert notes == ["PYSEC-2023-48: its ignore expired"]


def test_an_ignore_without_a_reason_is_refused(tmp_path):
    listed = tmp_path / "ignore.toml"
    listed.write_text('[[ignore]]\nid = "PYSEC-2023-48"\nreason = ""\nexpires = 2026-12-31\n')
    with pytest.raises(osv.DatabaseError) as e:
        osv.load_ignores(listed)
    assert str(e.value) == f"{listed}: entry 1 needs id, a reason and an expires date (YYYY-MM-DD)"


def test_debian_packages_carry_their_source_package_for_debians_advisories(tmp_path):
    from imagepipe.supplychain import inventory

    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text("Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
                      "Source: openssl (3.0.15-1~deb12u1)\nVersion: 3.0.15-1~deb12u1+b1\n\n"
                      "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\n\n"
                      "Package: libpq5\nStatus: install ok installed\nArchitecture: amd64\nSource: postgresql-15\n"
                      "Version: 15.14-0+deb12u1\n")
    debs = inventory.debian_packages(tmp_path)
    assert [(d.name, d.source_package, d.source_version) for d in debs] == [
        ("libssl3", "openssl", "3.0.15-1~deb12u1"), ("bash", "bash", "5.2.15-2+b7"),
        ("libpq5", "postgresql-15", "15.14-0+deb12u1")]
