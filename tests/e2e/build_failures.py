"""Builds made to fail in one known way, for the tests that read what the pipeline says of them: a RUN step
that prints apt's "Permission denied" and exits 3, and a package index behind a private CA (an HTTPS server
whose certificate no bundle the build is given trusts)."""

from __future__ import annotations

import http.server
import shutil
import ssl
import threading
from pathlib import Path

from pipeline_support import ROOT

from imagepipe.services import tlscerts
from imagepipe.services.postgres import free_port

# What apt says on every kaniko build of our Containerfile, then a failing exit: a failed RUN, not credentials
FAILING_STEP = 'RUN echo "E: open (13: Permission denied)" && exit 3'


def failing_containerfile(tmp: Path) -> Path:
    out = tmp / "Containerfile.failing"
    text = (ROOT / "build/Containerfile").read_text()
    out.write_text(text.replace("ARG WHEELHOUSE=none", f"ARG WHEELHOUSE=none\n{FAILING_STEP}", 1))
    return out


class PrivateIndex:
    """An HTTPS "package index" on `ip` whose certificate is signed by a CA of its own; every request is 404."""

    def __init__(self, tmp: Path, ip: str = "127.0.0.1") -> None:
        self.tls = tlscerts.make(tmp / "index-tls", hosts=["imagepipe-test-index"], ips=[ip])
        self.port = free_port()
        self.url = f"https://{ip}:{self.port}/simple/"

        class NotFound(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((ip, self.port), NotFound)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert, self.tls.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def context(self, tmp: Path) -> Path:
        """A copy of the build context whose requirements.txt takes its packages from this index."""
        ctx = tmp / "ctx-private-index"
        shutil.copytree(ROOT / "backend", ctx, ignore=shutil.ignore_patterns("__pycache__"))
        requirements = ctx / "requirements.txt"
        requirements.write_text(f"--index-url {self.url}\n" + requirements.read_text())
        return ctx

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
