"""Can this host pull from a registry, as podman, skopeo and buildah reach it? A plain-HTTP registry off
loopback needs an `insecure = true` entry in registries.conf(.d); a TLS one with a private CA needs the CA in
/etc/containers/certs.d/HOST:PORT/. Checked before a cluster Job pushes somewhere verify could not pull from."""

from __future__ import annotations

import tomllib
from pathlib import Path

import requests

from imagepipe import commands
from imagepipe.errors import PipelineError

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


def check_pullable_from_here(registry: str, *, stage: str = "build") -> None:
    """Refuse, naming the entry to add, when this host's containers tools could not pull from `registry`."""
    if commands.registry_is_local(registry):
        return
    ca = CERTS_D / registry / "ca.crt"
    try:
        requests.get(f"https://{registry}/v2/", timeout=5, verify=str(ca) if ca.exists() else True)
        return
    except requests.exceptions.SSLError as e:
        if "WRONG_VERSION_NUMBER" not in str(e) and "wrong version number" not in str(e):
            raise PipelineError(f"this host does not trust the certificate of {registry}: put its CA at {ca} "
                                "(podman, skopeo and buildah read it there), then run again", stage=stage) from None
    except requests.RequestException as e:
        raise PipelineError(f"registry {registry} cannot be reached from this host ({type(e).__name__}): verify "
                            "pulls from here what the Job pushes there", stage=stage) from None
    if registry not in insecure_registries():  # it speaks plain HTTP
        raise PipelineError(
            f"{registry} speaks plain HTTP, which this host's podman will not pull from: declare it in "
            f"{REGISTRIES_D}/50-{registry.replace(':', '-')}.conf as [[registry]] location = \"{registry}\" "
            "insecure = true (or serve it over TLS)", stage=stage)
