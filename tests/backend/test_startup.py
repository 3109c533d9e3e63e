"""Process start-up as uvicorn runs it: missing settings, and a database that appears later."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from support import MCP_ENV, SECRET, Api, wait_ok

from app.core.config import MCP_OFF
from imagepipe.services.postgres import TempPostgres, free_port

BACKEND = Path(__file__).resolve().parents[2] / "backend"


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "BETTER_AUTH_SECRET", "OPENAI_API_KEY", *MCP_ENV)}
    return {**env, **values}


def test_missing_settings_stop_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
                          cwd=BACKEND, env=_env(BETTER_AUTH_SECRET=""), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["configuration error: missing required environment variables: BETTER_AUTH_SECRET, "
                     "DATABASE_URL, OPENAI_API_KEY (set them in the environment or in .env)"], proc.stderr


# The contract's Validation section runs the image with exactly these three (its example values).
CONTRACT_ENV = {"DATABASE_URL": "postgresql://user:pass@host/db", "BETTER_AUTH_SECRET": "test-secret",
                "OPENAI_API_KEY": "sk-test"}


def test_the_contracts_three_variables_alone_serve_with_mcp_oauth_off():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)], cwd=BACKEND,
                            env=_env(**CONTRACT_ENV), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_ok(base + "/health"), "the service did not start"
        assert requests.get(base + "/health", timeout=2).json() == {"status": "healthy"}
        assert requests.get(base + "/docs", timeout=5).status_code == 200
        # refused, whatever is sent: no token, or one minted for an MCP audience
        token = Api.token("u1", aud="https://todo.example.test/mcp")
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            refused = requests.post(base + "/mcp/", json={}, headers=headers, timeout=5)
            assert refused.status_code == 503, refused.text
            assert refused.json() == {"detail": MCP_OFF}
        assert requests.get(base + "/.well-known/oauth-protected-resource", timeout=5).status_code == 404
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert [ln for ln in out.splitlines() if "MCP OAuth" in ln] == [f"WARNING:     app: {MCP_OFF}"], out


@pytest.mark.parametrize("given", sorted(MCP_ENV))
def test_one_mcp_setting_without_the_other_stops_with_one_line(given):
    other = next(name for name in MCP_ENV if name != given)
    env = _env(**CONTRACT_ENV, **{given: MCP_ENV[given]})
    proc = subprocess.run([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
                          cwd=BACKEND, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [f"configuration error: invalid settings: {other} is not set: MCP OAuth needs both "
                     "MCP_RESOURCE_URL and MCP_AUTHORIZATION_SERVER, or neither (then /mcp/ is off) (set them in "
                     "the environment or in .env)"], proc.stderr


def test_a_malformed_mcp_resource_url_stops_with_one_line():
    env = _env(DATABASE_URL="postgresql://u@127.0.0.1:1/db", BETTER_AUTH_SECRET=SECRET, OPENAI_API_KEY="sk-test",
               **{**MCP_ENV, "MCP_RESOURCE_URL": "todo.example.test/mcp#x"})
    proc = subprocess.run([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
                          cwd=BACKEND, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["configuration error: invalid settings: MCP_RESOURCE_URL (Value error, must be an absolute "
                     "http(s) URL without a query or fragment, like https://api.example.com/mcp) (set them in "
                     "the environment or in .env)"], proc.stderr


def test_dsn_forms_are_accepted():
    from app.core.config import normalise_dsn

    assert normalise_dsn("postgres://u:p@h/db") == "postgresql://u:p@h/db"
    neon = "postgresql://u:p@ep-x.eu-central-1.aws.neon.tech/neondb?sslmode=require&channel_binding=require"
    assert normalise_dsn(neon) == neon
    assert normalise_dsn("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"


def test_unreachable_database_then_recovery():
    port, password = free_port(), "pw-" + SECRET[:8]
    app_port = free_port()
    dsn = f"postgresql://todo:{password}@127.0.0.1:{port}/todo"
    env = _env(DATABASE_URL=dsn, BETTER_AUTH_SECRET=SECRET, OPENAI_API_KEY="sk-test", FRONTEND_URL="http://a, http://b",
               **MCP_ENV)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(app_port)],
                            cwd=BACKEND, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{app_port}"
    pg = None
    try:
        assert wait_ok(base + "/health"), "the service did not start"
        assert requests.get(base + "/health", timeout=2).json() == {"status": "healthy"}
        ready = requests.get(base + "/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        headers = {"Authorization": f"Bearer {Api.token('u1')}"}
        assert requests.get(base + "/api/u1/tasks", headers=headers, timeout=10).status_code == 503

        pg = TempPostgres(port=port, password=password).start()  # the database appears
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and requests.get(base + "/ready", timeout=5).status_code != 200:
            time.sleep(0.2)
        assert requests.get(base + "/ready", timeout=5).status_code == 200
        assert requests.get(base + "/api/u1/tasks", headers=headers, timeout=10).status_code == 200
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
        if pg is not None:
            pg.stop()
    assert "database unreachable:" in out and "database connection OK" in out
    assert out.count("database unreachable:") == 1, "one line per change of state, not per retry"
    settings_line = next(ln for ln in out.splitlines() if "settings loaded:" in ln)
    assert "FRONTEND_URL=http://a, http://b" in settings_line and "AGENT_MODEL=gpt-4o" in settings_line
    assert SECRET not in out and password not in out
