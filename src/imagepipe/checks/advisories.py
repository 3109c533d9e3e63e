"""Where verify's advisories come from, and the scan of an image's inventory against them (the OSV half of
the `vulnerabilities` check; the bookworm-security comparison is imagepipe.checks.debsec).

Sources, in this order: an OSV database given by path (`--vuln-db`, or IMAGEPIPE_VULN_DB), refused when
its newest record is older than `--vuln-db-max-age` days; else the OSV API's `querybatch`, where it is
reachable. With neither, the check fails saying how to give one: nothing scanned is not nothing found."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import requests

from imagepipe.checks import osv
from imagepipe.errors import UsageError
from imagepipe.supplychain.inventory import Inventory

OSV_API = "https://api.osv.dev/v1"


def osv_api() -> str:
    """The OSV API verify asks: IMAGEPIPE_OSV_API (a mirror or proxy of it), else OSV's own; read when used."""
    return os.environ.get("IMAGEPIPE_OSV_API") or OSV_API
EXPORTS = "https://osv-vulnerabilities.storage.googleapis.com/{PyPI,Debian}/all.zip"
DEFAULT_MAX_AGE_DAYS = 7.0  # OSV's exports are rebuilt daily; a week covers a weekend and a holiday
IGNORE_FILE = "osv-ignore.toml"  # beside the Containerfile: the reviewed ignore list


@dataclass(frozen=True)
class Source:
    """An opened source: a database (loaded once per run) or the API's answer (one per scan)."""

    name: str
    as_of: datetime
    db: osv.Database  # loaded from the path, or the records the API named

    def describe(self) -> str:
        return f"{self.name} as of {self.as_of:%Y-%m-%d}, {self.db.count} records"


_opened: dict[tuple[str, float], Source] = {}


def open_database(path: Path, *, max_age_days: float, now: datetime | None = None) -> Source:
    """The database at `path`, loaded once per run; a stale one is refused with one line (exit 2)."""
    key = (str(path.resolve()), max_age_days)
    if key in _opened:
        return _opened[key]
    try:
        db = osv.load(path)
    except osv.DatabaseError as e:
        raise UsageError(f"--vuln-db: {e}") from None
    now = now or datetime.now(UTC)
    age = db.age_days(now)
    if age is None or db.newest is None:
        raise UsageError(f"--vuln-db {path}: no record carries a `modified` time, so its age is unknown: use "
                         "OSV's all.zip exports, whose records all do")
    if age > max_age_days:
        raise UsageError(f"--vuln-db {path} is {age:.0f} days old (its newest record was modified "
                         f"{db.newest:%Y-%m-%d}), over the {max_age_days:g}-day limit: download fresh exports "
                         f"({EXPORTS}), or accept this one with --vuln-db-max-age {math.ceil(age)}")
    source = Source(f"OSV database {path}", db.newest, db)
    _opened[key] = source
    return source


def ignore_file(containerfile: Path) -> Path | None:
    """The reviewed ignore list beside the Containerfile, where there is one."""
    path = containerfile.parent / IGNORE_FILE
    return path if path.exists() else None


def preflight(db_path: Path | None, *, max_age_days: float, ignores: Path | None) -> None:
    """Before anything is built: a stale or unreadable database, or a malformed ignore list, is one line
    (exit 2) now rather than a failed check after the build."""
    if db_path is not None:
        open_database(db_path, max_age_days=max_age_days)
    if ignores is not None:
        try:
            osv.load_ignores(ignores)
        except (osv.DatabaseError, ValueError) as e:
            raise UsageError(f"the ignore list {e}" if isinstance(e, osv.DatabaseError) else
                             f"the ignore list {ignores} is not TOML ({e})") from None


def packages(contents: Inventory) -> tuple[list[osv.Package], list[str]]:
    """The inventory as OSV packages (Python distributions as PyPI names; Debian packages by their source
    package and the image's release, as Debian's records name them), and what cannot be scanned: a
    distribution without a name or a version, or Debian packages of an unknown release, is itself a
    failure."""
    found: list[osv.Package] = []
    unscannable: list[str] = []
    for dist in contents.dists:
        if dist.name and dist.version:
            found.append(osv.Package(osv.PYPI, dist.name, dist.version))
        else:
            unscannable.append(f"{dist.path}: no name or version in its METADATA")
    if contents.debs and not contents.release:  # nothing to match them against: not scanned, and said so
        unscannable.append("the Debian release is unknown (no VERSION_ID in /etc/os-release, no "
                           "/etc/debian_version), so no Debian:<release> record can be matched")
    ecosystem = osv.debian_ecosystem(contents.release)
    for deb in contents.debs if contents.release else ():
        found.append(osv.Package(ecosystem, deb.source_package or deb.name, deb.source_version or deb.version))
    return sorted(set(found), key=lambda p: (p.ecosystem, p.name, p.version)), unscannable


