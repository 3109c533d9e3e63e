"""What an image contains, read from its tree: Debian packages (dpkg's status plus status.d, the distroless
style entries for files copied without dpkg) and Python distributions (every .dist-info). One source of
truth: the SBOM lists it, the `vulnerabilities` check compares it with Debian's security index."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from debian import deb822


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    arch: str
    source: str  # "status" or "status.d/<file>"
    # dpkg's Source field: the source package and its version, which Debian's advisories name
    source_package: str = ""
    source_version: str = ""


@dataclass(frozen=True)
class PyDist:
    name: str
    version: str
    path: str  # the .dist-info directory, inside the image


def _stanzas(path: Path) -> list[deb822.Deb822]:
    """dpkg's status format (deb822), read by python-debian."""
    with path.open(encoding="utf-8", errors="replace") as f:
        return [s for s in deb822.Deb822.iter_paragraphs(f, use_apt_pkg=False) if s.get("Package")]


@dataclass(frozen=True)
class Inventory:
    """Both halves, read in one visit to the image's tree."""

    debs: tuple[DebPackage, ...]
    dists: tuple[PyDist, ...]
    unreadable: str | None = None  # why dpkg's records could not be read (the package list is then unknown)
    sizes: dict[str, int] = field(default_factory=dict)  # where the bytes are: per directory (verify's tree pass)
    # the Debian release (os-release's VERSION_ID, else debian_version): which `Debian:<n>` records apply;
    # "" where the image says neither
    release: str = ""


def read(root: Path) -> Inventory:
    return Inventory(tuple(debian_packages(root)), tuple(python_dists(root)), dpkg_unreadable(root),
                     release=debian_release(root))


def debian_release(root: Path) -> str:
    """The image's Debian release: VERSION_ID of its os-release (/etc's, or /usr/lib's that it links to;
    a link is followed inside the image, never to the host's), else /etc/debian_version ("12.8"); "" when
    neither says, or when os-release names another distribution (Debian's records do not apply there)."""
    for path in ("etc/os-release", "usr/lib/os-release"):
        fields = _os_release(_inside(root, path))
        if fields.get("ID") not in (None, "debian"):
            return ""
        if fields.get("VERSION_ID"):
            return fields["VERSION_ID"]
    try:
        version = _inside(root, "etc/debian_version").read_text(errors="replace").strip()
    except OSError:
        return ""
    return version if version[:1].isdigit() else ""


def _inside(root: Path, path: str) -> Path:
    """`path` in the image's tree, its links resolved against the image's root rather than the host's."""
    here = root / path
    for _ in range(8):
        if not here.is_symlink():
            return here
        target = Path(here.readlink())  # noqa: PTH115 - one hop at a time, kept under root
        here = root / str(target).lstrip("/") if target.is_absolute() else here.parent / target
    return here


def _os_release(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"\'')
    return fields


def dpkg_unreadable(root: Path) -> str | None:
    """Why the image's dpkg status cannot be read, or None. An image without it is not one without
    packages: its package list is unknown."""
    status = root / "var/lib/dpkg/status"
    try:
        with status.open("rb") as f:
            f.read(1)
    except OSError as e:
        return f"/var/lib/dpkg/status: {e.strerror or e}"
    return None


def debian_packages(root: Path) -> list[DebPackage]:
    found = []
    sources = [(root / "var/lib/dpkg/status", "status")]
    status_d = root / "var/lib/dpkg/status.d"
    if status_d.is_dir():
        sources += [(p, f"status.d/{p.name}") for p in sorted(status_d.iterdir()) if p.is_file()]
    for path, source in sources:
        if not path.exists():
            continue
        for f in _stanzas(path):
            if "Version" in f and "installed" in f.get("Status", "install ok installed"):
                # "Source: openssl" or, after a binary-only rebuild, "Source: openssl (3.0.15-1~deb12u1)"
                origin, _, version = (f.get("Source") or f["Package"]).partition(" (")
                found.append(DebPackage(f["Package"], f["Version"], f.get("Architecture", "all"), source,
                                        origin.strip(), version.rstrip(")") or f["Version"]))
    return found


def python_dists(root: Path) -> list[PyDist]:
    found = []
    for pattern in ("opt/venv/lib/python3*/site-packages/*.dist-info", "usr/lib/python3*/*-packages/*.dist-info",
                    "usr/local/lib/python3*/*-packages/*.dist-info", "usr/lib/python3/dist-packages/*.dist-info"):
        for dist in sorted(root.glob(pattern)):
            meta = dist / "METADATA"
            if not meta.is_file():
                continue
            headers = HeaderParser().parsestr(meta.read_text(errors="replace"))
            if headers.get("Name") and headers.get("Version"):
                found.append(PyDist(headers["Name"], headers["Version"], "/" + str(dist.relative_to(root))))
    return found
