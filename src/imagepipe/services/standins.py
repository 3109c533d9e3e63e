"""Local stand-ins for the two services the backend calls that cannot run here: the OpenAI API (a server
speaking the chat-completions wire format; the app's real `openai` SDK talks to it) and Better Auth's JWKS
endpoint (Ed25519 keys that can be rotated). verify serves them to the container, the backend tests to
the app; both bind one given address of this machine and are stopped by their owner."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str) -> None:
        self.server = ThreadingHTTPServer((host, 0), handler)
        self.port = int(self.server.server_address[1])
        # a short poll interval: stop() returns within 0.1 s
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeOpenAI(_Server):
    """Scripted chat-completions endpoint. Queue replies with `reply()`, `tool_call()` or `fail()`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
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

        super().__init__(Handler, host)
        self.url = f"http://{host}:{self.port}/v1"

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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Jwks(_Server):
    """Better Auth's /api/auth/jwks: Ed25519 (EdDSA, the JWT plugin's default) keys by kid, rotatable."""

    def __init__(self, host: str = "127.0.0.1", *, issuer: str = "http://frontend.verify.invalid") -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.fetches = 0
        self.issuer = issuer
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                jwks.fetches += 1
                body = json.dumps({"keys": [
                    {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
                     "x": _b64(k.public_key().public_bytes(serialization.Encoding.Raw,
                                                           serialization.PublicFormat.Raw))}
                    for kid, k in list(jwks.keys.items())]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler, host)
        self.url = f"http://{host}:{self.port}/api/auth/jwks"

    def add(self, kid: str) -> Ed25519PrivateKey:
        self.keys[kid] = Ed25519PrivateKey.generate()
        return self.keys[kid]

    def sign(self, kid: str, user: str, *, key: Ed25519PrivateKey | None = None, ttl: int = 600,
             **claims: Any) -> str:
        """A token shaped like the JWT plugin's: the user's id as `sub` (and `id`), iss/aud the app's URL."""
        now = int(time.time())
        payload = {"sub": user, "id": user, "email": f"{user}@example.invalid", "name": user,
                   "emailVerified": True, "iat": now, "exp": now + ttl, "iss": self.issuer, "aud": self.issuer,
                   **claims}
        return jwt.encode(payload, key or self.keys[kid], algorithm="EdDSA", headers={"kid": kid})
