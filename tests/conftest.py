"""Shared fixtures: a real PostgreSQL (started here, stopped at the end), the local OpenAI stand-in, and the
backend served by uvicorn. Helpers live in support.py (importable by name from every test module)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support import Api, FakeOpenAI, ServedApp, make_settings, serve

from imagepipe.services.postgres import TempPostgres

# verify scans every package against OSV advisories, and no OSV source is reachable from our machines: the
# suite's pipelines scan against the real PyPA records kept as fixtures. Their newest record is of 2024-07,
# so their age is accepted explicitly (a user's database is refused after 7 days unless they say so).
VULN_DB = Path(__file__).resolve().parent / "fixtures/osv/pypa"
os.environ.setdefault("IMAGEPIPE_VULN_DB", str(VULN_DB))
os.environ.setdefault("IMAGEPIPE_VULN_DB_MAX_AGE", "3650")


@pytest.fixture(scope="session", autouse=True)
def no_gnupg_alias_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The short GNUPGHOME aliases (imagepipe.supplychain.signing.short_home) of the tests' state directories
    are removed with the session; pytest keeps its temp directories, so they would not yet dangle."""
    yield
    from imagepipe.supplychain import signing

    signing.sweep_aliases(under=tmp_path_factory.getbasetemp())


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fast gates first, so that a lint or type error fails the run in seconds, not after an hour: the
    ruff/mypy gate, then the unit tests (no binaries), the backend's tests, and the end-to-end tests last.
    The sort is stable: each group keeps pytest's own order."""
    order = {"test_lint_gate.py": 0, "pipeline": 1, "backend": 2}

    def rank(item: pytest.Item) -> int:
        return order.get(item.path.relative_to(Path(__file__).parent).parts[0], 3)

    items.sort(key=rank)
