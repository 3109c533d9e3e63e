"""Helpers for the backend tests: a local server speaking the OpenAI chat-completions wire format, the backend
served by uvicorn on a free port, and an authenticated client. Fixtures live in conftest.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from imagepipe.postgres import free_port

SECRET = "test-secret-" + "x" * 40  # >= 32 bytes: PyJWT warns on shorter HMAC keys




class FakeOpenAI:
    """Scripted chat-completions endpoint. Queue replies with `reply()`, `tool_call()` or `fail()`."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, dict[str, Any] | None, float]] = []
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("authorization")})
                status, payload, delay = fake.queue.pop(0) if fake.queue else (200, fake.message("ok"), 0.0)
                time.sleep(delay)
                data = json.dumps(payload or {"error": {"message": "scripted failure", "type": "server_error"}})
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def message(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            msg["tool_calls"] = tool_calls
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "gpt-4o",
                "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if tool_calls else "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def reply(self, content: str) -> None:
        self.queue.append((200, self.message(content), 0.0))

    def tool_call(self, name: str, arguments: dict[str, Any] | str, call_id: str = "call_1") -> None:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        self.queue.append((200, self.message(None, [{"id": call_id, "type": "function",
                                                     "function": {"name": name, "arguments": args}}]), 0.0))

    def fail(self, status: int = 500) -> None:
        self.queue.append((status, None, 0.0))

    def slow(self, seconds: float) -> None:
        self.queue.append((200, self.message("late"), seconds))

    def reset(self) -> None:
        self.queue.clear()
        self.requests.clear()




class ServedApp:
    def __init__(self, base: str, server: Any, thread: threading.Thread) -> None:
        self.base, self.server, self.thread = base, server, thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def serve(settings: Any, *, wait_ready: bool = True) -> ServedApp:
    """Run create_app(settings) under uvicorn in a thread on a free port."""
    import uvicorn

    from app.main import create_app

    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    path = "/ready" if wait_ready else "/health"
    while time.monotonic() < deadline:
        try:
            if requests.get(base + path, timeout=1).status_code == 200:
                return ServedApp(base, server, thread)
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"app did not answer {path}")


def make_settings(dsn: str, **extra: Any) -> Any:
    from app.core.config import Settings

    return Settings(DATABASE_URL=dsn, BETTER_AUTH_SECRET=SECRET, OPENAI_API_KEY="sk-test", **extra)


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    @staticmethod
    def token(user: str, **claims: Any) -> str:
        from app.core.security import mint_token

        return mint_token(SECRET, user, **claims)

    def call(self, method: str, path: str, *, user: str | None = None, token: str | None = None,
             **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if token is None and user is not None:
            token = self.token(user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base + path, headers=headers, timeout=10, **kw)


def wait_ok(url: str, timeout: float = 30) -> bool:
    """Poll url until it answers 200 (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False
