"""Bearer-token verification: HS256 with BETTER_AUTH_SECRET, or Better Auth JWT-plugin tokens via JWKS."""

from __future__ import annotations

import time
from typing import Any

import anyio
import jwt
from jwt.types import Options

from app.core.errors import Unauthorized

# Algorithms Better Auth's JWT plugin can sign with (EdDSA is its default); never "none".
ASYMMETRIC_ALGS = frozenset({"EdDSA", "ES256", "ES512", "RS256", "PS256"})
USER_CLAIMS = ("sub", "user_id", "id")
CACHE_SIZE = 10_000


class TokenVerifier:
    """`audience` is the API's (JWT_AUDIENCE, optional); a caller may ask for another one (the MCP server asks
    for its resource URL), so audiences are checked here rather than by PyJWT, and a token verified once is
    checked again for each audience it is presented to."""

    def __init__(self, secret: str, *, jwks_url: str | None = None, audience: str | None = None,
                 jwks_cooldown: float = 5.0) -> None:
        self.secret = secret
        self.audience = audience
        self._cache: dict[str, tuple[str, float, frozenset[str]]] = {}
        # PyJWKClient caches keys and refetches the set when a token names an unknown `kid` (key rotation);
        # the cooldown bounds how often forged kids can make us hit the JWKS endpoint.
        self.jwks = (jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600, timeout=5,
                                     cooldown_duration=jwks_cooldown) if jwks_url else None)

    @staticmethod
    def _options() -> Options:
        return {"require": ["exp"], "verify_aud": False}  # checked in user_id, for the audience asked for

    async def user_id(self, token: str, *, audience: str | None = None) -> str:
        """The token's user, when the token is for `audience` (default: the API's, if one is configured);
        verified tokens are remembered until they expire (a client sends the same token on every request,
        and verification is most of an authenticated request's CPU)."""
        cached = self._cache.get(token)
        if cached is None or cached[1] <= time.time():
            cached = await self._verify(token)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()  # bounded: a flood of distinct tokens cannot grow memory
            self._cache[token] = cached
        user, _, audiences = cached
        wanted = audience or self.audience
        if wanted is not None and wanted not in audiences:
            issued = ", ".join(sorted(audiences)) or "no audience"
            raise Unauthorized(f"the token is not issued for {wanted} (aud: {issued})")
        return user

    async def _verify(self, token: str) -> tuple[str, float, frozenset[str]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise Unauthorized(f"malformed bearer token: {e}") from None
        alg = header.get("alg")
        try:
            if alg == "HS256":
                claims = jwt.decode(token, self.secret, algorithms=["HS256"], options=self._options())
            elif self.jwks is not None and alg in ASYMMETRIC_ALGS:
                jwks = self.jwks
                key = await anyio.to_thread.run_sync(jwks.get_signing_key_from_jwt, token)
                claims = jwt.decode(token, key, algorithms=[alg], options=self._options())
            else:
                raise Unauthorized(f"token algorithm {alg!r} is not accepted")
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.PyJWKClientError as e:
            raise Unauthorized(f"no signing key for this token: {e}") from None
        except jwt.PyJWTError as e:
            raise Unauthorized(f"invalid token: {e}") from None
        aud = claims.get("aud")
        listed = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        audiences = frozenset(a for a in listed if isinstance(a, str))
        for claim in USER_CLAIMS:
            value = claims.get(claim)
            if isinstance(value, (str, int)) and str(value):
                return str(value), float(claims["exp"]), audiences
        raise Unauthorized("token has no user id (sub, user_id or id claim)")


def mint_token(secret: str, user_id: str, *, ttl_seconds: int = 3600, **extra: Any) -> str:
    """An HS256 token as the hackathon front end issues it; for local use and tests."""
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl_seconds, **extra}, secret, algorithm="HS256")


if __name__ == "__main__":  # python -m app.core.security USER_ID : print a token for local use
    import sys

    from app.core.config import settings_or_exit

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m app.core.security USER_ID")
    print(mint_token(settings_or_exit().BETTER_AUTH_SECRET, sys.argv[1]))
