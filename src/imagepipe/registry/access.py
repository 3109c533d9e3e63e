"""How this run reaches one registry, decided once: the scheme, the TLS trust, the credentials, and what the
containers tools are given for them.

Trust is the containers way: the system CAs plus the registry's own CA from
/etc/containers/certs.d/HOST:PORT/*.crt, where podman, skopeo and buildah read it, so our Python client
trusts exactly what they trust. Plain HTTP is used only when the registry speaks nothing else and is on
loopback or declared `insecure = true` in registries.conf; `--tls-verify=false` turns verification off,
explicitly and with a warning on every run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import requests

from imagepipe.errors import PipelineError
from imagepipe.exec.cmdline import ToolAuth, registry_is_local
from imagepipe.registry.auth import RegistryAuth, write_private
from imagepipe.registry.hostconfig import CERTS_D, insecure_registries
from imagepipe.registry.protocol import refused, session

log = logging.getLogger("imagepipe")

CERTS_DIRS = (CERTS_D, Path("/etc/docker/certs.d"))
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Access:
    registry: str
    scheme: str  # "https" or "http"
    verify: bool | str  # for requests: a CA bundle, True (the system's), or False (--tls-verify=false)
    auth: RegistryAuth
    tool: ToolAuth  # the auth file and TLS switch the containers tools get

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.registry}"


def registry_cas(registry: str, dirs: tuple[Path, ...] = CERTS_DIRS) -> list[Path]:
    """The CA certificates certs.d holds for `registry` (containers-certs.d(5): *.crt are CAs)."""
    return [ca for d in dirs for ca in sorted((d / registry).glob("*.crt"))]


def trust_bundle(registry: str, work: Path, *, dirs: tuple[Path, ...] = CERTS_DIRS) -> bool | str:
    """requests' `verify` for this registry: the system bundle with certs.d's CAs added, as the containers
    tools pool them; the system bundle alone when certs.d has none (True only on a machine without one)."""
    cas = registry_cas(registry, dirs)
    if not cas:
        return str(SYSTEM_BUNDLE) if SYSTEM_BUNDLE.is_file() else True
    bundle = work / f"{registry.replace(':', '_').replace('/', '_')}.pem"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    system = SYSTEM_BUNDLE.read_text() if SYSTEM_BUNDLE.is_file() else ""
    bundle.write_text(system + "\n" + "\n".join(ca.read_text() for ca in cas))
    return str(bundle)


def speaks_plain_http(error: requests.exceptions.SSLError) -> bool:
    text = str(error).lower()
    return "wrong version number" in text or "record layer failure" in text or "packet length too long" in text


def scheme_for(registry: str, *, verify: bool | str, stage: str, timeout: float = 5.0) -> str:
    """'https' when the registry answers TLS we trust; 'http' when it speaks only plain HTTP where that is
    allowed. Anything else is one line naming the fix."""
    try:
        response = requests.get(f"https://{registry}/v2/", timeout=timeout, verify=verify)
        scheme = "https"
    except requests.exceptions.SSLError as e:
        if not speaks_plain_http(e):
            raise PipelineError(
                f"the certificate of registry {registry} is not trusted here: put its CA at "
                f"{CERTS_D / registry / 'ca.crt'} (podman, skopeo and buildah read it there too), or pass "
                "--tls-verify=false to skip the check", stage=stage) from None
        if not (registry_is_local(registry) or registry in insecure_registries() or verify is False):
            raise PipelineError(
                f"registry {registry} speaks plain HTTP, which the containers tools refuse off loopback: serve it "
                f"over TLS, or declare it in /etc/containers/registries.conf.d/ as [[registry]] location = "
                f"\"{registry}\" insecure = true", stage=stage) from None
        try:
            response = requests.get(f"http://{registry}/v2/", timeout=timeout)
        except requests.RequestException:
            raise unreachable(registry, stage) from None
        scheme = "http"
    except requests.RequestException:
        raise unreachable(registry, stage) from None
    if "Docker-Distribution-API-Version" not in response.headers and response.status_code not in (200, 401):
        raise unreachable(registry, stage)
    return scheme


def unreachable(registry: str, stage: str) -> PipelineError:
    return PipelineError(f"registry {registry} is unreachable (nothing answers there as a registry): start it or "
                         "fix --registry (omit it to use the embedded one)", stage=stage)


def check_login(auth: RegistryAuth, base: str, verify: bool | str, stage: str) -> None:
    """What `podman login` checks, before any tool runs: the registry accepts the credentials (through its
    token server, for token auth). A wrong password or a token server that does not answer is one line."""
    http = session(auth, verify=verify, stage=stage)
    try:
        answer = http.get(f"{base}/v2/", timeout=15, verify=verify)
    except requests.RequestException:
        raise unreachable(auth.registry, stage) from None
    if answer.status_code in (401, 403):
        raise refused(auth, stage)


def open_access(auth: RegistryAuth, *, tls_verify: bool, work: Path, stage: str) -> Access:
    """Decide how to reach `auth.registry` and write the tools' auth file (0600, this registry only) under
    `work`. The caller removes `work` when the run ends."""
    registry = auth.registry
    if not tls_verify:
        log.warning("WARNING: TLS verification is OFF for %s (--tls-verify=false): anyone on the way can read "
                    "and change what is pushed and pulled", registry)
    verify: bool | str = trust_bundle(registry, work / "tls") if tls_verify else False
    scheme = scheme_for(registry, verify=verify, stage=stage)
    if not auth.anonymous:
        check_login(auth, f"{scheme}://{registry}", verify if scheme == "https" else False, stage)
    authfile = None if auth.anonymous else write_private(auth, work / f"auth-{os.getpid()}.json")
    tool = ToolAuth(authfile=authfile, tls_verify=tls_verify and scheme == "https")
    return Access(registry, scheme, verify if scheme == "https" else False, auth, tool)
