"""Shared fixtures: a real PostgreSQL (started here, stopped at the end), the local OpenAI stand-in, and the
backend served by uvicorn. Helpers live in support.py (importable by name from every test module)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from support import Api, FakeOpenAI, ServedApp, make_settings, serve

from imagepipe.services.postgres import TempPostgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    pg = TempPostgres().start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.server.shutdown()


@pytest.fixture(scope="session")
def app_server(postgres: TempPostgres, fake_openai: FakeOpenAI) -> Iterator[ServedApp]:
    os.environ["OPENAI_BASE_URL"] = fake_openai.url  # read by the SDK when the app builds its client
    served = serve(make_settings(postgres.dsn(), AGENT_TIMEOUT_SECONDS=3, FRONTEND_URL="http://localhost:3000"))
    yield served
    served.stop()


@pytest.fixture
def api(app_server: ServedApp, postgres: TempPostgres, fake_openai: FakeOpenAI) -> Iterator[Api]:
    """A client on a clean database (tables truncated before each test)."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("TRUNCATE tasks, conversations, messages RESTART IDENTITY CASCADE")
    fake_openai.reset()
    yield Api(app_server.base)
