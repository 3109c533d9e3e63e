"""Helpers for the backend tests: a local server speaking the OpenAI chat-completions wire format, the backend
served by uvicorn on a free port, and an authenticated client. Fixtures live in conftest.py."""

from __future__ import annotations

import threading
from typing import Any

import requests

from imagepipe.exec.retry import wait_until
from imagepipe.services.postgres import free_port
from imagepipe.services.standins import FakeOpenAI  # noqa: F401 - the tests' stand-in, shared with verify

SECRET = "test-secret-" + "x" * 40  # >= 32 bytes: PyJWT warns on shorter HMAC keys
# the MCP server's canonical URL and the authorization server's issuer, as a deployment configures them
MCP_RESOURCE = "https://todo.example.test/mcp"
ISSUER = "https://auth.example.test"
MCP_ENV = {"MCP_RESOURCE_URL": MCP_RESOURCE, "MCP_AUTHORIZATION_SERVER": ISSUER}




class ServedApp:
    def __init__(self, base: str, server: Any, thread: threading.Thread) -> None:
        self.base, self.server, self.thread = base, server, thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def serve(settings: Any, *, wait_ready: bool = True, port: int | None = None) -> ServedApp:
    """Run create_app(settings) under uvicorn in a thread on `port` (a free one when not given)."""
    import uvicorn

    from app.main import create_app

    port = port or free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    path = "/ready" if wait_ready else "/health"
    if wait_until(lambda: answers_ok(base + path), timeout=30, interval=0.05):
        return ServedApp(base, server, thread)
    raise RuntimeError(f"app did not answer {path}")


def make_settings(dsn: str, **extra: Any) -> Any:
    from app.core.config import Settings

    return Settings(**{"DATABASE_URL": dsn, "BETTER_AUTH_SECRET": SECRET, "OPENAI_API_KEY": "sk-test",
                       "MCP_RESOURCE_URL": MCP_RESOURCE, "MCP_AUTHORIZATION_SERVER": ISSUER, **extra})


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    @staticmethod
    def token(user: str, *, ttl_seconds: int = 3600, **claims: Any) -> str:
        from imagepipe.checks.tokens import mint_hs256

        return mint_hs256(SECRET, user, ttl=ttl_seconds, **claims)

    def call(self, method: str, path: str, *, user: str | None = None, token: str | None = None,
             **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if token is None and user is not None:
            token = self.token(user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base + path, headers=headers, timeout=10, **kw)


def answers_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_ok(url: str, timeout: float = 30) -> bool:
    """Poll url until it answers 200 (True) or the timeout passes (False)."""
    return bool(wait_until(lambda: answers_ok(url), timeout=timeout))
