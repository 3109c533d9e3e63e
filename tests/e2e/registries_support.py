"""Registries as users run them, for the registry e2e tests: Debian's distribution 2.8 over TLS with a CA of
its own (placed in /etc/containers/certs.d, removed afterwards) and htpasswd or token auth; a token issuer
(the one stand-in allowed: a small server implementing the Docker token protocol in front of the real
registry); go-containerregistry's registry with the OCI referrers API; and a proxy that fails blob uploads."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import bcrypt
import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imagepipe.registry.access import CERTS_D
from imagepipe.services import tlscerts
from imagepipe.services.postgres import free_port

USER, PASSWORD = "ci", "Corr3ct-Horse-ci-pass"


def dns_name() -> str:
    """A name of this machine that resolves to loopback (the hostname in /etc/hosts), else localhost."""
    name = socket.gethostname()
    try:
        if socket.gethostbyname(name).startswith("127."):
            return name
    except OSError:
        pass
    return "localhost"


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(handler: type[http.server.BaseHTTPRequestHandler], port: int,
          tls: tlscerts.ServerTLS | None = None) -> Server:
    server = Server(("127.0.0.1", port), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class TokenIssuer:
    """The Docker registry token protocol: GET /token?service=…&scope=repository:NAME:ACTIONS with Basic
    auth; a JWT signed by a key whose certificate the registry trusts (rootcertbundle), naming the granted
    actions. `allowed` repositories get pull and push; any other gets nothing (an insufficient scope)."""

    work: Path
    tls: tlscerts.ServerTLS | None = None  # HTTPS (clients refuse an HTTP realm for an HTTPS registry)
    host: str = "127.0.0.1"  # the realm's host: the registry's own name (oras refuses a loopback realm
    # under another name, against credential forwarding)
    lifetime: int = 10  # seconds: shorter than a pipeline run, so tokens expire during it
    allowed: tuple[str, ...] = ("todo-backend",)
    port: int = field(default_factory=free_port)
    # every token handed out: (the client's User-Agent, its scope, time.monotonic() when issued)
    issued: list[tuple[str, str, float]] = field(default_factory=list)
    service: str = "imagepipe-test-registry"
    issuer: str = "imagepipe-test-issuer"

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagepipe test token signer")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.work.mkdir(parents=True, exist_ok=True)
        self.bundle = self.work / "token-signer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.server: Server | None = None

    @property
    def realm(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/token"

    def token(self, scope: str) -> str:
        access = []
        for item in filter(None, scope.split(" ")):
            kind, name, actions = item.split(":", 2)
            if kind == "repository" and name.split("/")[0] in self.allowed:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": USER, "aud": self.service, "iat": now, "nbf": now - 5,
                  "exp": now + self.lifetime, "jti": uuid.uuid4().hex, "access": access}
        x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": x5c})

    def start(self) -> TokenIssuer:
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                query = parse_qs(urlparse(self.path).query)
                header = self.headers.get("Authorization", "")
                given = base64.b64decode(header[6:]).decode() if header.startswith("Basic ") else ""
                if given != f"{USER}:{PASSWORD}":
                    self.send_response(401)
                    self.end_headers()
                    return
                scope = " ".join(query.get("scope", []))
                issuer.issued.append((self.headers.get("User-Agent", ""), scope, time.monotonic()))
                body = json.dumps({"token": issuer.token(scope), "expires_in": issuer.lifetime,
                                   "issued_at": datetime.datetime.now(datetime.UTC).isoformat()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = serve(Handler, self.port, self.tls)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@dataclass
class Distribution:
    """Debian's docker-registry (distribution 2.8), TLS with its own CA, and htpasswd or token auth."""

    work: Path
    auth: str = "htpasswd"  # or "token" (then `issuer` is set) or "none"
    issuer: TokenIssuer | None = None
    trust: bool = True  # put the CA in certs.d
    tls: tlscerts.ServerTLS | None = None  # default: made here
    host: str = field(default_factory=dns_name)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def certs_d(self) -> Path:
        return CERTS_D / self.addr

    def config(self, tls: tlscerts.ServerTLS) -> str:
        lines = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
                 f"    rootdirectory: {self.work}/data", "  delete:", "    enabled: true", "http:",
                 f"  addr: 127.0.0.1:{self.port}", "  tls:", f"    certificate: {tls.cert}", f"    key: {tls.key}"]
        if self.auth == "htpasswd":
            hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
            (self.work / "htpasswd").write_text(f"{USER}:{hashed}\n")
            lines += ["auth:", "  htpasswd:", "    realm: imagepipe-test", f"    path: {self.work}/htpasswd"]
        elif self.auth == "token":
            assert self.issuer is not None
            lines += ["auth:", "  token:", f"    realm: {self.issuer.realm}", f"    service: {self.issuer.service}",
                      f"    issuer: {self.issuer.issuer}", f"    rootcertbundle: {self.issuer.bundle}"]
        return "\n".join(lines) + "\n"

    def start(self) -> Distribution:
        self.work.mkdir(parents=True, exist_ok=True)
        tls = self.tls or make_tls(self.work / "tls", self.host)
        self.ca = tls.ca
        (self.work / "config.yml").write_text(self.config(tls))
        if self.trust:
            self.certs_d.mkdir(parents=True, exist_ok=True)
            shutil.copy(tls.ca, self.certs_d / "ca.crt")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.work / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.work / "log", "wb"))  # noqa: SIM115
        wait_http(f"https://127.0.0.1:{self.port}/v2/", verify=str(tls.ca))
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None
        shutil.rmtree(self.certs_d, ignore_errors=True)


