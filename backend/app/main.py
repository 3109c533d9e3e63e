"""The FastAPI application, served as `app.main:app`."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.routes import chat, health, tasks, wellknown
from app.core.config import MCP_OFF, Settings, settings_or_exit
from app.core.db import Database
from app.core.errors import AppError
from app.core.lazy import LazyMount, LazyOpenAI
from app.core.limits import MaxBodySize
from app.core.security import TokenVerifier

log = logging.getLogger("app")


def create_app(settings: Settings) -> FastAPI:
    db = Database(settings.DATABASE_URL, min_size=settings.DB_POOL_MIN, max_size=settings.DB_POOL_MAX,
                  timeout=settings.DB_POOL_TIMEOUT_SECONDS)
    verifier = TokenVerifier(settings.BETTER_AUTH_SECRET, jwks_url=settings.BETTER_AUTH_JWKS_URL,
                             audience=settings.JWT_AUDIENCE, jwks_cooldown=settings.BETTER_AUTH_JWKS_COOLDOWN_SECONDS)
    oauth = settings.mcp_oauth

    def build_mcp() -> tuple[ASGIApp, Callable[[], Any]]:
        import mcp.todo_server  # the contract's mcp/ folder, merged with the MCP SDK (see mcp/__init__.py)

        assert oauth is not None
        server, mcp_app = mcp.todo_server.build_app(verifier=verifier, db=db, resource=oauth.resource,
                                                    metadata_url=oauth.metadata_url)
        return mcp_app, server.session_manager.run

    mcp_mount = LazyMount(build_mcp, preload=lambda: importlib.import_module("mcp.todo_server")) if oauth else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("settings loaded: %s", settings.describe())
        if mcp_mount is None:
            log.warning(MCP_OFF)
        await db.start()
        async with anyio.create_task_group() as group:
            if mcp_mount is not None:
                mcp_mount.attach(group)
            yield
            if mcp_mount is not None:
                mcp_mount.stop.set()
        await db.stop()

    app = FastAPI(title="Todo backend", version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.verifier = verifier
    app.state.openai = LazyOpenAI(settings.OPENAI_API_KEY, timeout=settings.AGENT_TIMEOUT_SECONDS)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
                           allow_methods=["*"], allow_headers=["*"])

    app.add_middleware(MaxBodySize, limit=settings.MAX_BODY_BYTES)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers 400 when a body cannot even be decoded (e.g. not UTF-8); for clients that is
        # malformed JSON like any other, so it gets the same 422 as a JSON syntax error.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return JSONResponse({"detail": [{"type": "json_invalid", "loc": ["body"],
                                             "msg": "request body is not valid JSON"}]}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(psycopg.DataError)
    async def data_error(_: Request, exc: psycopg.DataError) -> JSONResponse:
        # Input PostgreSQL refuses (a value validation did not foresee) is the client's error, not a 500.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return JSONResponse({"detail": [{"type": "value_error", "loc": ["request"], "msg": f"invalid data: {first}"}]},
                            status_code=422)

    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

    app.include_router(health.router)
    app.include_router(tasks.router)
    app.include_router(chat.router)
    if oauth is not None and mcp_mount is not None:
        app.include_router(wellknown.router(oauth))
        app.mount("/mcp", mcp_mount)
    else:
        app.mount("/mcp", mcp_off)
    return app


async def mcp_off(scope: Scope, receive: Receive, send: Send) -> None:
    """/mcp/ while MCP OAuth is off: every request refused with 503 and the reason (no token is looked at,
    so none meant for another audience can get through)."""
    if scope["type"] != "http":
        return
    body = json.dumps({"detail": MCP_OFF}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"3600")]})
    await send({"type": "http.response.body", "body": body})


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")


def __getattr__(name: str) -> FastAPI:
    # `app` is built on first access (uvicorn's `app.main:app`), so importing create_app has no side effects.
    if name != "app":
        raise AttributeError(name)
    _configure_logging()
    application = create_app(settings_or_exit())
    globals()["app"] = application
    return application
