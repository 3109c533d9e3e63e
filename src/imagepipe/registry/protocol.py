"""The registry protocol over HTTP for what no containers tool does for us (our artifacts, the referrers):
a requests session that answers a registry's 401 challenge. Basic: the credentials. Bearer (the Docker
registry token protocol that GHCR, Docker Hub, GitLab, Harbor and Quay speak): a token for the request's
repository scope from the challenge's realm, cached until it expires and fetched again on a 401, so tokens
shorter than the run and one scope per repository both work.

Why not a client library: oras-py 0.2.43 (checked) does token auth and `subject`, but sends a stale token
again on a 401 (an expired token, or another repository's scope, then fails), has no referrers API, and
retries every failure for about two minutes. See the README's "Registries".
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests

from imagepipe.errors import PipelineError
from imagepipe.registry.auth import RegistryAuth

SCOPED = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs|manifests|referrers|tags)(?:/|$)")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('bearer', {'realm': …, 'service': …, 'scope': …}) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def scope_for(method: str, url: str) -> str | None:
    """The token scope a request needs: repository:NAME:pull for reads, pull,push for writes."""
    match = SCOPED.match(urlparse(url).path)
    if match is None:
        return None
    actions = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method.upper(), "pull,push")
    return f"repository:{match.group('name')}:{actions}"


@dataclass
class Token:
    value: str
    until: float  # time.monotonic() after which it is fetched again


class ChallengeAuth(requests.auth.AuthBase):
    def __init__(self, auth: RegistryAuth, *, verify: bool | str, stage: str) -> None:
        self.auth, self.verify, self.stage = auth, verify, stage
        self.tokens: dict[str, Token] = {}
        self.basic = False  # the registry asked for Basic: send it up front from then on

    def _basic_header(self) -> str:
        raw = f"{self.auth.username}:{self.auth.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        scope = scope_for(r.method or "GET", r.url or "")
        token = self.tokens.get(scope) if scope else None
        if token is not None and token.until > time.monotonic():
            r.headers["Authorization"] = f"Bearer {token.value}"
        elif self.basic and not self.auth.anonymous:
            r.headers["Authorization"] = self._basic_header()
        r.register_hook("response", self.handle_401)  # type: ignore[no-untyped-call]
        return r

    def handle_401(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code != 401 or r.request.headers.get("X-Imagepipe-Retry"):
            return r
        scheme, params = parse_challenge(r.headers.get("WWW-Authenticate", ""))
        prep = r.request.copy()
        if scheme == "basic" and not self.auth.anonymous:
            self.basic = True
            prep.headers["Authorization"] = self._basic_header()
        elif scheme == "bearer" and params.get("realm"):
            scope = params.get("scope") or scope_for(prep.method or "GET", prep.url or "") or ""
            prep.headers["Authorization"] = f"Bearer {self.fetch(params['realm'], params.get('service'), scope)}"
        else:
            return r
        prep.headers["X-Imagepipe-Retry"] = "1"
        r.content  # noqa: B018 (drain the body so the connection can be reused)
        r.close()
        again: requests.Response = r.connection.send(prep, **kwargs)
        again.history.append(r)
        again.request = prep
        return again

    def fetch(self, realm: str, service: str | None, scope: str) -> str:
        """A token from the realm for `scope` (with the credentials when the run has some)."""
        params = {k: v for k, v in (("service", service), ("scope", scope)) if v}
        basic = None if self.auth.anonymous else (self.auth.username or "", self.auth.password or "")
        try:
            got = requests.get(realm, params=params, auth=basic, timeout=30, verify=self.verify)
        except requests.RequestException as e:
            raise PipelineError(f"the token server of registry {self.auth.registry} ({realm}) does not answer "
                                f"({type(e).__name__}): start it, or check the registry's auth settings",
                                stage=self.stage) from None
        if got.status_code in (401, 403):
            raise refused(self.auth, self.stage)
        if got.status_code >= 400:
            raise PipelineError(f"the token server of registry {self.auth.registry} answered {got.status_code} for "
                                f"{scope}", stage=self.stage)
        body = got.json()
        value = str(body.get("token") or body.get("access_token") or "")
        lifetime = float(body.get("expires_in") or 60)
        self.tokens[scope] = Token(value, time.monotonic() + lifetime - min(5.0, lifetime / 4))
        return value


def refused(auth: RegistryAuth, stage: str) -> PipelineError:
    if auth.anonymous:
        return PipelineError(f"the registry {auth.registry} requires credentials and none were found (--creds, "
                             "--authfile, REGISTRY_AUTH_FILE, podman's or docker's auth file): pass --creds "
                             f"USER:PASSWORD or log in with `podman login {auth.registry}`", stage=stage)
    return PipelineError(f"the registry {auth.registry} refused the credentials from {auth.source}: pass --creds "
                         f"USER:PASSWORD or log in with `podman login {auth.registry}` (auth file)", stage=stage)


def session(auth: RegistryAuth, *, verify: bool | str, stage: str) -> requests.Session:
    """A session answering the registry's challenges. Give each request verify= explicitly: a session's own
    `verify` loses to REQUESTS_CA_BUNDLE from the environment."""
    http = requests.Session()
    http.auth = ChallengeAuth(auth, verify=verify, stage=stage)
    return http
