"""What most requests never need, loaded on first use: the OpenAI client (the SDK costs about 14 MB and
0.4 s to import) on the first chat turn, and the MCP server (about 17 MB) on the first /mcp/ request. A pod
that serves the tasks API for minutes before anyone chats pays neither. The imports run in a worker thread:
on the event loop they would stall every other request, health probes included, for as long as they take
(seconds on a slow or emulated CPU: verify's arm64 run saw /health time out behind the first /mcp/)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class LazyOpenAI:
    def __init__(self, api_key: str, *, timeout: float) -> None:
        self.api_key, self.timeout = api_key, timeout
        self._client: AsyncOpenAI | None = None

    async def get(self) -> AsyncOpenAI:
        if self._client is None:
            await anyio.to_thread.run_sync(importlib.import_module, "agents.todo_agent")
            from agents.todo_agent import make_client

            self._client = make_client(self.api_key, timeout=self.timeout)
        return self._client


class LazyMount:
    """An ASGI app built and started on its first request. `build` returns (the app, an async context
    manager factory it must run inside: the MCP session manager's `run`), which runs in the lifespan's task
    group until shutdown, so it lives as long as the server, not as long as the first request."""

    def __init__(self, build: Callable[[], tuple[ASGIApp, Callable[[], Any]]],
                 preload: Callable[[], object] | None = None) -> None:
        self.build, self.preload = build, preload  # preload: the slow part (imports), run in a worker thread
        self.app: ASGIApp | None = None
        self.group: TaskGroup | None = None
        self.lock = anyio.Lock()
        self.stop = anyio.Event()

    def attach(self, group: TaskGroup) -> None:
        self.group = group

    async def _serve(self, running: Callable[[], Any], *, task_status: TaskStatus[None]) -> None:
        async with running():
            task_status.started()
            await self.stop.wait()

    async def _ensure(self) -> ASGIApp:
        async with self.lock:
            if self.app is None:
                if self.group is None:
                    raise RuntimeError("LazyMount used outside the application's lifespan")
                if self.preload is not None:
                    await anyio.to_thread.run_sync(self.preload)
                app, running = self.build()
                await self.group.start(self._serve, running)
                self.app = app
        return self.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app or await self._ensure()
        await app(scope, receive, send)