@dataclass
class ReferrersRegistry:
    """go-containerregistry's registry with the referrers API (built by imagepipe.services.interop), plain HTTP on
    loopback, no auth."""

    binary: Path
    work: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ReferrersRegistry:
        (self.work / "blobs").mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(self.binary), "--address", self.addr, "--disk", str(self.work / "blobs")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.work / "log", "wb"))  # noqa: SIM115
        wait_http(f"http://{self.addr}/v2/")
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=30)


class LocalProxy:
    """A plain-HTTP server of a test's own on a free loopback port, in front of a registry."""

    port: int
    server: Server

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FailingUploads(LocalProxy):
    """A plain-HTTP proxy in front of a registry that forwards reads and answers 500 to every blob upload."""

    def __init__(self, upstream: str, ca: Path) -> None:
        self.port, self.upstream, self.ca, self.uploads = free_port(), upstream, ca, 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def forward(self) -> None:
                if "/blobs/uploads/" in self.path:
                    proxy.uploads += 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                r = requests.request(self.command, f"https://{proxy.upstream}{self.path}", timeout=30,
                                     verify=str(proxy.ca),
                                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(r.content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = forward  # noqa: N815

        self.server = serve(Handler, self.port)


def make_tls(directory: Path, host: str) -> tlscerts.ServerTLS:
    return tlscerts.make(directory, hosts=[host, "localhost"], ips=["127.0.0.1"])


def wait_http(url: str, verify: bool | str = True, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, verify=verify)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class HoldingProxy(LocalProxy):
    """A plain-HTTP proxy in front of a plain-HTTP registry that forwards every request (bodies included,
    chunked or not) except the first one `hold` matches: that one waits, unanswered, so whatever the client
    is doing (a push's blob upload, a promotion's next tag) is under way when the test acts. `held` is set
    once it arrives; the held request is never answered (the client is stopped while it waits)."""

    def __init__(self, upstream: str, hold: Callable[[str, str], bool]) -> None:
        self.port, self.upstream, self.hold = free_port(), upstream, hold
        self.held = threading.Event()
        self.seen: list[str] = []
        self.release = threading.Event()  # set at stop(): the held handler ends
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return data
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def forward(self) -> None:
                data = self.body()
                proxy.seen.append(f"{self.command} {self.path}")
                if not proxy.held.is_set() and proxy.hold(self.command, self.path):
                    proxy.held.set()
                    proxy.release.wait(600)
                    self.close_connection = True
                    return
                headers: dict[str, str] = {}
                for k, v in self.headers.items():  # a repeated header (Accept, one per manifest type) kept whole
                    if k.lower() not in ("host", "transfer-encoding", "content-length", "connection"):
                        headers[k] = f"{headers[k]}, {v}" if k in headers else v
                r = requests.request(self.command, f"http://{proxy.upstream}{self.path}", data=data, timeout=120,
                                     headers=headers, allow_redirects=False)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() in ("transfer-encoding", "connection", "content-encoding", "content-length"):
                        continue
                    if k.lower() == "location":  # back through the proxy
                        v = v.replace(f"http://{proxy.upstream}", f"http://127.0.0.1:{proxy.port}")
                    self.send_header(k, v)
                body = b"" if self.command == "HEAD" else r.content
                self.send_header("Content-Length", str(len(body) if self.command != "HEAD"
                                                      else r.headers.get("Content-Length", "0")))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward  # noqa: N815

        self.server = serve(Handler, self.port)

    def stop(self) -> None:
        self.release.set()  # the held handler ends first, or the server's shutdown would wait on it
        super().stop()
