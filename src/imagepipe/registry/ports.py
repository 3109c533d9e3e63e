"""Ports of the services a checkout leaves running (its embedded registry, its signature server).

Each state directory has servers of its own: they serve that checkout's data and nothing else, so two
clones or worktrees on one machine never push into, or sign through, each other's stores. A port is
*claimed* for a state directory in a machine-wide table (`claims_dir()`, one file per port naming the state
directory), so a checkout keeps its address across runs and `registry stop` in one checkout never lets
another take its port. Claims are made under a machine-wide lock, so two runs starting at once never choose
the same port. A claim whose state directory is gone is stale and free again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from imagepipe.errors import PipelineError

log = logging.getLogger("imagepipe.registry.ports")

SCAN = 200  # ports tried above the default when it is taken
LOOPBACK = "127.0.0.1"  # where both servers bind: a listener on another address (a cluster's bridge) is no conflict


@dataclass(frozen=True)
class Service:
    name: str  # "registry", "sigserver"
    label: str  # "the embedded registry", for messages
    default: int
    option: str  # the option that moves it
    stage: str  # whose exit code a refusal takes


REGISTRY = Service("registry", "the embedded registry", 5000, "--embedded-port", "registry")
SIGSERVER = Service("sigserver", "the signature server", 5080, "--sigserver-port", "promote")


def claims_dir() -> Path:
    """Machine-wide (tmpfs where there is one: claims do not outlive a reboot, nor do the servers)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    base = Path("/run") if os.access("/run", os.W_OK) else Path(runtime)
    return base / f"imagepipe-ports-{os.getuid()}"


@dataclass(frozen=True)
class Holder:
    """A process listening on a port, and the state directory it serves if it is one of ours."""
    pid: int
    program: str
    state_dir: Path | None

    def describe(self) -> str:
        serves = f", serving {self.state_dir}" if self.state_dir else ""
        return f"{self.program} (pid {self.pid}{serves})"


def served_state_dir(cmdline: list[str]) -> Path | None:
    """The state directory a server of ours serves, read from its command line (the config file it was
    started with lives in <state>/registry or <state>/sigstore). Pure: tested without processes."""
    for arg in cmdline:
        path = Path(arg)
        if path.name in ("config.yml", "lighttpd.conf") and path.parent.name in ("registry", "sigstore"):
            return path.parent.parent
    return None


def _listener(port: int, hosts: set[str] | None) -> Any:
    for conn in psutil.net_connections(kind="tcp"):
        if (conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
                and (hosts is None or conn.laddr.ip in hosts)):
            return conn
    return None


def holder(port: int, host: str | None = None) -> Holder | None:
    """Who listens on TCP `port` (on `host`, or on any address when None), or None."""
    hosts = None if host is None else {host, "0.0.0.0", "::"}  # noqa: S104 - a wildcard listener takes every host
    for attempt in range(3):
        found = _listener(port, hosts)
        if found is None or found.pid is not None or attempt == 2:
            break
        time.sleep(0.2)  # a socket whose process /proc does not show yet (it is just starting): look again
    if found is None:
        return None
    if found.pid is None:
        return Holder(0, "an unidentified process", None)
    try:
        proc = psutil.Process(found.pid)
        return Holder(found.pid, proc.name(), served_state_dir(proc.cmdline()))
    except psutil.Error:
        return Holder(found.pid, "a process that just exited", None)


@contextlib.contextmanager
def _machine_lock() -> Iterator[Path]:
    table = claims_dir()
    table.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(table / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield table


def _claimant(table: Path, port: int) -> Path | None:
    """The live state directory that claimed this port, if any."""
    claim = table / f"{port}"
    try:
        owner = Path(claim.read_text().split("\n")[1])
    except (OSError, IndexError):
        return None
    if not owner.is_dir():  # its checkout is gone: the claim goes too (nothing is left behind for it)
        claim.unlink(missing_ok=True)
        return None
    return owner


def _usable(table: Path, service: Service, port: int, state_dir: Path) -> bool:
    claimant = _claimant(table, port)
    if claimant is not None and claimant != state_dir:
        return False
    held = holder(port, LOOPBACK)
    return held is None or held.state_dir == state_dir


def _remember(table: Path, service: Service, port: int, state_dir: Path) -> None:
    (table / f"{port}").write_text(f"{service.name}\n{state_dir}\n")
    record = state_dir / service.name / "port"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(f"{port}\n")


def claim(service: Service, state_dir: Path, requested: int | None) -> int:
    """The port of this state directory's `service`. `requested` (the option) is used exactly or refused
    with a sentence naming what holds it; without it, the port this checkout used before, else the default,
    else the next free one (said in one line)."""
    state_dir = state_dir.resolve()
    with _machine_lock() as table:
        if requested is not None:
            held = holder(requested, LOOPBACK)
            if held is not None and held.state_dir != state_dir:
                raise PipelineError(
                    f"port {requested} is taken by {held.describe()}: pass another {service.option}, or omit "
                    f"{service.option} to let this checkout choose a free one", stage=service.stage)
            _remember(table, service, requested, state_dir)
            return requested
        try:
            before = int((state_dir / service.name / "port").read_text())
        except (OSError, ValueError):
            before = None
        for port in ([before] if before else []) + list(range(service.default, service.default + SCAN)):
            if _usable(table, service, port, state_dir):
                if port != (before or service.default):
                    taken = before or service.default
                    held = holder(taken, LOOPBACK)
                    why = held.describe() if held else f"another checkout ({_claimant(table, taken)})"
                    log.info("port %d is taken by %s: %s of this checkout uses port %d (%s N to choose)",
                             taken, why, service.label, port, service.option)
                _remember(table, service, port, state_dir)
                return port
    raise PipelineError(f"no free port for {service.label} in {service.default}-{service.default + SCAN - 1}: "
                        f"pass {service.option}", stage=service.stage)
