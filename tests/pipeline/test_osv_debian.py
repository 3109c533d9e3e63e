"""Debian's half of the OSV scan against real OSV Debian records (tests/fixtures/osv/debian, copied byte for
byte from google/osv-scanner's test data; see SOURCE.md there). Each installed-package list is built around
a record, never the other way round: an image tree of the record's release whose dpkg status holds an older
version of the record's source package finds it; the fixed version does not."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagepipe.checks import advisories, osv
from imagepipe.supplychain import inventory

RECORDS = Path(__file__).resolve().parents[1] / "fixtures/osv/debian"
# as copied from ../shared/data/osv-debian (SOURCE.md): a changed byte fails here
SHA256 = {
    "DLA-3008-1.json": "301087ca9b15c1ca2479f880a147d51bf3f9d608e2631eb31e51bf3a17190a0b",
    "DLA-3012-1.json": "694d808e9ace3b5f9924cdefe412dbb9f70ea9c856970d0ebac151822883a5a4",
    "DLA-3022-1.json": "f2c6bc765b30c175d7235d8d62d745c510c478ead31c3cfc2acc4b1b6d1a7f0d",
    "DLA-3051-1.json": "55991e6e2d68128039160fe623eb6e1123a2a527ee5132d40ef491ee736147fc",
    "DSA-1543-1.json": "2e4dec869112ed84d8452b01c717634be587540989f1960867f22ad0538eb49d",
}


@pytest.fixture(scope="module")
def db() -> osv.Database:
    return osv.load(RECORDS)


def image_tree(root: Path, *packages: tuple[str, str, str], os_release: str | None = 'VERSION_ID="9"',
               debian_version: str | None = None) -> Path:
    """A tree as an image's: /etc/os-release (a relative link into /usr/lib, as base-files makes it) and
    dpkg's status with (binary, version, Source field) stanzas."""
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc").mkdir()
    if os_release is not None:
        (root / "usr/lib").mkdir(parents=True)
        distro = "" if "ID=" in os_release.replace("VERSION_ID=", "") else "ID=debian\n"
        (root / "usr/lib/os-release").write_text(f'PRETTY_NAME="Debian GNU/Linux"\n{os_release}\n{distro}')
        (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    if debian_version is not None:
        (root / "etc/debian_version").write_text(debian_version + "\n")
    stanzas = [f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n"
               + (f"Source: {source}\n" if source else "") for name, version, source in packages]
    (root / "var/lib/dpkg/status").write_text("\n".join(stanzas))
    return root


def scanned(db: osv.Database, root: Path) -> list[osv.Finding]:
    pkgs, unscannable = advisories.packages(inventory.read(root))
    assert unscannable == []
    return osv.findings(db, pkgs)


def test_the_records_are_the_shared_ones_unchanged():
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in RECORDS.glob("*.json")} == SHA256


def test_a_binary_is_matched_by_its_source_package_and_release(db, tmp_path):
    """libssl1.1 comes from openssl: DLA-3008-1 names the source, in Debian:9."""
    root = image_tree(tmp_path, ("libssl1.1", "1.1.0l-1~deb9u5", "openssl"))
    assert scanned(db, root) == [osv.Finding("DLA-3008-1", "openssl", "1.1.0l-1~deb9u5", "1.1.0l-1~deb9u6")]


@pytest.mark.parametrize("version", ["1.1.0l-1~deb9u6", "1.1.0l-1~deb9u7", "1.1.0l-1"])
def test_the_fixed_version_and_later_ones_are_clean_in_dpkgs_order(db, tmp_path, version):
    """`~` sorts before everything: ~deb9u5 < ~deb9u6 (the fix) < ~deb9u7 < the bare revision."""
    root = image_tree(tmp_path, ("libssl1.1", version, "openssl"), ("openssl", version, None))
    assert scanned(db, root) == []


