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


# built once per machine and kept, like the stand-in bases: the cluster's clone-step image
PER_MACHINE_IMAGES = ("localhost/imagepipe-git:",)


def _host_state() -> tuple[set[str], set[str]]:
    """(buildah's working containers, image names) in the host's container storage."""
    import json
    import subprocess

    def listed(*argv: str) -> list[dict]:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
        return json.loads(out or "null") or []

    containers = {c["id"] for c in listed("buildah", "containers", "--json")}
    names = {n for image in listed("podman", "images", "--format", "json") for n in image.get("Names") or []}
    return containers, names


@pytest.fixture(scope="session", autouse=True)
def nothing_left_on_the_host() -> Iterator[None]:
    """The suite ends as the host was: every buildah working container it made (an interrupted build's
    included) and every image name it tagged is removed once all else is torn down (this fixture is set up
    first, so it ends last); what cannot be removed fails the run, named. Layers stay: the build caches are
    the machine's, as the stand-in bases are."""
    import subprocess

    containers, names = _host_state()
    yield
    now_containers, now_names = _host_state()
    names |= {n for n in now_names if n.startswith(PER_MACHINE_IMAGES)}
    new_containers, new_names = sorted(now_containers - containers), sorted(now_names - names)
    if new_containers:
        subprocess.run(["buildah", "rm", *new_containers], capture_output=True, timeout=300)
    for name in new_names:  # an image with another name keeps it; buildah's intermediate images stay
        subprocess.run(["podman", "rmi", name], capture_output=True, timeout=300)
    left_containers, left_names = (s - t for s, t in zip(_host_state(), (containers, names), strict=True))
    assert not left_containers and not left_names, (
        f"left on the host: buildah containers {sorted(left_containers)}, images {sorted(left_names)}")


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
