"""The 401/403/404 matrix and both token kinds (HS256 secret; EdDSA via JWKS)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import SECRET

from app.core.errors import Unauthorized
from app.core.security import TokenVerifier

A, B = "usr_alice", "usr_bob"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("token", [
    None,
    "garbage",
    jwt.encode({"sub": A, "exp": int(time.time()) - 10}, SECRET, algorithm="HS256"),  # expired
    jwt.encode({"sub": A, "exp": int(time.time()) + 600}, "another-secret-" + "y" * 40, algorithm="HS256"),
    jwt.encode({"sub": A}, SECRET, algorithm="HS256"),  # no exp
    jwt.encode({"exp": int(time.time()) + 600}, SECRET, algorithm="HS256"),  # no user
    # alg "none": header and payload, empty signature
    _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "."
    + _b64(json.dumps({"sub": A, "exp": int(time.time()) + 600}).encode()) + ".",
], ids=["missing", "garbage", "expired", "wrong-secret", "no-exp", "no-user", "alg-none"])
def test_bad_tokens_are_401(api, token):
    r = api.call("GET", f"/api/{A}/tasks", token=token)
    assert r.status_code == 401, r.text
    assert r.headers.get("www-authenticate") == "Bearer"


def test_user_mismatch_is_403_and_other_users_task_is_404(api):
    t = api.call("POST", f"/api/{A}/tasks", user=A, json={"title": "alice's"}).json()
    assert api.call("GET", f"/api/{A}/tasks", user=B).status_code == 403
    for method, suffix in [("GET", ""), ("PUT", ""), ("DELETE", ""), ("PATCH", "/complete")]:
        r = api.call(method, f"/api/{B}/tasks/{t['id']}{suffix}", user=B, json={"title": "x"})
        assert r.status_code == 404, (method, r.text)
    assert api.call("GET", f"/api/{B}/tasks", user=B).json() == []
    assert api.call("GET", f"/api/{A}/tasks/{t['id']}", user=A).json()["title"] == "alice's"


def test_fallback_user_claims(api):
    now = int(time.time())
    token = jwt.encode({"user_id": A, "exp": now + 60}, SECRET, algorithm="HS256")
    assert api.call("GET", f"/api/{A}/tasks", token=token).status_code == 200
    token = jwt.encode({"id": A, "exp": now + 60}, SECRET, algorithm="HS256")
    assert api.call("GET", f"/api/{A}/tasks", token=token).status_code == 200


class Jwks:
    """A JWKS endpoint like Better Auth's /api/auth/jwks, with keys that can be rotated."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                jwks.fetches += 1
                body = json.dumps({"keys": [
                    {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
                     "x": _b64(k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))}
                    for kid, k in jwks.keys.items()]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/auth/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, kid: str) -> Ed25519PrivateKey:
        self.keys[kid] = Ed25519PrivateKey.generate()
        return self.keys[kid]

    def sign(self, kid: str, key: Ed25519PrivateKey | None = None, **claims) -> str:
        claims = {"sub": A, "exp": int(time.time()) + 600, **claims}
        return jwt.encode(claims, key or self.keys[kid], algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
def jwks():
    server = Jwks()
    yield server
    server.server.shutdown()


def test_eddsa_tokens_via_jwks_with_rotation(jwks):
    jwks.add("k1")
    verifier = TokenVerifier(SECRET, jwks_url=jwks.url, jwks_cooldown=0)
    assert asyncio.run(verifier.user_id(jwks.sign("k1"))) == A
    fetched = jwks.fetches
    assert asyncio.run(verifier.user_id(jwks.sign("k1"))) == A
    assert jwks.fetches == fetched, "keys are cached"
    jwks.add("k2")  # rotation: an unknown kid makes the verifier refetch the set
    assert asyncio.run(verifier.user_id(jwks.sign("k2"))) == A
    assert jwks.fetches == fetched + 1
    forged = jwks.sign("k1", key=Ed25519PrivateKey.generate())  # right kid, wrong key
    with pytest.raises(Unauthorized):
        asyncio.run(verifier.user_id(forged))
    with pytest.raises(Unauthorized):  # EdDSA tokens are refused when no JWKS is configured
        asyncio.run(TokenVerifier(SECRET).user_id(jwks.sign("k1")))


def test_audience_is_enforced_when_configured(jwks):
    jwks.add("k1")
    verifier = TokenVerifier(SECRET, jwks_url=jwks.url, audience="http://localhost:3000")
    assert asyncio.run(verifier.user_id(jwks.sign("k1", aud="http://localhost:3000"))) == A
    with pytest.raises(Unauthorized):
        asyncio.run(verifier.user_id(jwks.sign("k1", aud="http://evil.example")))
