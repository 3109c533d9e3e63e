"""The signature server: Debian's lighttpd serving the lookaside store over HTTP next to the embedded
registry, so any consumer of the registry can fetch signatures. Loopback only; started on first use and
left running, like the registry."""

from __future__ import annotations

import logging
from pathlib import Path

import requests

from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until
from imagepipe.registry import ports

log = logging.getLogger("imagepipe.services.sigserver")

DEFAULT_PORT = 5080


class SignatureServer:
    def __init__(self, state_dir: Path, addr: str) -> None:
        self.dir = state_dir / "sigstore"
        self.store = self.dir / "lookaside"
        self.addr = addr
        self.config = self.dir / "lighttpd.conf"
        self.pidfile = self.dir / "lighttpd.pid"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def answers(self) -> bool:
        try:
            return requests.get(self.url + "/", timeout=2).status_code in (200, 403, 404)
        except requests.RequestException:
            return False

    def pid(self) -> int | None:
        return runner.service_pid(self.pidfile)

    @property
    def port(self) -> int:
        return int(self.addr.rpartition(":")[2])

    def ensure_running(self) -> str:
        self.store.mkdir(parents=True, exist_ok=True)
        held = ports.holder(self.port, self.addr.rpartition(":")[0])
        if held is not None and held.pid == self.pid() and self.answers():
            return "running"
        if held is not None:  # never lighttpd's raw "can't bind" line
            raise PipelineError(
                f"port {self.port} is taken by {held.describe()}: pass another --sigserver-port, or omit it to "
                "let this checkout choose a free one", stage="promote")
        self.config.write_text(cmdline.lighttpd_config(addr=self.addr, root=self.store, pidfile=self.pidfile))
        runner.run(cmdline.lighttpd(self.config), stage="promote", what="starting the signature server")
        if wait_until(self.answers, timeout=10):
            log.info("signature server on %s (lighttpd, serving %s)", self.url, self.store)
            return "started"
        raise PipelineError(f"the signature server did not start on {self.addr}: free the port or pass "
                            "--sigserver-port", stage="promote")

    def stop(self) -> bool:
        return runner.stop_service(self.pidfile)


def on_port(state_dir: Path, port: int | None) -> SignatureServer:
    """The signature server of a state directory, on loopback (port None: not claimed, because --lookaside
    names where consumers read; the store is still written here)."""
    return SignatureServer(state_dir, f"127.0.0.1:{port or DEFAULT_PORT}")


def lookaside_url(lookaside: str | None, server: SignatureServer) -> str:
    """Where consumers read signatures: --lookaside when given (the user publishes the store there), else
    the signature server."""
    return lookaside.rstrip("/") if lookaside else server.url
