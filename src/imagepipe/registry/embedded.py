"""The embedded registry (Debian's docker-registry on loopback, own data directory) and registry probes."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import requests

from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until
from imagepipe.registry import ports

log = logging.getLogger("imagepipe.registry.embedded")

LOOPBACK = "127.0.0.1"  # the embedded registry binds here only: nothing off this machine reaches it
DEFAULT_PORT = 5000
DEFAULT_ADDR = f"{LOOPBACK}:{DEFAULT_PORT}"


class EmbeddedRegistry:
    def __init__(self, state_dir: Path, addr: str = DEFAULT_ADDR) -> None:
        self.dir = state_dir / "registry"
        self.addr = addr
        self.config = self.dir / "config.yml"
        self.pidfile = self.dir / "registry.pid"
        self.logfile = self.dir / "registry.log"

    def pid(self) -> int | None:
        return runner.service_pid(self.pidfile)

    @property
    def port(self) -> int:
        return int(self.addr.rpartition(":")[2])

    def ensure_running(self) -> str:
        """Start it unless this state directory's registry already serves; returns 'running' or 'started'.
        A registry of another checkout on the port is never used (its data lives in its own state)."""
        held = ports.holder(self.port, self.addr.rpartition(":")[0])
        ours = held is not None and (held.state_dir == self.dir.parent.resolve()
                                     or (held.pid == 0 and self.pid() is not None))  # ours, not yet identified
        if ours and probe(self.addr) == "registry":
            return "running"
        if held is not None:
            raise PipelineError(
                f"port {self.port} is taken by {held.describe()}: pass another --embedded-port, or omit it to "
                "let this checkout choose a free one", stage="registry")
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(cmdline.registry_config(addr=self.addr, root=self.dir / "data"))
        pid = runner.spawn(["docker-registry", "serve", str(self.config)], log_path=self.logfile)
        self.pidfile.write_text(f"{pid}\n")
        if wait_until(lambda: probe(self.addr) == "registry", timeout=15):
            log.info("registry started on %s (data: %s, pid %d)", self.addr, self.dir / "data", pid)
            return "started"
        raise PipelineError(f"the embedded registry did not start on {self.addr}: see {self.logfile}",
                            stage="registry")

    def stop(self) -> bool:
        return runner.stop_service(self.pidfile)


def probe(addr: str, *, timeout: float = 2.0) -> str:
    """'registry' (answers the v2 API, over HTTPS or plain HTTP), 'other' (something listens), or 'down'."""
    schemes = ("http",) if cmdline.registry_is_local(addr) else ("https", "http")
    for scheme in schemes:
        try:
            response = requests.get(f"{scheme}://{addr}/v2/", timeout=timeout)
        except requests.exceptions.SSLError:
            continue  # TLS refused: perhaps plain HTTP (tried next); trust is the clients' business
        except requests.ConnectionError:
            break
        except requests.RequestException:
            return "other"
        if "Docker-Distribution-API-Version" in response.headers or response.status_code in (200, 401):
            return "registry"
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return "other"
    except (OSError, ValueError):
        return "down"
