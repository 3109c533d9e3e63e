"""Health, readiness, docs and CORS on the running service."""

from __future__ import annotations


def test_health_is_constant_and_fast(api):
    r = api.call("GET", "/health")
    assert r.status_code == 200 and r.json() == {"status": "healthy"}


def test_ready_when_database_answers(api):
    r = api.call("GET", "/ready")
    assert r.status_code == 200 and r.json()["database"] == "ok"


def test_docs_and_openapi_are_served(api):
    assert api.call("GET", "/docs").status_code == 200
    spec = api.call("GET", "/openapi.json").json()
    assert "/api/{user_id}/tasks" in spec["paths"] and "/api/{user_id}/chat" in spec["paths"]


def test_cors_allows_the_frontend_only(api):
    ok = api.call("OPTIONS", "/api/u/tasks", headers={"Origin": "http://localhost:3000",
                                                      "Access-Control-Request-Method": "GET"})
    assert ok.headers.get("access-control-allow-origin") == "http://localhost:3000"
    bad = api.call("OPTIONS", "/api/u/tasks", headers={"Origin": "http://evil.example",
                                                       "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in bad.headers
