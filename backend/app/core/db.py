"""PostgreSQL: a connection pool that may start before the database is reachable, plus idempotent migrations.

The service must serve /health with a dead DATABASE_URL (the contract's own check uses a fake one), so the
pool is opened by a background task that keeps retrying and logs one line per change of state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app.core.errors import DatabaseUnavailable

log = logging.getLogger("app.db")

# Arbitrary constant: serialises migrations run by several processes at once.
MIGRATION_LOCK_ID = 715_001

MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS tasks (
        id BIGSERIAL PRIMARY KEY,
        user_id TEXT NOT NULL,
        title VARCHAR(200) NOT NULL,
        description VARCHAR(2000),
        completed BOOLEAN NOT NULL DEFAULT false,
        priority TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high')),
        tags TEXT[] NOT NULL DEFAULT '{}',
        due_date TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS tasks_user_created ON tasks (user_id, created_at DESC);
    CREATE TABLE IF NOT EXISTS conversations (
        id BIGSERIAL PRIMARY KEY,
        user_id TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS conversations_user_updated ON conversations (user_id, updated_at DESC);
    CREATE TABLE IF NOT EXISTS messages (
        id BIGSERIAL PRIMARY KEY,
        conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        tool_calls JSONB NOT NULL DEFAULT '[]',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id, id);
    """,
]


async def migrate(conn: psycopg.AsyncConnection) -> int:
    """Apply pending migrations under an advisory lock; safe to run twice and from two processes at once."""
    applied = 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        for version, ddl in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            await conn.execute(ddl)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied += 1
    return applied


def describe_error(exc: BaseException) -> str:
    """One line, no credentials: libpq messages name host and port but never the password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class Database:
    """Owns the pool; `ready` flips once migrations ran and the pool is open."""

    def __init__(self, dsn: str, *, min_size: int = 2, max_size: int = 10, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.connect_timeout = max(1, int(timeout))
        # Typed as psycopg's docs show for pools of dict rows: connection_class carries the row type.
        self.pool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]](
            dsn,
            connection_class=psycopg.AsyncConnection[DictRow],
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"row_factory": dict_row, "connect_timeout": self.connect_timeout},
            # Keep trying for a long outage instead of giving up after the default 5 minutes.
            reconnect_timeout=24 * 3600,
        )
        self.ready = False
        self.last_error: str | None = "not connected yet"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="db-connect")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.pool.close()

    async def _connect_forever(self) -> None:
        delay, reported = 0.5, None
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=self.connect_timeout
                ) as conn:
                    applied = await migrate(conn)
                await self.pool.open(wait=False)
                self.ready, self.last_error = True, None
                log.info("database connection OK (%d migration(s) applied)", applied)
                return
            except (psycopg.Error, OSError) as e:
                reason = describe_error(e)
                self.last_error = reason  # /ready reports the latest reason
                if reported is None:  # one line per outage, not per retry or per changing reason
                    log.warning("database unreachable: %s (retrying in the background)", reason)
                elif reason != reported:
                    log.debug("database still unreachable: %s", reason)
                reported = reason
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
        """A pooled connection in a transaction (commit on success); outages become 503s."""
        if not self.ready:
            raise DatabaseUnavailable(f"database unavailable: {self.last_error}")
        try:
            async with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout as e:
            raise DatabaseUnavailable("database unavailable: no connection within the pool timeout") from e
        except psycopg.OperationalError as e:
            raise DatabaseUnavailable(f"database unavailable: {describe_error(e)}") from e

    async def check(self) -> str | None:
        """None when `SELECT 1` succeeds, else the reason."""
        try:
            async with self.connection(timeout=2.0) as conn:  # readiness answers fast, even mid-outage
                await conn.execute("SELECT 1")
        except DatabaseUnavailable as e:
            return e.message
        return None


async def migrate_command(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await migrate(conn)


if __name__ == "__main__":  # python -m app.core.db : apply migrations and exit
    from app.core.config import settings_or_exit

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = asyncio.run(migrate_command(settings_or_exit().DATABASE_URL))
    print(f"schema up to date ({count} migration(s) applied)")
