"""The five todo tools over MCP streamable HTTP, behind the API's bearer auth, the user taken from the token."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field
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


def _tool_function(name: str, model: type[BaseModel]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """An MCP tool function for one of agents.tools' argument models: its parameters are the model's fields
    (types, constraints, defaults, descriptions), so the MCP input schema and the OpenAI tool schema come
    from one definition (tests/backend/test_mcp.py compares them)."""

    async def call(ctx: Context, **arguments: Any) -> dict[str, Any]:
        return await _run(name, ctx, arguments)

    params = []
    for field, info in model.model_fields.items():
        extras = [*info.metadata] + ([Field(description=info.description)] if info.description else [])
        annotation = Annotated[(info.annotation, *extras)] if extras else info.annotation
        default = inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)
        params.append(inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default))
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    call.__signature__ = inspect.Signature(params, return_annotation=dict[str, Any])  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": dict[str, Any]}
    call.__name__ = call.__qualname__ = name
    return call


def build_server() -> MCPServer:
    server = MCPServer(name="todo", instructions="Manage the signed-in user's todo tasks.")
    for name, (model, description) in tools.TOOLS.items():
        server.add_tool(_tool_function(name, model), name=name, description=description)
    return server


class BearerAuth:
    """ASGI wrapper: the same bearer verification as /api, for tokens issued for this MCP server (their aud
    holds its resource URL, RFC 8707), then the user id travels in the request scope. A 401 points to the
    protected-resource metadata (RFC 9728 section 5.1), so a client without a token can find Better Auth."""

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier, db: Database, resource: str,
                 metadata_url: str) -> None:
        self.app, self.verifier, self.db = app, verifier, db
        self.resource, self.metadata_url = resource, metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        sent = scheme.lower() == "bearer" and bool(token.strip())
        try:
            if not sent:
                raise Unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'")
            user_id = await self.verifier.user_id(token.strip(), audience=self.resource)
        except AppError as e:
            body = json.dumps({"detail": e.message}).encode()
            headers = [(b"content-type", b"application/json")]
            if e.status_code == 401:
                headers.append((b"www-authenticate", challenge(self.metadata_url, e.message if sent else None)))
            await send({"type": "http.response.start", "status": e.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app({**scope, USER_KEY: user_id, DB_KEY: self.db}, receive, send)


def challenge(metadata_url: str, refused: str | None) -> bytes:
    """`WWW-Authenticate: Bearer resource_metadata="…"`, with error="invalid_token" when a token was sent
    and refused (RFC 6750 section 3); quoted-string values carry no quote or backslash."""
    params = []
    if refused is not None:
        description = refused.replace("\\", "/").replace('"', "'")
        params += ['error="invalid_token"', f'error_description="{description}"']
    params.append(f'resource_metadata="{metadata_url}"')
    return ("Bearer " + ", ".join(params)).encode("latin-1", "replace")


def build_app(*, verifier: TokenVerifier, db: Database, resource: str,
              metadata_url: str) -> tuple[MCPServer, ASGIApp]:
    server = build_server()
    inner = server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,  # no server-side session state: any worker can serve any request
        json_response=True,
        # Bearer auth guards this endpoint; Host checks would break container/proxy hostnames.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server, BearerAuth(inner, verifier=verifier, db=db, resource=resource, metadata_url=metadata_url)
