"""PostgreSQL stops while the service runs: /health stays 200, /ready and the API answer 503 quickly (no 500,
no hang), and everything recovers by itself when the database returns, with no acknowledged write lost."""

from __future__ import annotations

import time

import requests
from support import Api, make_settings, serve

from imagepipe.exec.retry import wait_until
from imagepipe.services.postgres import TempPostgres


def wait_for(fn, timeout: float = 40) -> bool:
    return bool(wait_until(fn, timeout=timeout, interval=0.2))


def test_database_outage_and_recovery():
    pg = TempPostgres().start()
    app = serve(make_settings(pg.dsn(), DB_POOL_TIMEOUT_SECONDS=3))
    api = Api(app.base)
    try:
        written = [api.call("POST", "/api/u1/tasks", user="u1", json={"title": f"t{i}"}) for i in range(5)]
        assert all(r.status_code == 201 for r in written)

        pg.stop(remove=False)
        assert api.call("GET", "/health").status_code == 200
        t0 = time.monotonic()
        ready = api.call("GET", "/ready")
        assert ready.status_code == 503 and time.monotonic() - t0 < 5
        for method, body in [("GET", None), ("POST", {"title": "during outage"})]:
            t0 = time.monotonic()
            r = api.call(method, "/api/u1/tasks", user="u1", json=body)
            assert r.status_code == 503, r.text
            assert "database unavailable" in r.json()["detail"]
            assert time.monotonic() - t0 < 10, "an outage answers, it does not hang"
        assert api.call("GET", "/health").json() == {"status": "healthy"}

        pg.restart()
        assert wait_for(lambda: api.call("GET", "/ready").status_code == 200), "readiness recovers by itself"
        assert wait_for(lambda: api.call("GET", "/api/u1/tasks", user="u1").status_code == 200)
        titles = {t["title"] for t in api.call("GET", "/api/u1/tasks", user="u1").json()}
        assert {f"t{i}" for i in range(5)} <= titles, "acknowledged writes survive"
        assert api.call("POST", "/api/u1/tasks", user="u1", json={"title": "after"}).status_code == 201
    finally:
        app.stop()
        pg.stop()


def test_oversized_body_is_413(api):
    big = "x" * (70 * 1024)
    r = api.call("POST", "/api/u1/tasks", user="u1", data=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks():
        for _ in range(80):
            yield b"x" * 1024

    r = requests.post(f"{api.base}/api/u1/tasks", data=chunks(), timeout=10,
                      headers={"content-type": "application/json", "Authorization": f"Bearer {Api.token('u1')}"})
    assert r.status_code == 413
