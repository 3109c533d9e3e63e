"""Liveness (/health, never touches the database) and readiness (/ready, SELECT 1)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import DbDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Process is up; constant and fast, so the image's HEALTHCHECK measures the server, not the database."""
    return {"status": "healthy"}


@router.get("/ready", responses={503: {"description": "database not reachable"}})
async def ready(db: DbDep) -> JSONResponse:
    """200 when PostgreSQL answers `SELECT 1`, else 503 with the reason."""
    reason = await db.check()
    if reason is None:
        return JSONResponse({"status": "ready", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": reason}, status_code=503)
