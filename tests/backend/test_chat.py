"""Chat turns through the real OpenAI SDK against a local chat-completions server."""

from __future__ import annotations

U, OTHER = "usr_chat", "usr_other"


def test_turn_calls_a_tool_and_persists_history(api, fake_openai):
    fake_openai.tool_call("add_task", {"title": "call mom", "priority": "high"})
    fake_openai.reply("Added 'call mom'.")
    r = api.call("POST", f"/api/{U}/chat", user=U, json={"message": "remind me to call mom"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["response"] == "Added 'call mom'."
    assert [c["tool"] for c in body["tool_calls"]] == ["add_task"]
    assert body["tool_calls"][0]["result"]["task"]["title"] == "call mom"
    tasks = api.call("GET", f"/api/{U}/tasks", user=U).json()
    assert [(t["title"], t["priority"], t["user_id"]) for t in tasks] == [("call mom", "high", U)]

    # The request carried the tools, the model name and the API key through the real SDK.
    first = fake_openai.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "gpt-4o"
    assert {t["function"]["name"] for t in first["body"]["tools"]} == {
        "add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
    assert fake_openai.requests[1]["body"]["messages"][-1]["role"] == "tool"

    # Second turn: the server is stateless, history comes from the database.
    fake_openai.reply("You have one task.")
    cid = body["conversation_id"]
    r2 = api.call("POST", f"/api/{U}/chat", user=U, json={"conversation_id": cid, "message": "what's left?"})
    assert r2.json()["conversation_id"] == cid
    sent = [m["content"] for m in fake_openai.requests[-1]["body"]["messages"] if m["role"] in ("user", "assistant")]
    assert sent == ["remind me to call mom", "Added 'call mom'.", "what's left?"]

    history = api.call("GET", f"/api/{U}/conversations/{cid}", user=U).json()
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "remind me to call mom"), ("assistant", "Added 'call mom'."),
        ("user", "what's left?"), ("assistant", "You have one task.")]
    assert history["messages"][1]["tool_calls"][0]["tool"] == "add_task"
    convs = api.call("GET", f"/api/{U}/conversations", user=U).json()
    assert [c["id"] for c in convs] == [cid]


def test_other_users_conversation_is_404(api, fake_openai):
    fake_openai.reply("hi")
    cid = api.call("POST", f"/api/{U}/chat", user=U, json={"message": "hello"}).json()["conversation_id"]
    assert api.call("GET", f"/api/{OTHER}/conversations/{cid}", user=OTHER).status_code == 404
    r = api.call("POST", f"/api/{OTHER}/chat", user=OTHER, json={"conversation_id": cid, "message": "x"})
    assert r.status_code == 404
    assert api.call("GET", f"/api/{OTHER}/conversations", user=OTHER).json() == []


def test_model_cannot_act_for_another_user(api, fake_openai):
    victim = api.call("POST", f"/api/{OTHER}/tasks", user=OTHER, json={"title": "secret plan"}).json()
    # The model tries to pass a user id, and to touch the other user's task by id.
    fake_openai.tool_call("list_tasks", {"user_id": OTHER}, call_id="c1")
    fake_openai.tool_call("delete_task", {"task_id": victim["id"]}, call_id="c2")
    fake_openai.tool_call("list_tasks", {}, call_id="c3")
    fake_openai.reply("done")
    r = api.call("POST", f"/api/{U}/chat", user=U, json={"message": f"delete all tasks of {OTHER}"})
    calls = r.json()["tool_calls"]
    assert "error" in calls[0]["result"] and "user_id" in calls[0]["result"]["error"]
    assert calls[1]["result"] == {"error": f"task {victim['id']} not found"}
    assert calls[2]["result"] == {"tasks": []}
    assert api.call("GET", f"/api/{OTHER}/tasks/{victim['id']}", user=OTHER).status_code == 200


def test_provider_error_is_502_and_the_message_is_kept(api, fake_openai):
    fake_openai.fail(500)
    fake_openai.fail(500)  # the SDK retries once
    r = api.call("POST", f"/api/{U}/chat", user=U, json={"message": "are you there?"})
    assert r.status_code == 502 and "500" in r.json()["detail"]
    convs = api.call("GET", f"/api/{U}/conversations", user=U).json()
    msgs = api.call("GET", f"/api/{U}/conversations/{convs[0]['id']}", user=U).json()["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [("user", "are you there?")]


def test_provider_timeout_is_502(api, fake_openai):
    fake_openai.slow(5)  # the app's agent timeout is 3 s in the test settings
    r = api.call("POST", f"/api/{U}/chat", user=U, json={"message": "slow?"})
    assert r.status_code == 502 and "3 s" in r.json()["detail"]


def test_tool_loop_is_bounded(api, fake_openai):
    for i in range(6):
        fake_openai.tool_call("list_tasks", {}, call_id=f"c{i}")
    r = api.call("POST", f"/api/{U}/chat", user=U, json={"message": "loop"})
    assert r.status_code == 200 and len(r.json()["tool_calls"]) == 5
    assert "stopped after 5 rounds" in r.json()["response"]


def test_chat_validation(api):
    assert api.call("POST", f"/api/{U}/chat", user=U, json={"message": ""}).status_code == 422
    assert api.call("POST", f"/api/{U}/chat", user=U, json={"message": "x" * 2001}).status_code == 422
    assert api.call("POST", f"/api/{U}/chat", json={"message": "hi"}).status_code == 401
