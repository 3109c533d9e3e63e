"""The five todo tools over MCP streamable HTTP, behind the API's bearer auth, the user taken from the token."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from agents import tools
from app.core.db import Database
from app.core.errors import AppError, Unauthorized
from app.core.security import TokenVerifier
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

USER_KEY = "todo.user_id"
DB_KEY = "todo.db"


def _caller(ctx: Context) -> tuple[str, Database]:
    request = ctx.request_context.request
    if request is None or USER_KEY not in request.scope:  # only reachable through BearerAuth
        raise Unauthorized("no authenticated user on this MCP request")
    return request.scope[USER_KEY], request.scope[DB_KEY]


async def _run(name: str, ctx: Context, arguments: dict[str, Any]) -> dict[str, Any]:
    user_id, db = _caller(ctx)
    # Drop parameters the client left at None so the shared argument models apply their defaults.
    return await tools.execute(name, {k: v for k, v in arguments.items() if v is not None}, user_id=user_id, db=db)


def build_server() -> MCPServer:
    server = MCPServer(name="todo", instructions="Manage the signed-in user's todo tasks.")

    @server.tool(description=tools.TOOLS["add_task"][1])
    async def add_task(
        title: str, ctx: Context, description: str | None = None, priority: str = "medium",
        tags: list[str] | None = None, due_date: str | None = None,
    ) -> dict[str, Any]:
        return await _run("add_task", ctx, {"title": title, "description": description, "priority": priority,
                                            "tags": tags, "due_date": due_date})

    @server.tool(description=tools.TOOLS["list_tasks"][1])
    async def list_tasks(
        ctx: Context, status: str = "all", priority: str | None = None, tag: str | None = None,
        q: str | None = None, limit: int = 20,
    ) -> dict[str, Any]:
        return await _run("list_tasks", ctx, {"status": status, "priority": priority, "tag": tag, "q": q,
                                              "limit": limit})

    @server.tool(description=tools.TOOLS["complete_task"][1])
    async def complete_task(task_id: int, ctx: Context) -> dict[str, Any]:
        return await _run("complete_task", ctx, {"task_id": task_id})

    @server.tool(description=tools.TOOLS["delete_task"][1])
    async def delete_task(task_id: int, ctx: Context) -> dict[str, Any]:
        return await _run("delete_task", ctx, {"task_id": task_id})

    @server.tool(description=tools.TOOLS["update_task"][1])
    async def update_task(
        task_id: int, ctx: Context, title: str | None = None, description: str | None = None,
        priority: str | None = None, tags: list[str] | None = None, due_date: str | None = None,
    ) -> dict[str, Any]:
        return await _run("update_task", ctx, {"task_id": task_id, "title": title, "description": description,
                                               "priority": priority, "tags": tags, "due_date": due_date})

    return server


class BearerAuth:
    """ASGI wrapper: the same bearer verification as /api, then the user id travels in the request scope."""

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier, db: Database) -> None:
        self.app, self.verifier, self.db = app, verifier, db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'")
            user_id = await self.verifier.user_id(token.strip())
        except AppError as e:
            body = json.dumps({"detail": e.message}).encode()
            await send({"type": "http.response.start", "status": e.status_code,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app({**scope, USER_KEY: user_id, DB_KEY: self.db}, receive, send)


def build_app(*, verifier: TokenVerifier, db: Database) -> tuple[MCPServer, ASGIApp]:
    server = build_server()
    inner = server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,  # no server-side session state: any worker can serve any request
        json_response=True,
        # Bearer auth guards this endpoint; Host checks would break container/proxy hostnames.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server, BearerAuth(inner, verifier=verifier, db=db)