# --- the OSV API -----------------------------------------------------------------------------------------

def batch_query(pkgs: list[osv.Package]) -> dict[str, Any]:
    """The body of a `querybatch` request (pure: tested without the network)."""
    return {"queries": [{"package": {"ecosystem": p.ecosystem, "name": p.name}, "version": p.version}
                        for p in pkgs]}


def ids_from_batch(response: dict[str, Any]) -> list[str]:
    """The advisory ids a `querybatch` answer names (it lists ids only; the records are fetched by id)."""
    return sorted({v["id"] for result in response.get("results") or [] for v in result.get("vulns") or []
                   if isinstance(v, dict) and isinstance(v.get("id"), str)})


def query_api(pkgs: list[osv.Package], *, api: str = OSV_API, timeout: float = 30) -> Source:
    """The records the OSV API holds for these packages, as a database of their own; raises
    requests.RequestException when it cannot be reached or answers badly."""
    with requests.Session() as http:
        # querybatch takes up to 1000 queries; an image has a few hundred packages
        ids: list[str] = []
        for start in range(0, len(pkgs), 1000):
            r = http.post(f"{api}/querybatch", json=batch_query(pkgs[start:start + 1000]), timeout=timeout)
            r.raise_for_status()
            ids += ids_from_batch(r.json())

        def record(vuln_id: str) -> dict[str, Any]:
            r = http.get(f"{api}/vulns/{vuln_id}", timeout=timeout)
            r.raise_for_status()
            return dict(r.json())

        db = osv.Database(source=api)
        with ThreadPoolExecutor(max_workers=8) as pool:
            for rec in pool.map(record, sorted(set(ids))):
                db.add(rec)
    return Source(f"the OSV API ({api})", datetime.now(UTC), db)


# --- the scan --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scan:
    source: Source | None  # None: no source could be had (why says why)
    why: str = ""
    failing: tuple[osv.Finding, ...] = ()  # with a fix: these fail the check
    unfixed: tuple[osv.Finding, ...] = ()  # no fix upstream: listed, not failing
    notes: tuple[str, ...] = ()  # ignore-list entries used or expired
    unscannable: tuple[str, ...] = ()
    scanned: int = 0

    @property
    def passed(self) -> bool:
        return self.source is not None and not self.failing and not self.unscannable


def scan(contents: Inventory, *, db_path: Path | None, max_age_days: float, ignores: Path | None,
         today: date | None = None, api: str | None = None) -> Scan:
    pkgs, unscannable = packages(contents)
    api = api or osv_api()
    if db_path is not None:
        source = open_database(db_path, max_age_days=max_age_days)
    else:
        try:
            source = query_api(pkgs, api=api)
        except (requests.RequestException, ValueError) as e:
            return Scan(None, f"no advisory source: the OSV API ({api}) cannot be reached "
                        f"({type(e).__name__}) and no --vuln-db was given: pass --vuln-db DIR|ZIP with OSV's "
                        f"PyPI and Debian exports ({EXPORTS}), or set IMAGEPIPE_VULN_DB",
                        unscannable=tuple(unscannable), scanned=len(pkgs))
    found = osv.findings(source.db, pkgs)
    entries = osv.load_ignores(ignores) if ignores is not None else []
    kept, notes = osv.apply_ignores(found, entries, today or date.today())
    return Scan(source, failing=tuple(f for f in kept if f.fixed), unfixed=tuple(f for f in kept if not f.fixed),
                notes=tuple(notes), unscannable=tuple(unscannable), scanned=len(pkgs))


def summary(s: Scan, contents: Inventory) -> str:
    """The check's detail: what was scanned, against what, and what was found."""
    if s.source is None:
        return s.why
    what = f"{len(contents.dists)} Python distributions and {len(contents.debs)} Debian packages"
    parts = [f"OSV: {what} against {s.source.describe()}: {len(s.failing)} with a fix"]
    if s.failing:
        parts[-1] += f" ({', '.join(str(f) for f in s.failing[:5])})"
    if s.unfixed:
        parts.append(f"{len(s.unfixed)} without a fix upstream, listed: {', '.join(f.id for f in s.unfixed[:5])}")
    parts += list(s.notes[:5])
    if s.unscannable:
        parts.append(f"cannot be scanned: {', '.join(s.unscannable[:3])}")
    return "; ".join(parts)


def values(s: Scan) -> Iterable[str]:
    yield from (str(f) for f in s.failing)
    yield from s.unscannable
    if s.source is None:
        yield s.why
