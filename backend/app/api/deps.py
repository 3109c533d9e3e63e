"""Typed dependencies: the database, the caller (from the bearer token) and the path's owner check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import Forbidden, Unauthorized
from app.core.security import TokenVerifier

bearer = HTTPBearer(auto_error=False, description="JWT from Better Auth (HS256 with the shared secret, or JWKS)")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db  # set by the lifespan (app.main)
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


async def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    verifier: Annotated[TokenVerifier, Depends(get_verifier)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'")
    return await verifier.user_id(credentials.credentials)


async def path_owner(
    user_id: Annotated[str, Path(min_length=1, max_length=128, description="Better Auth user id (opaque)")],
    caller: Annotated[str, Depends(current_user)],
) -> str:
    """The path's user must be the token's user; every query then filters by it."""
    if user_id != caller:
        raise Forbidden("the token's user does not match the user in the path")
    return caller


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
OwnerDep = Annotated[str, Depends(path_owner)]