def test_a_binnmu_is_matched_by_the_source_version_its_source_field_names(db, tmp_path):
    root = image_tree(tmp_path, ("libssl1.1", "1.1.0l-1~deb9u5+b1", "openssl (1.1.0l-1~deb9u5)"))
    assert [str(f) for f in scanned(db, root)] == ["DLA-3008-1 openssl 1.1.0l-1~deb9u5 -> 1.1.0l-1~deb9u6"]


def test_each_debian_9_record_finds_an_older_version_of_its_package(db, tmp_path):
    root = image_tree(tmp_path, ("libxml2", "2.9.4+dfsg1-2.2+deb9u6", None), ("dpkg", "1.18.25", None),
                      ("tzdata", "2021a-0+deb9u3", None), ("libssl1.1", "1.1.0l-1~deb9u6", "openssl"))
    assert [(f.id, f.package, f.fixed) for f in scanned(db, root)] == [
        ("DLA-3022-1", "dpkg", "1.18.26"), ("DLA-3012-1", "libxml2", "2.9.4+dfsg1-2.2+deb9u7"),
        ("DLA-3051-1", "tzdata", "2021a-0+deb9u4")]


def test_the_same_versions_in_another_release_match_nothing(db, tmp_path):
    """Debian:9's records say nothing about bookworm's packages, whatever their versions."""
    root = image_tree(tmp_path, ("libssl1.1", "1.1.0l-1~deb9u5", "openssl"), ("dpkg", "1.18.25", None),
                      os_release='VERSION_ID="12"')
    assert scanned(db, root) == []


def test_an_old_release_without_os_release_is_read_from_debian_version(db, tmp_path):
    """etch has no os-release; its records' ecosystem is `Debian:4.0`, as its debian_version says."""
    root = image_tree(tmp_path, ("vlc", "0.8.6-svn20061012.debian-5etch1", None), os_release=None,
                      debian_version="4.0")
    assert inventory.read(root).release == "4.0"
    assert [f.id for f in scanned(db, root)] == ["DSA-1543-1"]


def test_debian_packages_of_an_unknown_release_cannot_be_scanned(tmp_path):
    root = image_tree(tmp_path, ("dpkg", "1.18.25", None), os_release=None)
    pkgs, unscannable = advisories.packages(inventory.read(root))
    assert pkgs == []
    assert unscannable == ["the Debian release is unknown (no VERSION_ID in /etc/os-release, no /etc/debian_version), "
                           "so no Debian:<release> record can be matched"]


@pytest.mark.parametrize(("release", "ecosystem"), [("12", "Debian:12"), ("12.8", "Debian:12"), ("9", "Debian:9"),
                                                    ("4.0", "Debian:4.0"), ("3.1", "Debian:3.1")])
def test_releases_name_osvs_ecosystems(release, ecosystem):
    assert osv.debian_ecosystem(release) == ecosystem


def test_introduced_zero_without_a_fix_is_affected_with_no_fix_released():
    """The range shape of a record whose fix is not out yet: the scan lists such a finding, it does not fail."""
    assert osv.affected_range("Debian:12", "3.0.15-1~deb12u1", [{"introduced": "0"}]) == (True, None)
    assert osv.affected_range("Debian:12", "3.0.15-1~deb12u1", [{"introduced": "0"}, {"fixed": "3.0.15-1"}]) == \
        (True, "3.0.15-1")


def test_a_findings_urgency_is_named_beside_it():
    finding = osv.Finding("ID", "pkg", "1.0-1", None, "unimportant")
    assert str(finding) == "ID pkg 1.0-1 -> no fix (urgency unimportant)"


def test_an_absolute_os_release_link_is_read_inside_the_image(tmp_path):
    """/etc/os-release -> /usr/lib/os-release: the image's file, not the host's (whatever the host runs)."""
    root = image_tree(tmp_path, ("dpkg", "1.18.25", None))
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to("/usr/lib/os-release")
    assert inventory.read(root).release == "9"


def test_another_distributions_os_release_is_no_debian_release(tmp_path):
    root = image_tree(tmp_path, ("dpkg", "1.18.25", None), os_release='ID=ubuntu\nVERSION_ID="22.04"')
    assert inventory.read(root).release == ""
