"""The values verify works with: a check's result, the options and the whole result (the check ids live in
the registry, imagepipe.checks.catalog)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests

from imagepipe.exec import runner
from imagepipe.exec.cmdline.skopeo import ToolAuth
from imagepipe.host.profile import HostProfile
from imagepipe.services import postgres, standins, tlscerts
from imagepipe.supplychain.inventory import Inventory

CONTAINER_HOST = "host.containers.internal"  # podman's name for the host, seen from a bridged container


def container_host(profile: HostProfile) -> str:
    """Where a verify container reaches the stand-ins and the database: the host through podman's bridge,
    or, inside a pod, the loopback the containers share with the pipeline."""
    return "127.0.0.1" if profile.in_pod else CONTAINER_HOST
FRONTEND = "http://frontend.verify.invalid"
ISSUER = "http://auth.verify.invalid"  # the authorization server the MCP metadata names (never contacted)


@dataclass
class Check:
    id: str
    passed: bool
    value: Any = None
    limit: Any = None
    detail: str = ""
    seconds: float = 0.0
    # what the check's verdict rests on, for the verification attestation (vulnerabilities: its advisory
    # source and that source's date)
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class VerifyOptions:
    max_size_mb: float = 150.0
    startup_limit_s: float = 30.0
    latency_limit_s: float = 1.0
    latency_requests: int = 500
    database_url: str | None = None  # as seen from the container; None: a throw-away PostgreSQL
    state_dir: Path = Path(".state")
    keep: bool = False  # leave containers behind for debugging
    labels: dict[str, str] = field(default_factory=dict)  # on every container verify starts (the run's)
    pull_auth: ToolAuth | None = None  # the run's registry access, for the pull by digest
    platform: str | None = None  # os/arch the image must be (a multi-platform run's); None: whatever it says
    vuln_db: Path | None = None  # an OSV database (checks.advisories); None: the OSV API
    vuln_db_max_age_days: float = 7.0
    vuln_ignores: Path | None = None  # the reviewed ignore list (osv-ignore.toml), where there is one


@dataclass
class VerifyResult:
    image: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    # what the static pass read from the image's tree; promote's SBOM lists it (not in the report)
    inventory: Inventory | None = None
    # the run's critical path: (phase, seconds since verify started), the report's `verify_phases`
    phases: list[tuple[str, float]] = field(default_factory=list)
    architecture: str = ""  # the image's, as its config says
    emulated: bool = False  # run under qemu user emulation (speed limits are the contract's, not ours)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)




@dataclass
class Services:
    """What the service runs against during verify: made by services(), stopped when it exits."""

    openai: standins.FakeOpenAI  # served on the container gateway
    jwks: standins.Jwks
    dsn: str  # as the container sees it
    tls: tlscerts.ServerTLS | None = None  # the throw-away database's CA and certificate
    database: Future[postgres.TempPostgres] | None = None  # the throw-away one, starting beside the service

    def dsn_with(self, **params: str) -> str:
        """The database URL with these query parameters set (others kept)."""
        base, _, query = self.dsn.partition("?")
        pairs = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        pairs.update(params)
        return base + "?" + "&".join(f"{k}={v}" for k, v in pairs.items())


class ServiceView(Protocol):
    """The running service: its container, its HTTP endpoint, its logs, and what runs around it."""

    name: str  # the serving container
    idle_name: str  # the container where nothing listens (health-status)
    port: int
    base: str  # http://127.0.0.1:PORT
    http: requests.Session
    services: Services | None
    jwks_user: str
    jwks_first: tuple[int, float]
    idle_started: Future[float]
    # outside a pod, the idle container's health proven in a worker as soon as it runs (no wait: its start
    # period is 0); None where that does not apply
    idle_proof: Future[str] | None
    # inside a pod, the idle container's health, proven before the service shares the port (HostProfile.in_pod)
    idle_health: str | None

    @property
    def running(self) -> Services: ...

    def token(self, user: str, **claims: Any) -> str: ...

    def get(self, path: str, **kw: Any) -> requests.Response: ...

    def logs(self, name: str | None = None) -> str: ...


class ImageView(Protocol):
    """The image under test: its reference and the facts podman read (config, size)."""

    image: str
    config: dict[str, Any]
    size: int
    architecture: str  # the image's (OCI: amd64, arm64), as podman read it


class RunTools(Protocol):
    """What the run lends a check: the host, the options, the run's secrets, podman, a worker pool, and the
    result it adds to."""

    profile: HostProfile
    opt: VerifyOptions
    secrets: dict[str, str]
    pool: ThreadPoolExecutor

    # 1 natively, EMULATED_SLOWDOWN for an image run under qemu (see slowdown())
    slowdown: int

    def sh(self, argv: list[str], ok: tuple[int, ...] = (0,), timeout: float = 120) -> runner.Result: ...

    def mark(self, what: str) -> None: ...

    def add(self, check: Check) -> Check: ...


# Under qemu user emulation a start-up time measures the emulator on this machine (and whatever else runs on
# it), not the image: an emulated image gets this many times the limit. A hang still fails.
EMULATED_SLOWDOWN = 10


def slowdown(architecture: str, host_arch: str) -> int:
    """How many times its native time an image of `architecture` is given on a host of `host_arch`: 1, or
    EMULATED_SLOWDOWN under emulation. It scales every wait on the image (start-up, its HEALTHCHECK's
    timeout, a request's read timeout), never a speed limit of the contract's that verify reports."""
    return EMULATED_SLOWDOWN if architecture and architecture != host_arch else 1


def startup_limit_s(opt: VerifyOptions, architecture: str, host_arch: str) -> float:
    """The start-up limit for an image of `architecture` on a host of `host_arch` (the contract's for a
    native one; EMULATED_SLOWDOWN times it under emulation)."""
    return opt.startup_limit_s * slowdown(architecture, host_arch)


class ImageCheck(ImageView, RunTools, Protocol):
    """What a check of the image itself uses (no service)."""


class ServiceCheck(ServiceView, RunTools, Protocol):
    """What a check of the running service uses (not the image's facts)."""


class CheckRun(ServiceView, ImageView, RunTools, Protocol):
    """What a check may use of the verify run (checks.verifier.Verifier implements it), declared here so
    that the check modules need not import the verifier."""
