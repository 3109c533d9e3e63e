"""Shared fixtures: a real PostgreSQL (started here, stopped at the end), the local OpenAI stand-in, and the
backend served by uvicorn. Helpers live in support.py (importable by name from every test module)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import lanes
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
    """Fast gates first, so that a lint or type error fails the run in seconds, not after an hour; then the
    cluster's group, the unit and backend tests, and the local end-to-end modules (lanes.py)."""
    lanes.arrange(items)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> lanes.LaneScheduling:
    """The two lanes: each end-to-end module whole to one worker, the cluster's modules together."""
    return lanes.LaneScheduling(config, log)


def pytest_sessionstart(session: pytest.Session) -> None:
    if lanes.is_controller(session.config) and lanes.runs_end_to_end(session.config):
        session.config.stash[HOST_BEFORE] = lanes.host_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite ends as the host was: what it left is removed here, once both lanes have ended (so never
    under a running build), and what cannot be removed fails the run, named."""
    before = session.config.stash.get(HOST_BEFORE, None) if lanes.is_controller(session.config) else None
    if before is None:
        return
    left = lanes.sweep(before)
    if left:
        session.config.get_terminal_writer().line(f"FAILED nothing left on the host: {left}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


HOST_BEFORE = pytest.StashKey[tuple[set[str], set[str]] | None]()
