"""One error root carrying its HTTP status; a single handler renders it."""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the API reports on purpose."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AppError):
    """Missing, malformed, expired or wrongly signed bearer token."""

    status_code = 401


class Forbidden(AppError):
    """The token's user is not the user named in the path."""

    status_code = 403


class NotFound(AppError):
    """The resource does not exist for this user (other users' data is reported the same way)."""

    status_code = 404


class UpstreamError(AppError):
    """The model provider failed or timed out."""

    status_code = 502


class DatabaseUnavailable(AppError):
    """PostgreSQL cannot be reached right now; the client may retry."""

    status_code = 503
