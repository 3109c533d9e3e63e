"""What podman knows about an image, a container or a network: `podman … inspect` read as JSON, in one
place, into typed facts (instead of a Go template per question)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from imagepipe.exec import cmdline, runner
from imagepipe.host.profile import HostProfile

MISSING = (125,)  # podman's exit code for "no such object"


@dataclass(frozen=True)
class ImageFacts:
    id: str
    digest: str
    size: int
    layers: tuple[str, ...]
    labels: dict[str, str]
    config: dict[str, Any]  # the image config, with the health check where podman reports it (beside Config)
    architecture: str = ""  # OCI: amd64, arm64


@dataclass(frozen=True)
class ContainerFacts:
    status: str  # running, exited, ...
    exit_code: int
    pid: int
    health: str  # healthy, unhealthy, starting, or "" without a health check


@dataclass(frozen=True)
class NetworkFacts:
    subnets: tuple[tuple[str, str], ...]  # (gateway, subnet)


def _inspect(profile: HostProfile, kind: str, name: str, stage: str | None) -> dict[str, Any] | None:
    result = runner.run(cmdline.podman_inspect(profile, kind, name), ok_codes=(0, *MISSING), stage=stage)
    if result.code != 0:
        return None
    found = json.loads(result.stdout)
    return dict(found[0]) if found else None


# --- facts: pure parsers of `podman … inspect` output (tested on recorded JSON) --------------------------

def parse_image(raw: dict[str, Any]) -> ImageFacts:
    config = dict(raw.get("Config") or {})
    config.setdefault("Healthcheck", raw.get("Healthcheck") or raw.get("HealthCheck"))
    return ImageFacts(id=str(raw.get("Id", "")), digest=str(raw.get("Digest", "")), size=int(raw.get("Size") or 0),
                      layers=tuple((raw.get("RootFS") or {}).get("Layers") or ()),
                      labels=dict(raw.get("Labels") or config.get("Labels") or {}), config=config,
                      architecture=str(raw.get("Architecture", "")))


def parse_container(raw: dict[str, Any]) -> ContainerFacts:
    state = raw.get("State") or {}
    health = state.get("Health") or state.get("Healthcheck") or {}
    return ContainerFacts(status=str(state.get("Status", "")), exit_code=int(state.get("ExitCode") or 0),
                          pid=int(state.get("Pid") or 0), health=str(health.get("Status") or ""))


def parse_network(raw: dict[str, Any]) -> NetworkFacts:
    return NetworkFacts(tuple((str(s.get("gateway", "")), str(s.get("subnet", "")))
                              for s in raw.get("subnets") or []))


# --- actions: run podman, then parse -------------------------------------------------------------------

def image(profile: HostProfile, ref: str, *, stage: str | None = None) -> ImageFacts | None:
    raw = _inspect(profile, "image", ref, stage)
    return None if raw is None else parse_image(raw)


def container(profile: HostProfile, name: str, *, stage: str | None = None) -> ContainerFacts | None:
    raw = _inspect(profile, "container", name, stage)
    return None if raw is None else parse_container(raw)


def network(profile: HostProfile, name: str, *, stage: str | None = None) -> NetworkFacts | None:
    raw = _inspect(profile, "network", name, stage)
    return None if raw is None else parse_network(raw)


def image_exists(profile: HostProfile, ref: str) -> bool:
    return runner.run(cmdline.podman_image_exists(profile, ref), ok_codes=(0, 1)).code == 0
