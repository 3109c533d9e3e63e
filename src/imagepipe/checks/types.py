"""The values verify works with: a check's result, the options and the whole result (the check ids live in
the registry, imagepipe.checks.catalog)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe.commands.skopeo import ToolAuth
from imagepipe.supplychain.inventory import Inventory

CONTAINER_HOST = "host.containers.internal"  # podman's name for the host, seen from a bridged container
FRONTEND = "http://frontend.verify.invalid"


@dataclass
class Check:
    id: str
    passed: bool
    value: Any = None
    limit: Any = None
    detail: str = ""
    seconds: float = 0.0


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


@dataclass
class VerifyResult:
    image: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    # what the static pass read from the image's tree; promote's SBOM lists it (not in the report)
    inventory: Inventory | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


