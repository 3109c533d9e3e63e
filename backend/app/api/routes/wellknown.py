"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for the MCP server: how an MCP client that starts without
a token finds the authorization server (Better Auth) that issues tokens for it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.config import McpOAuth

ROOT = "/.well-known/oauth-protected-resource"


def metadata(oauth: McpOAuth) -> dict[str, Any]:
    # No scopes_supported: /mcp/ checks the token's issuer, signature, expiry and audience, never a scope.
    return {"resource": oauth.resource, "authorization_servers": [oauth.issuer],
            "bearer_methods_supported": ["header"], "resource_name": "Todo MCP server"}


async def _document(request: Request) -> JSONResponse:
    oauth = request.app.state.settings.mcp_oauth
    # public and the same for everyone: browsers' MCP clients (the Inspector's UI) read it cross-origin
    return JSONResponse(metadata(oauth), headers={"Access-Control-Allow-Origin": "*",
                                                     "Cache-Control": "public, max-age=3600"})


def router(oauth: McpOAuth) -> APIRouter:
    """The metadata at the well-known root and, as RFC 9728 places it for a resource with a path, at the
    well-known prefix followed by that path (/.well-known/oauth-protected-resource/mcp)."""
    r = APIRouter(tags=["oauth"])
    for path in dict.fromkeys((ROOT, oauth.metadata_path)):
        r.add_api_route(path, _document, methods=["GET"], include_in_schema=path == ROOT,
                        summary="OAuth protected-resource metadata (RFC 9728) of the MCP server")
    return r
