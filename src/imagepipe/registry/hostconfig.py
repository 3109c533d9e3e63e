"""Where the containers tools read how to reach a registry: registries.conf(.d) (`insecure = true` for a
plain-HTTP one off loopback) and /etc/containers/certs.d/HOST:PORT/ (a private CA). imagepipe.registry.access
decides with these."""

from __future__ import annotations

import tomllib
from pathlib import Path

REGISTRIES_CONF = Path("/etc/containers/registries.conf")
REGISTRIES_D = Path("/etc/containers/registries.conf.d")
CERTS_D = Path("/etc/containers/certs.d")


def insecure_registries(files: list[Path] | None = None) -> set[str]:
    """Locations declared `insecure = true` in registries.conf and its drop-ins."""
    files = files if files is not None else [REGISTRIES_CONF, *sorted(REGISTRIES_D.glob("*.conf"))]
    found: set[str] = set()
    for path in files:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        for entry in data.get("registry") or []:
            if entry.get("insecure") and entry.get("location"):
                found.add(str(entry["location"]))
    return found


POD_DROP_IN = REGISTRIES_D / "90-imagepipe-insecure.conf"


def declare_insecure(registries: tuple[str, ...], drop_in: Path = POD_DROP_IN) -> None:
    """Inside the pipeline's own image (a pod's filesystem, nobody else's): --insecure-registry declared for
    the pipeline's own tools too, as kaniko is told of it, so one flag serves the whole job."""
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text("".join(f'[[registry]]\nlocation = "{r}"\ninsecure = true\n\n' for r in registries))
