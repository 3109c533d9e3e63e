"""Settings from the environment (one `Settings`, read once at start-up)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("app.config")

SECRETS = frozenset({"DATABASE_URL", "BETTER_AUTH_SECRET", "OPENAI_API_KEY"})


def normalise_dsn(url: str) -> str:
    """Accept postgres:// and postgresql:// (Neon, Heroku); drop driver suffixes like +psycopg."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql"):
        raise ValueError("must start with postgresql:// or postgres://")
    # libpq rejects Neon's `channel_binding` only when too old; keep every query option as given.
    query = urlencode(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(("postgresql", parts.netloc, parts.path, query, parts.fragment))


def absolute_url(value: str, *, example: str) -> str:
    """An absolute http(s) URL without a fragment (RFC 8707 resource indicators and RFC 8414 issuers have
    none, and neither has a query)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or parts.query:
        raise ValueError(f"must be an absolute http(s) URL without a query or fragment, like {example}")
    return value.strip()


MCP_OFF = ("MCP OAuth is off: /mcp/ answers 503 to every request; set MCP_RESOURCE_URL (the MCP server's "
           "public URL) and MCP_AUTHORIZATION_SERVER (Better Auth's issuer) to turn it on")


@dataclass(frozen=True)
class McpOAuth:
    """The MCP server as an OAuth resource server: its canonical URL and its authorization server."""

    resource: str
    issuer: str

    @property
    def metadata_path(self) -> str:
        """Where RFC 9728 puts the resource's metadata: the well-known prefix before the resource's path."""
        return "/.well-known/oauth-protected-resource" + urlsplit(self.resource).path.rstrip("/")

    @property
    def metadata_url(self) -> str:
        parts = urlsplit(self.resource)
        return urlunsplit((parts.scheme, parts.netloc, self.metadata_path, "", ""))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    DATABASE_URL: str = Field(min_length=1)
    BETTER_AUTH_SECRET: str = Field(min_length=1)
    OPENAI_API_KEY: str = Field(min_length=1)
    AGENT_MODEL: str = "gpt-4o"
    FRONTEND_URL: str | None = None
    # Optional: verify Better Auth JWT-plugin tokens (EdDSA by default) against this JWKS.
    BETTER_AUTH_JWKS_URL: str | None = None
    # How often an unknown `kid` may make the service refetch the JWKS (key rotation vs. forged kids).
    BETTER_AUTH_JWKS_COOLDOWN_SECONDS: float = Field(default=5.0, ge=0)
    # Optional: when set, tokens must carry this audience (Better Auth uses BETTER_AUTH_URL).
    JWT_AUDIENCE: str | None = None
    # MCP OAuth, ours and optional (the contract requires only the three above): both set, or neither.
    # The MCP server's canonical URL, exactly as Better Auth's mcp({ resource }) is given it: /mcp/ accepts
    # only tokens whose aud holds it, and the protected-resource metadata (RFC 9728) names it.
    MCP_RESOURCE_URL: str | None = None
    # The authorization server's issuer identifier (RFC 8414 `issuer`, the `iss` of its tokens): the Better
    # Auth base URL when its jwt plugin's `issuer` is set to it, else <base>/api/auth (Better Auth's default).
    MCP_AUTHORIZATION_SERVER: str | None = None
    AGENT_MAX_ROUNDS: int = Field(default=5, ge=1, le=20)
    AGENT_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    DB_POOL_MIN: int = Field(default=2, ge=0)
    DB_POOL_MAX: int = Field(default=10, ge=1)
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    MAX_BODY_BYTES: int = Field(default=64 * 1024, ge=1024)

    @field_validator("DATABASE_URL")
    @classmethod
    def _dsn(cls, value: str) -> str:
        return normalise_dsn(value)

    @field_validator("MCP_RESOURCE_URL", mode="before")
    @classmethod
    def _resource(cls, value: str | None) -> str | None:
        return absolute_url(value, example="https://api.example.com/mcp") if value else None

    @field_validator("MCP_AUTHORIZATION_SERVER", mode="before")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        return absolute_url(value, example="https://auth.example.com") if value else None

    @model_validator(mode="after")
    def _mcp_pair(self) -> Settings:
        # one without the other is a deployment half done: say which is missing rather than guess
        if bool(self.MCP_RESOURCE_URL) != bool(self.MCP_AUTHORIZATION_SERVER):
            missing = "MCP_AUTHORIZATION_SERVER" if self.MCP_RESOURCE_URL else "MCP_RESOURCE_URL"
            raise ValueError(f"{missing} is not set: MCP OAuth needs both MCP_RESOURCE_URL and "
                             "MCP_AUTHORIZATION_SERVER, or neither (then /mcp/ is off)")
        return self

    @cached_property
    def mcp_oauth(self) -> McpOAuth | None:
        """MCP OAuth's settings when both are set; None when it is off."""
        if self.MCP_RESOURCE_URL and self.MCP_AUTHORIZATION_SERVER:
            return McpOAuth(self.MCP_RESOURCE_URL, self.MCP_AUTHORIZATION_SERVER)
        return None

    @cached_property
    def cors_origins(self) -> list[str]:
        if not self.FRONTEND_URL:
            return []
        return [o.strip().rstrip("/") for o in self.FRONTEND_URL.split(",") if o.strip()]

    def describe(self) -> str:
        """Names of the settings that are set, never their values."""
        names = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value in (None, ""):
                continue
            if name in SECRETS or name.endswith("_URL") and name != "FRONTEND_URL":
                names.append(f"{name}=<set>")
            else:
                names.append(f"{name}={value}")
        return ", ".join(names)


class ConfigError(Exception):
    """The environment does not hold a usable configuration; the message says what to set."""


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as e:
        missing, invalid = [], []
        for err in e.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            if err["type"] in ("missing", "string_too_short"):
                missing.append(name)
            elif not name:  # a rule across settings (the MCP pair): its message names them
                invalid.append(err["msg"].removeprefix("Value error, "))
            else:
                invalid.append(f"{name} ({err['msg']})")
        parts = []
        if missing:
            parts.append("missing required environment variables: " + ", ".join(sorted(set(missing))))
        if invalid:
            parts.append("invalid settings: " + "; ".join(invalid))
        raise ConfigError("; ".join(parts) + " (set them in the environment or in .env)") from None


def settings_or_exit() -> Settings:
    """For process start-up: one line on stderr and exit 2 instead of a traceback."""
    try:
        return load_settings()
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
