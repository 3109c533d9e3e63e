"""Advisories in the OSV format, matched against what an image ships: each Python distribution (PyPI,
packaging's version rules) and each Debian package (by its source package, as Debian's advisories name it,
with dpkg's version order from python-debian).

Where they come from: an OSV database given by path (`--vuln-db DIR|ZIP`: one of OSV's per-ecosystem
`all.zip` exports, or a directory of them and/or of record files, YAML or JSON), or the OSV API's
`querybatch` where it is reachable. A database is as old as its newest record's `modified` time.

The rule: a finding fails the check when a fixed version exists, whatever its severity (the PyPA records
mostly carry none, so a severity threshold would pass most of them unread); a finding with no fix upstream
is listed and does not fail (there is nothing to upgrade to); a reviewed ignore list entry (id, reason,
expiry) removes a finding until its expiry, after which the finding counts again.

Debian's records, as OSV means them: `package.name` is the source package (libssl3 comes from openssl),
the ecosystem is `Debian:<release>` (bookworm is `Debian:12`, read from the image's os-release), versions
compare by dpkg's rules (`~` sorts first), and `introduced: "0"` without a `fixed` event means no fix is
released. The same rule applies: a fixed version fails, whatever `ecosystem_specific.urgency` says (an
`unimportant` issue with a fix is still one `apt-get upgrade` away); without one the finding is listed with
its urgency (`unimportant`, `not yet assigned`, `end-of-life`: the release gets no fix) and does not fail.
"""

from __future__ import annotations

import json
import re
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from debian import debian_support
from packaging.version import InvalidVersion, Version

PYPI = "PyPI"  # the Python half's ecosystem; the Debian half's is per release (debian_ecosystem)


def debian_ecosystem(release: str) -> str:
    """OSV's ecosystem for a Debian release: `Debian:<major>` from os-release's VERSION_ID ("12") or a
    debian_version ("12.8"); releases before 7 were numbered major.minor and OSV keeps both ("Debian:4.0")."""
    major, _, minor = release.partition(".")
    if major.isdigit() and int(major) < 7 and minor:
        return f"Debian:{major}.{minor.split('.')[0]}"
    return f"Debian:{major}"


@dataclass(frozen=True)
class Package:
    ecosystem: str
    name: str
    version: str


@dataclass(frozen=True)
class Finding:
    id: str
    package: str
    installed: str
    fixed: str | None  # None: no fix upstream
    urgency: str | None = None  # Debian's ecosystem_specific.urgency, where the record gives one

    def __str__(self) -> str:
        urgency = f" (urgency {self.urgency})" if self.urgency else ""
        return f"{self.id} {self.package} {self.installed} -> {self.fixed or 'no fix'}{urgency}"


@dataclass
class Database:
    """Records by (ecosystem, normalised package name)."""

    source: str
    by_package: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    newest: datetime | None = None  # the newest record's `modified`
    count: int = 0

    def add(self, record: dict[str, Any]) -> None:
        if record.get("withdrawn") or not isinstance(record.get("id"), str):
            return
        self.count += 1
        modified = _timestamp(record.get("modified"))
        if modified and (self.newest is None or modified > self.newest):
            self.newest = modified
        for affected in record.get("affected") or []:
            pkg = affected.get("package") or {}
            ecosystem, name = pkg.get("ecosystem"), pkg.get("name")
            if isinstance(ecosystem, str) and isinstance(name, str):
                self.by_package.setdefault((ecosystem, normalise(ecosystem, name)), []).append(record)

    def age_days(self, now: datetime) -> float | None:
        return None if self.newest is None else (now - self.newest).total_seconds() / 86400


def normalise(ecosystem: str, name: str) -> str:
    """PyPI names compare as PEP 503 normalises them; Debian's as they are."""
    return re.sub(r"[-_.]+", "-", name).lower() if ecosystem == PYPI else name


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- loading -------------------------------------------------------------------------------------------


class DatabaseError(Exception):
    """A database path that cannot be read as OSV records; the message names the path and why."""


def load(path: Path) -> Database:
    """An OSV database from a ZIP (an `all.zip` export) or a directory (of exports and/or records)."""
    db = Database(source=str(path))
    if not path.exists():
        raise DatabaseError(f"{path} does not exist")
    try:
        for name, text in _records(path):
            try:
                record = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
            except (json.JSONDecodeError, yaml.YAMLError) as e:
                raise DatabaseError(f"{name} is not an OSV record ({type(e).__name__})") from None
            if isinstance(record, dict):
                db.add(record)
    except (OSError, zipfile.BadZipFile) as e:
        raise DatabaseError(f"{path}: {e}") from None
    if not db.count:
        raise DatabaseError(f"{path} holds no OSV record (expected an all.zip export, or .json/.yaml records)")
    return db


