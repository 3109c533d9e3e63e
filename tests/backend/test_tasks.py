"""Tasks API against the real service and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

U = "usr_8f3KqL2"  # Better Auth ids are opaque strings


def create(api, user=U, **body):
    body.setdefault("title", "buy milk")
    r = api.call("POST", f"/api/{user}/tasks", user=user, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_create_read_update_toggle_delete(api):
    task = create(api, description="2 litres", priority="high", tags=["home", "food"], due_date="2026-12-01")
    assert task["user_id"] == U and task["completed"] is False and task["priority"] == "high"
    assert task["tags"] == ["home", "food"]
    assert task["due_date"].startswith("2026-12-01T00:00:00") and task["created_at"].endswith("Z")
    tid = task["id"]

    got = api.call("GET", f"/api/{U}/tasks/{tid}", user=U)
    assert got.status_code == 200 and got.json() == task

    sent = datetime.now(UTC)
    updated = api.call("PUT", f"/api/{U}/tasks/{tid}", user=U, json={"title": "buy oat milk"})
    answered = datetime.now(UTC)
    assert updated.status_code == 200
    # exactly the title changed, and updated_at: the database's now() of the update, a time within this request
    # (PostgreSQL runs on this machine's clock), so later than the task's creation
    assert updated.json() == {**task, "title": "buy oat milk", "updated_at": updated.json()["updated_at"]}
    assert sent <= datetime.fromisoformat(updated.json()["updated_at"]) <= answered
    assert api.call("GET", f"/api/{U}/tasks/{tid}", user=U).json() == updated.json()

    toggled = api.call("PATCH", f"/api/{U}/tasks/{tid}/complete", user=U)
    assert toggled.json()["completed"] is True
    assert api.call("PATCH", f"/api/{U}/tasks/{tid}/complete", user=U).json()["completed"] is False

    assert api.call("DELETE", f"/api/{U}/tasks/{tid}", user=U).status_code == 204
    assert api.call("GET", f"/api/{U}/tasks/{tid}", user=U).status_code == 404
    assert api.call("DELETE", f"/api/{U}/tasks/{tid}", user=U).status_code == 404


def test_list_filters_sort_and_paging(api):
    a = create(api, title="alpha report", priority="low", tags=["work"])
    b = create(api, title="Bravo groceries", priority="high", tags=["home"], description="eggs and flour")
    c = create(api, title="charlie call", priority="medium", tags=["work"])
    api.call("PATCH", f"/api/{U}/tasks/{c['id']}/complete", user=U)

    def ids(**params):
        r = api.call("GET", f"/api/{U}/tasks", user=U, params=params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()]

    assert ids() == [c["id"], b["id"], a["id"]]  # newest first by default
    assert ids(status="pending") == [b["id"], a["id"]]
    assert ids(status="completed") == [c["id"]]
    assert ids(priority="high") == [b["id"]]
    assert ids(tag="work") == [c["id"], a["id"]]
    assert ids(q="FLOUR") == [b["id"]]
    assert ids(q="%") == []  # search is literal, not a LIKE pattern
    assert ids(sort="title", order="asc") == [a["id"], b["id"], c["id"]]
    assert ids(sort="priority", order="desc") == [b["id"], c["id"], a["id"]]
    assert ids(limit=2) == [c["id"], b["id"]]
    assert ids(limit=2, offset=2) == [a["id"]]
    assert api.call("GET", f"/api/{U}/tasks", user=U, params={"limit": 1000}).status_code == 422
    assert api.call("GET", f"/api/{U}/tasks", user=U, params={"status": "done"}).status_code == 422


@pytest.mark.parametrize(("body", "field"), [
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "ok", "description": "d" * 2001}, "description"),
    ({"title": "ok", "priority": "urgent"}, "priority"),
    ({"title": "ok", "tags": ["x" * 33]}, "tags"),
    ({"title": "ok", "due_date": "tomorrow"}, "due_date"),
    ({"title": "ok", "user_id": "someone_else"}, "user_id"),
    ({}, "title"),
])
def test_validation_errors_name_the_field(api, body, field):
    r = api.call("POST", f"/api/{U}/tasks", user=U, json=body)
    assert r.status_code == 422
    assert any(field in map(str, err["loc"]) for err in r.json()["detail"]), r.json()


def test_update_rejects_null_title_and_unknown_fields(api):
    tid = create(api)["id"]
    assert api.call("PUT", f"/api/{U}/tasks/{tid}", user=U, json={"title": None}).status_code == 422
    assert api.call("PUT", f"/api/{U}/tasks/{tid}", user=U, json={"owner": "x"}).status_code == 422
    r = api.call("PUT", f"/api/{U}/tasks/{tid}", user=U, json={"description": None, "tags": []})
    assert r.status_code == 200 and r.json()["description"] is None


def test_malformed_json_is_422(api):
    r = api.call("POST", f"/api/{U}/tasks", user=U, data="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_sql_injection_strings_are_stored_verbatim(api):
    evil = "'); DROP TABLE tasks; --"
    task = create(api, title=evil, description="\" OR 1=1 --", tags=["a'b"])
    assert api.call("GET", f"/api/{U}/tasks/{task['id']}", user=U).json()["title"] == evil
    found = api.call("GET", f"/api/{U}/tasks", user=U, params={"q": evil, "tag": "a'b"}).json()
    assert [t["id"] for t in found] == [task["id"]]
