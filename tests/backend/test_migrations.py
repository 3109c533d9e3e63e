"""Migrations: idempotent and safe from several processes at once (advisory lock)."""

from __future__ import annotations

import asyncio

import psycopg

from app.core.db import migrate


def test_migrations_twice_and_concurrently(postgres):
    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS migrate_race")
        conn.execute("CREATE DATABASE migrate_race")
    race_dsn = postgres.superuser_dsn("migrate_race")

    async def one() -> int:
        async with await psycopg.AsyncConnection.connect(race_dsn, autocommit=True) as conn:
            return await migrate(conn)

    async def many() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(4)))

    applied = asyncio.run(many())
    assert sorted(applied) == [0, 0, 0, 1], "exactly one runner applies the migration"
    assert asyncio.run(one()) == 0, "a second run changes nothing"
    with psycopg.connect(race_dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"tasks", "conversations", "messages", "schema_migrations"} <= tables