def _records(path: Path) -> Iterator[tuple[str, str]]:
    if path.is_file():
        yield from _zip_records(path)
        return
    for item in sorted(path.rglob("*")):
        if item.suffix == ".zip":
            yield from _zip_records(item)
        elif item.suffix in (".json", ".yaml", ".yml") and item.is_file():
            yield str(item), item.read_text(encoding="utf-8")


def _zip_records(path: Path) -> Iterator[tuple[str, str]]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".json"):
                yield f"{path}:{info.filename}", archive.read(info).decode("utf-8")


# --- matching ------------------------------------------------------------------------------------------


def _key(ecosystem: str, version: str) -> Any:
    """A sort key for versions of one ecosystem (None where the version cannot be parsed)."""
    if ecosystem == PYPI:
        try:
            return Version(version)
        except InvalidVersion:
            return None
    return debian_support.Version(version)


def _at_least(ecosystem: str, version: str, bound: str) -> bool | None:
    a, b = _key(ecosystem, version), _key(ecosystem, bound)
    return None if a is None or b is None else a >= b


def affected_range(ecosystem: str, version: str, events: list[dict[str, str]]) -> tuple[bool, str | None]:
    """OSV's evaluation of one ECOSYSTEM range: whether `version` is affected, and the fix that ends the
    affected stretch it is in (None where none does)."""
    affected, fix = False, None
    for event in sorted(events, key=lambda e: _event_order(ecosystem, e)):
        if "introduced" in event:
            if event["introduced"] == "0" or _at_least(ecosystem, version, event["introduced"]):
                affected, fix = True, None
        elif "fixed" in event:
            if _at_least(ecosystem, version, event["fixed"]):
                affected = False
            elif affected and fix is None:
                fix = event["fixed"]
        elif "last_affected" in event and _at_least(ecosystem, version, event["last_affected"]) \
                and not _at_least(ecosystem, event["last_affected"], version):  # strictly after it
            affected = False
    return affected, fix if affected else None


def _event_order(ecosystem: str, event: dict[str, str]) -> tuple[int, Any]:
    value = next(iter(event.values()), "0")
    if value == "0":
        return (0, "")
    key = _key(ecosystem, value)
    return (1, key) if key is not None else (2, value)


def findings(db: Database, packages: Iterable[Package]) -> list[Finding]:
    found: list[Finding] = []
    for pkg in packages:
        for record in db.by_package.get((pkg.ecosystem, normalise(pkg.ecosystem, pkg.name)), []):
            hit = _match(record, pkg)
            if hit is not None:
                found.append(hit)
    return sorted(set(found), key=lambda f: (f.package, f.id))


def _match(record: dict[str, Any], pkg: Package) -> Finding | None:
    for affected in record.get("affected") or []:
        meta = affected.get("package") or {}
        if meta.get("ecosystem") != pkg.ecosystem or normalise(pkg.ecosystem, meta.get("name", "")) != \
                normalise(pkg.ecosystem, pkg.name):
            continue
        hit, fix = pkg.version in (affected.get("versions") or []), None
        for rng in affected.get("ranges") or []:
            if rng.get("type") in ("ECOSYSTEM", "SEMVER"):
                in_range, range_fix = affected_range(pkg.ecosystem, pkg.version, rng.get("events") or [])
                if in_range:
                    hit, fix = True, fix or range_fix
        if hit:
            urgency = (affected.get("ecosystem_specific") or {}).get("urgency")
            return Finding(record["id"], pkg.name, pkg.version, fix, urgency if isinstance(urgency, str) else None)
    return None


# --- the reviewed ignore list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ignore:
    id: str
    reason: str
    expires: date


def load_ignores(path: Path) -> list[Ignore]:
    """`[[ignore]]` tables with id, reason and expires (a date); a malformed entry is an error naming it."""
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("ignore", [])
    ignores = []
    for n, entry in enumerate(entries, 1):
        if not (isinstance(entry.get("id"), str) and isinstance(entry.get("reason"), str) and entry["reason"].strip()
                and isinstance(entry.get("expires"), date)):
            raise DatabaseError(f"{path}: entry {n} needs id, a reason and an expires date (YYYY-MM-DD)")
        ignores.append(Ignore(entry["id"], entry["reason"], entry["expires"]))
    return ignores


def apply_ignores(found: list[Finding], ignores: list[Ignore], today: date) -> tuple[list[Finding], list[str]]:
    """The findings that still count, and a note for each ignore used or expired."""
    live = {i.id: i for i in ignores if i.expires >= today}
    expired = {i.id for i in ignores if i.expires < today}
    kept = [f for f in found if f.id not in live]
    notes = [f"{f.id} ignored until {live[f.id].expires}: {live[f.id].reason}" for f in found if f.id in live]
    notes += [f"{f.id}: its ignore expired" for f in found if f.id in expired]
    return kept, notes
