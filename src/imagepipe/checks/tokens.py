"""The one minter of Better-Auth-style HS256 tokens (the shared-secret path) for our side: verify's checks,
the benchmark and the tests. The backend keeps its own (`python -m app.core.security USER`), so the image
never depends on the pipeline."""

from __future__ import annotations

import time
from typing import Any

import jwt


def mint_hs256(secret: str, sub: str, *, ttl: int = 600, **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl, **claims}, secret, algorithm="HS256")
